"""Seconds per epoch of CD-1 on MNIST (784 x 500, batch 100) against scikit-learn.

Measured in one run, on the same binarized data:

- the machine's float32 matmul peak: a 100x784 @ 784x500 product, median of many;
- boltzkit's trainer (the real training loop, its per-epoch ``seconds`` column) with
  CD-1 and plain SGD, as scikit-learn uses, then with momentum and with PCD-1;
- scikit-learn's ``BernoulliRBM`` (PCD-1, float32 input), one epoch per ``fit``;
- the cost of one epoch's Bernoulli draws with three samplers.

Efficiency = 5 matmuls x batches x peak-matmul time / epoch time (CD-1 per batch is
about five such products: two for sampling, one for the negative free energy, two in
the backward pass).

    python benchmarks/rbm_speed.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from boltzkit.config import load_config
from boltzkit.train import train
from boltzkit.units import bernoulli

RESULTS = Path(__file__).parent / "results"
N_VISIBLE, N_HIDDEN, BATCH = 784, 500, 100


def matmul_seconds(repeats: int = 2000) -> float:
    """Median time of a float32 (100 x 784) @ (784 x 500) product."""
    a, b = torch.rand(BATCH, N_VISIBLE), torch.randn(N_VISIBLE, N_HIDDEN)
    for _ in range(50):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def boltzkit_epoch_seconds(mnist: Path, epochs: int, overrides: list[str]) -> list[float]:
    """Per-epoch training seconds reported by boltzkit's trainer on all 60,000 images."""
    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist}", "data.binarize=stochastic", "data.validation=0",
        "model.centered=false", "train.method=cd", "train.k=1", f"train.epochs={epochs}",
        f"train.batch_size={BATCH}",
        "train.optimizer={name: sgd, lr: 0.1}", "train.schedule={name: constant}",
        "train.checkpoint_every=0", "train.metrics_examples=100", *overrides,
    ])
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, Path(tmp) / "run", progress=False)
    return [row["seconds"] for row in result.history]


def sklearn_epoch_seconds(x: np.ndarray, repeats: int) -> list[float]:
    from sklearn.neural_network import BernoulliRBM

    times = []
    for seed in range(repeats):
        rbm = BernoulliRBM(n_components=N_HIDDEN, learning_rate=0.1, batch_size=BATCH,
                           n_iter=1, random_state=seed)
        start = time.perf_counter()
        rbm.fit(x)
        times.append(time.perf_counter() - start)
    return times


def sampling_seconds(batches: int) -> dict[str, float]:
    """One epoch's Bernoulli draws (a hidden and a visible batch per update)."""
    generator = torch.Generator().manual_seed(0)
    p_h, p_v = torch.rand(BATCH, N_HIDDEN), torch.rand(BATCH, N_VISIBLE)
    samplers = {
        "boltzkit.units.bernoulli (24-bit integers)": lambda p: bernoulli(p, generator),
        "torch.rand(...) < p": lambda p: (torch.rand(p.shape, generator=generator) < p).float(),
        "torch.bernoulli(p)": lambda p: torch.bernoulli(p, generator=generator),
    }
    result = {}
    for name, draw in samplers.items():
        draw(p_h), draw(p_v)
        start = time.perf_counter()
        for _ in range(batches):
            draw(p_h)
            draw(p_v)
        result[name] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per boltzkit variant")
    parser.add_argument("--sklearn-repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "rbm_speed.json"))
    args = parser.parse_args()
    mnist = Path(args.mnist).resolve()
    if not mnist.is_file():
        raise SystemExit(f"MNIST not found at {mnist}; pass --mnist PATH/TO/mnist.npz")

    with np.load(mnist) as archive:
        grey = archive["x_train"].reshape(60000, -1).astype(np.float32) / 255.0
    x = (np.random.default_rng(0).random(grey.shape, dtype=np.float32) < grey).astype(np.float32)
    batches = len(x) // BATCH

    t_mm = matmul_seconds()
    variants = {
        "boltzkit CD-1, SGD": [],
        "boltzkit CD-1, SGD momentum 0.9": ["train.optimizer={name: sgd, lr: 0.1, momentum: 0.9}"],
        "boltzkit PCD-1, SGD": ["train.method=pcd"],
    }
    rows = {name: boltzkit_epoch_seconds(mnist, args.epochs, extra) for name, extra in variants.items()}
    rows["scikit-learn BernoulliRBM (PCD-1)"] = sklearn_epoch_seconds(x, args.sklearn_repeats)
    t_mm_after = matmul_seconds()
    t_mm = min(t_mm, t_mm_after)  # the better of two readings: the machine's peak
    rng = sampling_seconds(batches)

    sklearn = statistics.median(rows["scikit-learn BernoulliRBM (PCD-1)"])
    ideal = 5 * t_mm * batches
    print(f"peak: {t_mm * 1e3:.3f} ms per 100x784 @ 784x500 matmul "
          f"({2 * BATCH * N_VISIBLE * N_HIDDEN / t_mm / 1e9:.0f} GFLOP/s); "
          f"5 matmuls x {batches} batches = {ideal:.3f} s per epoch at peak")
    print(f"{'variant':42s} {'s/epoch':>8s} {'% of peak':>10s} {'vs sklearn':>11s}")
    table = []
    for name, seconds in rows.items():
        median = statistics.median(seconds)
        entry = {"variant": name, "seconds_per_epoch": median, "all_seconds": seconds,
                 "fraction_of_peak": ideal / median, "speedup_vs_sklearn": sklearn / median}
        table.append(entry)
        print(f"{name:42s} {median:8.3f} {100 * entry['fraction_of_peak']:9.1f}% "
              f"{entry['speedup_vs_sklearn']:10.2f}x")
    cd1 = statistics.median(rows["boltzkit CD-1, SGD"])
    print("\nBernoulli sampling, one epoch of draws (100x500 + 100x784 per batch):")
    for name, seconds in rng.items():
        print(f"  {name:44s} {seconds:6.3f} s  ({100 * seconds / cd1:4.1f}% of the CD-1 epoch)")

    RESULTS.mkdir(exist_ok=True)
    record = {
        "command": "python benchmarks/rbm_speed.py --mnist ../shared/data/mnist.npz",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "matmul_seconds": t_mm,
        "epoch_seconds_at_peak": ideal,
        "batches_per_epoch": batches,
        "variants": table,
        "sampling_seconds_per_epoch": rng,
        "targets": {"fraction_of_peak": 0.6, "speedup_vs_sklearn": 1.8},
    }
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
