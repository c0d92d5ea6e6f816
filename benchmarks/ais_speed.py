"""Seconds for AIS on a 784x500 RBM: 14,500 inverse temperatures x 100 runs (target <= 30 s
per path), and for ``boltzkit evaluate``'s defaults on the MNIST test set (every AIS path,
the cheap metrics, reverse AIS off; target <= 2 minutes).

The RBM is trained briefly on MNIST when ``--mnist`` is given (so the weights have a
realistic scale), else random with MNIST-like statistics; the speed does not depend on
which. A float32 matmul of the same shape as one AIS sweep is timed in the same run.

    python benchmarks/ais_speed.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from boltzkit.estimate.ais import ais_log_partition, base_rate_bias
from boltzkit.estimate.evaluate import binary_view, evaluate_rbm

RESULTS = Path(__file__).parent / "results"


def trained_model(mnist: Path, epochs: int):
    from boltzkit.config import load_config
    from boltzkit.data import load_dataset
    from boltzkit.train import train

    config = load_config("rbm-mnist", ["data.name=npz", f"data.path={mnist}", f"train.epochs={epochs}",
                                       "model.centered=false", "train.k=1",
                                       "train.metrics_examples=100", "train.checkpoint_every=0"])
    with tempfile.TemporaryDirectory() as tmp:
        model = train(config, Path(tmp) / "run", progress=False).model
    data = load_dataset(config.data, config.seed)
    return model, data.train, data.test


def random_model():
    from boltzkit.models import RBM

    g = torch.Generator().manual_seed(0)
    model = RBM(784, 500, generator=g)
    with torch.no_grad():
        model.weight.normal_(0, 0.05, generator=g)
        model.visible.bias.normal_(-2, 1, generator=g)
    train_data, test_data = ((torch.rand(10000, 784, generator=g) < 0.13).float() for _ in range(2))
    return model, train_data, test_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--betas", type=int, default=14501)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "ais_speed.json"))
    args = parser.parse_args()

    mnist = Path(args.mnist)
    found = mnist.is_file()
    model, train_data, test_data = trained_model(mnist, args.train_epochs) if found else random_model()
    source = f"trained {args.train_epochs} epochs on MNIST" if mnist.is_file() else "random"
    base = base_rate_bias(train_data)
    a, w = torch.rand(args.runs, 784), torch.randn(784, 500)
    for _ in range(20):
        a @ w
    start = time.perf_counter()
    for _ in range(500):
        a @ w
    matmul = (time.perf_counter() - start) / 500

    timings, results = [], []
    for repeat in range(args.repeats):
        generator = torch.Generator().manual_seed(repeat)
        result = ais_log_partition(model, base, args.betas, args.runs, generator)
        timings.append(result.seconds)
        results.append(result)
        print(f"run {repeat}: {result.seconds:.1f} s, log Z = {result.log_z:.3f} "
              f"[{result.log_z_low:.3f}, {result.log_z_high:.3f}], ESS {result.ess:.1f}")
    best = min(timings)
    steps = args.betas - 1
    print(f"\nAIS 784x500, {steps} steps x {args.runs} runs ({source}): best {best:.1f} s "
          f"(target <= 30 s: {'met' if best <= 30 else 'NOT met'}); "
          f"{best / steps * 1e3:.2f} ms per step = {best / steps / matmul:.1f}x one "
          f"{args.runs}x784 @ 784x500 matmul ({matmul * 1e3:.3f} ms); two such products per step")
    started = time.perf_counter()
    test = binary_view(test_data, torch.Generator().manual_seed(0))
    evaluation = evaluate_rbm(model.eval(), test, train_data)
    evaluate_seconds = time.perf_counter() - started
    print(f"evaluate with its defaults on {len(test_data)} test images: {evaluate_seconds:.1f} s "
          f"(target <= 120 s: {'met' if evaluate_seconds <= 120 else 'NOT met'}); "
          f"AIS {evaluation['seconds_ais']:.1f} s over {len(evaluation['ais_paths'])} paths, "
          f"cheap metrics {evaluation['seconds_cheap_metrics']:.1f} s; verdict: {evaluation['ais_verdict']}")
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/ais_speed.py --mnist ../shared/data/mnist.npz",
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "model": source, "runs": args.runs, "betas": args.betas, "seconds": timings,
        "best_seconds": best, "matmul_seconds": matmul, "target_seconds": 30,
        "log_z": [r.log_z for r in results], "ess": [r.ess for r in results],
        "evaluate_seconds": evaluate_seconds, "evaluate_target_seconds": 120,
        "evaluate": {k: v for k, v in evaluation.items() if not isinstance(v, float) or v == v},
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
