"""A 500-hidden-unit RBM on stochastically binarized MNIST, evaluated by AIS and reverse AIS.

Trains one variant within a wall-clock budget on this machine, then evaluates on the
10,000 test images: forward AIS (100 runs; Salakhutdinov & Murray's 14,501 inverse
temperatures by default) for log Z and the test log-likelihood, and reverse AIS (RAISE)
on the first ``--reverse-examples`` test images as a conservative estimate beside it.
Target (Salakhutdinov & Murray, 2008, CD-25 RBM): AIS test log-likelihood >= -86.34.

The number of epochs is set from the budget: one calibration epoch is timed first and
the run gets ``floor(budget / seconds per epoch)`` epochs, so the cosine schedule spans
the whole run. The trained run directory (weights, metrics, figures) is kept and the
weights are reproducible from the command (fixed seed, same machine and threads).

    python benchmarks/mnist_rbm.py --mnist ../shared/data/mnist.npz --variant pcd5 --minutes 80
    python benchmarks/mnist_rbm.py --mnist ../shared/data/mnist.npz --variant pt --minutes 30
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from _machine import mnist_file

from boltzkit.config import load_config
from boltzkit.train import train
from boltzkit.train.evaluate_run import evaluate_run

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parent / "runs"
COMMON = [  # every variant spells out what it uses, whatever the preset's defaults
    "model.centered=false", "data.binarize=stochastic", "data.validation=0.0833", "model.n_hidden=500",
    "train.batch_size=100",
    "train.optimizer={name: sgd, lr: 0.01, momentum: 0.9, weight_decay: 0.0001}",
    "train.schedule={name: cosine, unit: step, min_factor: 0.0}", "train.metrics_examples=200",
    "train.checkpoint_every=50", "eval.every=100", "eval.quick_ais={runs: 32, betas: 2000}",
]
VARIANTS = {
    "pcd5": ["train.method=pcd", "train.k=5"],
    "pcd1": ["train.method=pcd", "train.k=1"],
    "cd25": ["train.method=cd", "train.k=25",
             "train.optimizer={name: sgd, lr: 0.05, momentum: 0.5, weight_decay: 0.0001}"],
    "centered-pcd5": ["train.method=pcd", "train.k=5", "model.centered=true"],
    "pt": ["train.method=pt", "train.k=1", "train.pt={temperatures: 10, min_beta: 0.5}"],
    "grbm": ["model.visible=gaussian", "data.binarize=none", "data.standardize=true", "train.method=pcd",
             "train.k=1", "train.optimizer={name: sgd, lr: 0.001, momentum: 0.9, weight_decay: 0.0001}",
             "train.clip_grad_norm=10", "eval.every=0"],
}


def variant_config(mnist: Path, variant: str, epochs: int, extra: list[str]):
    return load_config("rbm-mnist", ["data.name=npz", f"data.path={mnist}", *COMMON, *VARIANTS[variant],
                                     f"train.epochs={epochs}", *extra])


def seconds_per_epoch(mnist: Path, variant: str, extra: list[str]) -> float:
    """Wall-clock seconds of the second of two epochs (training and per-epoch metrics;
    data loading and the first epoch's warm-up excluded)."""
    config = variant_config(mnist, variant, 2, [*extra, "eval.every=0", "train.checkpoint_every=0"])
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(config, Path(tmp) / "run", progress=False,
              on_epoch_end=lambda epoch, metrics: marks.append(time.perf_counter()))
    return marks[1] - marks[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--variant", default="pcd5", choices=sorted(VARIANTS))
    parser.add_argument("--minutes", type=float, default=80.0, help="training budget (wall clock)")
    parser.add_argument("--epochs", type=int, help="fix the epochs instead of calibrating to --minutes")
    parser.add_argument("--ais-betas", type=int, default=14501)
    parser.add_argument("--ais-runs", type=int, default=100)
    parser.add_argument("--reverse-examples", type=int, default=1000)
    parser.add_argument("--set", dest="extra", action="append", default=[], help="more config overrides")
    parser.add_argument("--out", help="run directory (default benchmarks/runs/mnist_rbm-<variant>)")
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)

    if args.epochs:
        epochs, per_epoch = args.epochs, None
    else:
        per_epoch = seconds_per_epoch(mnist, args.variant, args.extra)
        # leave room for the in-training AIS and checkpoints (about 2 %)
        epochs = max(1, math.floor(0.98 * args.minutes * 60 / per_epoch))
        print(f"calibration: {per_epoch:.2f} s per epoch -> {epochs} epochs in {args.minutes:g} minutes")
    out = Path(args.out or RUNS / f"mnist_rbm-{args.variant}")
    if out.exists():
        shutil.rmtree(out)
    config = variant_config(mnist, args.variant, epochs, args.extra)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    result = train(config, out, progress=False)
    train_seconds = time.perf_counter() - started
    print(f"trained {epochs} epochs in {train_seconds / 60:.1f} minutes", flush=True)

    evaluation = evaluate_run(out, "test", ais_runs=args.ais_runs, ais_betas=args.ais_betas,
                              reverse_examples=args.reverse_examples, progress=False)
    print(evaluation.pop("report"))
    RESULTS.mkdir(exist_ok=True)
    record = {
        "command": ("python benchmarks/mnist_rbm.py --mnist ../shared/data/mnist.npz "
                    f"--variant {args.variant} "
                    + (f"--epochs {args.epochs}" if args.epochs else f"--minutes {args.minutes:g}")
                    + "".join(f" --set {e}" for e in args.extra)
                    + (f" --out {args.out}" if args.out else "")),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "variant": args.variant, "overrides": VARIANTS[args.variant] + args.extra, "epochs": epochs,
        "calibrated_seconds_per_epoch": per_epoch, "train_minutes": train_seconds / 60,
        "run_dir": str(out), "last_epoch": result.history[-1], "evaluation": evaluation,
        "target_log_likelihood": -86.34,
    }
    path = RESULTS / f"{out.name}.json"
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
