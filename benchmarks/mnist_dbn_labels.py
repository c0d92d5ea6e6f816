"""The generative DBN of Hinton, Osindero & Teh (2006) on MNIST: a 784-500-500-2000 stack
whose top RBM also sees the 10 labels, pretrained greedily, then fine-tuned by up-down.

1. Trains the ``dbn-mnist-labels`` preset: ``--epochs`` per greedy layer, then
   ``--updown-epochs`` of up-down fine-tuning (CD-3 in the top RBM).
2. Reports the generative classifier (the label of lowest free energy of ``[h_2, y]``):
   the validation error after greedy training and after up-down (from the run's metrics), and
   the test error of the final model (``boltzkit evaluate``, with its binomial standard
   error). The paper reports 1.25 % test error after 300 up-down epochs.
3. Reports the test log-likelihood bound of the final model (labels summed out of the top).

Prints a table and writes ``benchmarks/results/mnist_dbn_labels.json`` (``--smoke``: a tiny
setting that checks the script in seconds, written to ``mnist_dbn_labels-smoke.json``).

    python benchmarks/mnist_dbn_labels.py --mnist ../shared/data/mnist.npz --epochs 20 --updown-epochs 30
    python benchmarks/mnist_dbn_labels.py --mnist ../shared/data/mnist.npz --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch
from _machine import cpu_name, mnist_file

from boltzkit.config import load_config
from boltzkit.train import train
from boltzkit.train.evaluate_run import evaluate_run

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parent / "runs"
PAPER_ERROR = 0.0125  # Hinton, Osindero & Teh (2006), table 1
SMOKE = {"layers": [30, 30, 50], "epochs": 1, "updown_epochs": 1, "limit": 1000, "ais_runs": 4,
         "ais_betas": 100, "samples": 5}


def last(history: list[dict], stage: str, key: str) -> float | None:
    """``key`` of the last epoch of ``stage`` that logged it."""
    values = [row[key] for row in history if row.get("stage") == stage and key in row]
    return values[-1] if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--epochs", type=int, default=20, help="greedy epochs per layer")
    parser.add_argument("--updown-epochs", type=int, default=30)
    parser.add_argument("--ais-runs", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=14501)
    parser.add_argument("--samples", type=int, default=100, help="importance draws per test image")
    parser.add_argument("--smoke", action="store_true", help="a tiny setting: checks the script in seconds")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="more overrides")
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)
    layers, epochs, updown = [500, 500, 2000], args.epochs, args.updown_epochs
    evaluation = {"ais_runs": args.ais_runs, "ais_betas": args.ais_betas, "samples": args.samples}
    extra = list(args.extra)
    if args.smoke:
        layers, epochs, updown = SMOKE["layers"], SMOKE["epochs"], SMOKE["updown_epochs"]
        extra += [f"data.limit={SMOKE['limit']}", "train.metrics_examples=100"]
        evaluation = {k: SMOKE[k] for k in ("ais_runs", "ais_betas", "samples")}
    tag = "mnist_dbn_labels-smoke" if args.smoke else "mnist_dbn_labels"
    config = load_config("dbn-mnist-labels", ["data.name=npz", f"data.path={mnist}", f"model.layers={layers}",
                                              f"train.epochs={epochs}", f"model.updown_epochs={updown}",
                                              "eval.every=0", *extra])
    out = RUNS / tag
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    result = train(config, out, progress=False)
    minutes = (time.perf_counter() - started) / 60
    top = f"layer{len(layers)}"
    greedy_error = 1 - last(result.history, top, "val_label_accuracy")
    final_error = 1 - last(result.history, "updown", "val_label_accuracy") if updown else greedy_error
    test = evaluate_run(out, "test", progress=False, **evaluation)
    report = test.pop("report")
    print(report, flush=True)
    rows = [
        (f"validation error, greedy ({epochs} epochs per layer)", f"{100 * greedy_error:.2f} %"),
        (f"validation error, after {updown} up-down epochs", f"{100 * final_error:.2f} %"),
        ("test error (generative classifier)", f"{100 * test['label_error']:.2f} % +- "
         f"{100 * test['label_error_stderr']:.2f} (paper: {100 * PAPER_ERROR:.2f} % after 300 epochs)"),
        ("test log-likelihood bound",
         f"{test['bound_mean']:.2f} [{test['bound_low']:.2f}, {test['bound_high']:.2f}]"),
        ("training minutes", f"{minutes:.1f}"),
    ]
    width = max(len(label) for label, _ in rows)
    print("\n".join(f"{label:<{width}}  {value}" for label, value in rows))
    record = {
        "command": ("python benchmarks/mnist_dbn_labels.py --mnist ../shared/data/mnist.npz "
                    + ("--smoke" if args.smoke
                       else f"--epochs {args.epochs} --updown-epochs {args.updown_epochs}")
                    + "".join(f" --set {e}" for e in args.extra)),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "threads": config.threads,
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "torch": torch.__version__},
        "layers": [784, *layers], "epochs_per_layer": epochs, "updown_epochs": updown, "run_dir": str(out),
        "minutes": minutes, "val_error_greedy": greedy_error, "val_error_final": final_error,
        "evaluation_settings": evaluation, "test": test, "paper_test_error": PAPER_ERROR,
        "last_epoch": result.history[-1],
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{tag}.json"
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
