"""boltzkit's drop-in ``BernoulliRBM`` against scikit-learn's on MNIST, side by side.

Both fit the same 60,000 training images (grey levels in [0, 1], as scikit-learn's
users pass them) with 256 hidden units, ``n_iter`` passes, plain SGD at
``learning_rate=0.1``: with scikit-learn's default ``batch_size=10`` and with 100, for
float64 input (what ``x / 255.0`` gives, and what scikit-learn then computes in) and
float32 input. One thread each; every configuration runs once per estimator after a
warm-up fit (imports, first-call costs). Ratio = scikit-learn's seconds / ours.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python benchmarks/sklearn_rbm.py --mnist ../shared/data/mnist.npz

(unset as the machine notes advise: those variables slow a current numpy's OpenBLAS.)
"""

from __future__ import annotations

import os

os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402
import torch  # noqa: E402
from _machine import cpu_name  # noqa: E402
from sklearn import neural_network  # noqa: E402

from boltzkit import sklearn as boltzkit_sklearn  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def timed_fit(estimator, x: np.ndarray) -> float:
    started = time.perf_counter()
    estimator.fit(x)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", required=True, help="mnist.npz (x_train, ...)")
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--out", default=str(RESULTS / "sklearn_rbm.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    images = np.load(args.mnist)["x_train"][: args.examples]
    x64 = images.reshape(len(images), -1) / 255.0
    for dtype in (np.float64, np.float32):  # warm-up: imports and first calls
        neural_network.BernoulliRBM(n_components=8, n_iter=1).fit(x64[:200].astype(dtype))
        boltzkit_sklearn.BernoulliRBM(n_components=8, n_iter=1).fit(x64[:200].astype(dtype))

    rows = []
    print(f"{'input':8s} {'batch':>5s} {'scikit-learn s':>14s} {'boltzkit s':>10s} {'ratio':>6s}  "
          f"({args.examples} images x {args.n_iter} passes, 784 x 256, 1 thread)")
    for dtype in (np.float64, np.float32):
        x = x64.astype(dtype)
        for batch in (10, 100):
            kwargs = dict(n_components=256, learning_rate=0.1, batch_size=batch, n_iter=args.n_iter,
                          random_state=0)
            theirs = timed_fit(neural_network.BernoulliRBM(**kwargs), x)
            ours = timed_fit(boltzkit_sklearn.BernoulliRBM(**kwargs), x)
            row = {"input": np.dtype(dtype).name, "batch_size": batch, "sklearn_seconds": theirs,
                   "boltzkit_seconds": ours, "ratio": theirs / ours}
            rows.append(row)
            print(f"{row['input']:8s} {batch:5d} {theirs:14.1f} {ours:10.1f} {row['ratio']:6.2f}", flush=True)
    result = {
        "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sklearn_rbm.py "
                   f"--mnist ../shared/data/mnist.npz --n-iter {args.n_iter}",
        "cpu": cpu_name(), "threads": 1, "torch": torch.__version__,
        "blas": threadpoolctl.threadpool_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "examples": args.examples, "n_iter": args.n_iter, "rows": rows,
        "target": "ratio >= 1.8 at batch 10 and at batch 100",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
