"""Gaussian-Bernoulli RBM: the closed-form gradient against autograd, interleaved.

A 784 x 500 GRBM with learned variances, PCD-1, batch 100, on 10,000 standardized MNIST
images, trained one epoch at a time with ``train.gradient: autograd`` and
``closed_form`` in alternation (round robin, ``--rounds`` rounds, so a neighbour's burst
hits both alike); the trainer's own per-epoch ``seconds``. Reports the minimum and median
of each and the ratio of the medians. One thread.

    python benchmarks/grbm_speed.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from _machine import cpu_name  # noqa: E402

from boltzkit.config import load_config  # noqa: E402
from boltzkit.train import fit  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def epoch_seconds(mnist: Path, gradient: str, examples: int) -> float:
    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist}", "data.binarize=none", "data.standardize=true",
        f"data.limit={examples}", "data.validation=0", "model.visible=gaussian", "model.centered=false",
        "model.n_hidden=500", "train.method=pcd", "train.k=1", "train.epochs=1", "train.batch_size=100",
        "train.optimizer={name: sgd, lr: 0.001, momentum: 0.9}", "train.schedule={name: constant}",
        "train.checkpoint_every=0", "train.metrics_examples=0", "eval.every=0", "threads=1",
        f"train.gradient={gradient}"])
    return fit(config).history[-1]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default="../shared/data/mnist.npz")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=10000)
    parser.add_argument("--out", default=str(RESULTS / "grbm_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    mnist = Path(args.mnist).resolve()
    times: dict[str, list[float]] = {"autograd": [], "closed_form": []}
    epoch_seconds(mnist, "autograd", 1000)  # warm-up: imports, first-call costs
    for _ in range(args.rounds):
        for gradient in times:
            times[gradient].append(epoch_seconds(mnist, gradient, args.examples))
    rows = {g: {"min": min(t), "median": statistics.median(t), "all": t} for g, t in times.items()}
    ratio = rows["autograd"]["median"] / rows["closed_form"]["median"]
    print(f"{cpu_name()}, 1 thread; 784x500 GRBM, PCD-1, batch 100, {args.examples} images per epoch")
    for gradient, row in rows.items():
        print(f"  {gradient:12s} min {row['min']:.3f} s  median {row['median']:.3f} s")
    print(f"  autograd / closed form (medians): {ratio:.2f}x")
    Path(args.out).write_text(json.dumps({"cpu": cpu_name(), "rounds": args.rounds, "examples": args.examples,
                                          "seconds": rows, "speedup": ratio}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
