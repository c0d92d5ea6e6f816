"""A 784-500-500-2000 deep belief network on stochastically binarized MNIST: greedy
pretraining, a likelihood lower bound, and a classifier fine-tuned from every layer.

1. Pretrains the DBN of Hinton, Osindero & Teh (2006) with the ``dbn-mnist`` preset
   (centered PCD-5 per layer, each on the hidden probabilities of the one below),
   ``--epochs`` per layer; the seconds per epoch of each layer are reported.
2. Bounds the log-likelihood of the 10,000 test images (``boltzkit evaluate``: importance
   sampling with the bottom-up posterior, AIS for the top RBM's log Z): for a 784-500-2000
   DBN trained the same way, the two-hidden-layer model of Salakhutdinov & Murray (2008),
   whose bound is compared with our best RBM (-85.18 nats, docs/RESULTS.md); and for the
   whole 784-500-500-2000 stack (the same bound through every layer).
3. Fine-tunes an MLP with sigmoid units initialised from all three layers (the MLP's
   ``model.pretrained``) by backpropagation, and reports its test error. Target: <= 1.15 %
   (Hinton & Salakhutdinov, 2006, backpropagation fine-tuning of this architecture).

Prints a table and writes ``benchmarks/results/mnist_dbn.json`` (``--smoke``: a tiny
setting that checks the script in seconds, written to ``mnist_dbn-smoke.json``).
``--finetune-only`` fine-tunes from the stack an earlier run left in ``benchmarks/runs``
(no pretraining, no bound) with ``--finetune-set`` overrides, into
``mnist_dbn-finetune.json``: fine-tuning recipes compared on the same pretrained layers.
``--name`` replaces the ``mnist_dbn`` of every run folder and JSON name, to keep a longer
run beside the default one.

    python benchmarks/mnist_dbn.py --mnist ../shared/data/mnist.npz --epochs 20 --finetune-epochs 50
    python benchmarks/mnist_dbn.py --mnist ../shared/data/mnist.npz --smoke
    python benchmarks/mnist_dbn.py --mnist ../shared/data/mnist.npz --finetune-only --finetune-epochs 100 \
        --finetune-set "model.dropout=0.5" --finetune-set train.batch_size=32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch
from _machine import cpu_name, mnist_file

from boltzkit.config import load_config
from boltzkit.train import train
from boltzkit.train.evaluate_run import evaluate_run

RESULTS = Path(__file__).parent / "results"
RUNS = Path(__file__).parent / "runs"
RBM_BEST = -85.18  # centered PCD-5 RBM, 500 hidden units (docs/RESULTS.md)
TARGET_ERROR = 0.0115
SMOKE = {"layers": [50, 50, 100], "two_layer": [50, 100], "epochs": 1, "finetune_epochs": 1,
         "limit": 2000, "ais_runs": 4, "ais_betas": 100, "samples": 5}


def dbn_config(mnist: Path, layers: list[int], epochs: int, extra: list[str]):
    return load_config("dbn-mnist", ["data.name=npz", f"data.path={mnist}", f"model.layers={layers}",
                                     f"train.epochs={epochs}", "eval.every=0", *extra])


def mlp_config(mnist: Path, pretrained: Path, layers: list[int], epochs: int, extra: list[str]):
    """Sigmoid units (what the RBMs' hidden units compute), SGD with momentum and a cosine
    schedule; grey-level pixels, as the DBN's probabilities in the up pass."""
    return load_config(None, [
        "model={type: mlp, activation: sigmoid}", f"model.hidden_layers={layers}",
        f"model.pretrained={pretrained}", "data.name=npz", f"data.path={mnist}", "data.binarize=none",
        "data.validation=0.0833", "train.batch_size=100", f"train.epochs={epochs}",
        "train.optimizer={name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.00001}",
        "train.schedule={name: cosine, unit: step, min_factor: 0.0}", "train.checkpoint_every=0",
        "train.metrics_examples=5000", *extra])


def pretrain(config, out: Path) -> tuple[dict, float]:
    """Train the DBN; the mean training seconds per epoch of each layer and the total."""
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    result = train(config, out, progress=False)
    total = time.perf_counter() - started
    per_layer: dict[str, list[float]] = {}
    for row in result.history:
        per_layer.setdefault(row["stage"], []).append(row["seconds"])
    return {stage: statistics.mean(times) for stage, times in per_layer.items()}, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--epochs", type=int, default=20, help="pretraining epochs per layer")
    parser.add_argument("--finetune-epochs", type=int, default=50)
    parser.add_argument("--ais-runs", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=14501)
    parser.add_argument("--samples", type=int, default=100, help="importance draws per test image")
    parser.add_argument("--no-two-layer", action="store_true",
                        help="skip the 784-500-2000 DBN (its bound is the one to compare)")
    parser.add_argument("--smoke", action="store_true", help="a tiny setting: checks the script in seconds")
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="more overrides for the DBN runs")
    parser.add_argument("--finetune-set", dest="finetune_extra", action="append", default=[],
                        help="more overrides for the fine-tuned MLP (e.g. model.dropout=0.5)")
    parser.add_argument("--name", default="mnist_dbn",
                        help="tag of the runs (benchmarks/runs/NAME-*) and of the JSON (default: mnist_dbn)")
    parser.add_argument("--finetune-only", action="store_true",
                        help="fine-tune from the stack of an earlier run (benchmarks/runs); no pretraining")
    parser.add_argument("--finetune-tag", default="finetune",
                        help="with --finetune-only: the runs and JSON are NAME-TAG (default: finetune), so "
                             "several fine-tunings of one stack keep their own records")
    args = parser.parse_args()
    mnist = mnist_file(args.mnist)
    layers, two_layer = [500, 500, 2000], [500, 2000]
    epochs, finetune_epochs, extra = args.epochs, args.finetune_epochs, list(args.extra)
    evaluation = {"ais_runs": args.ais_runs, "ais_betas": args.ais_betas, "samples": args.samples}
    mlp_extra: list[str] = list(args.finetune_extra)
    if args.smoke:
        layers, two_layer = SMOKE["layers"], SMOKE["two_layer"]
        epochs, finetune_epochs = SMOKE["epochs"], SMOKE["finetune_epochs"]
        extra += [f"data.limit={SMOKE['limit']}", "train.metrics_examples=100"]
        mlp_extra += [f"data.limit={SMOKE['limit']}", "train.metrics_examples=100"]
        evaluation = {"ais_runs": SMOKE["ais_runs"], "ais_betas": SMOKE["ais_betas"],
                      "samples": SMOKE["samples"]}
    tag = f"{args.name}-smoke" if args.smoke else args.name
    pretrained_tag, tag = tag, tag + (f"-{args.finetune_tag}" if args.finetune_only else "")
    torch.manual_seed(0)  # nothing in the library draws from it; fixed anyway for the MLP's dropout-free run

    rows, record = [], {"stacks": {}}
    stacks = [("-".join(map(str, [784, *layers])), layers)]
    if not args.no_two_layer:
        stacks.append(("-".join(map(str, [784, *two_layer])), two_layer))
    main_stack = RUNS / f"{pretrained_tag}-{stacks[0][0]}"
    if args.finetune_only:
        if not (main_stack / "model.safetensors").exists():
            raise SystemExit(f"--finetune-only needs the pretrained stack {main_stack}; run without it first")
        record["pretrained_reused"] = str(main_stack)
        stacks = []
    for name, widths in stacks:
        out = RUNS / f"{tag}-{name}"
        seconds, total = pretrain(dbn_config(mnist, widths, epochs, extra), out)
        print(f"{name}: pretrained in {total / 60:.1f} minutes; seconds per epoch "
              + ", ".join(f"{stage} {s:.1f}" for stage, s in seconds.items()), flush=True)
        bound = evaluate_run(out, "test", progress=False, **evaluation)
        print(bound.pop("report"), flush=True)
        record["stacks"][name] = {"run_dir": str(out), "seconds_per_epoch": seconds,
                                  "pretrain_minutes": total / 60, "evaluation": bound}
        rows.append((f"test log-likelihood bound, DBN {name}",
                     f"{bound['bound_mean']:.2f} [{bound['bound_low']:.2f}, {bound['bound_high']:.2f}]"))
        rows += [(f"  seconds per epoch, {stage}", f"{s:.1f}") for stage, s in seconds.items()]

    mlp_out = RUNS / f"{tag}-finetuned"
    if mlp_out.exists():
        shutil.rmtree(mlp_out)
    started = time.perf_counter()
    mlp = train(mlp_config(mnist, main_stack, layers, finetune_epochs, mlp_extra), mlp_out, progress=False)
    finetune_minutes = (time.perf_counter() - started) / 60
    test = evaluate_run(mlp_out, "test", progress=False)
    error = 1 - test["accuracy"]
    rows += [("RBM, 500 hidden units (docs/RESULTS.md)", f"{RBM_BEST:.2f}"),
             (f"fine-tuned test error ({finetune_epochs} epochs, {finetune_minutes:.1f} min)",
              f"{100 * error:.2f} % +- {100 * test['accuracy_stderr']:.2f} "
              f"(target <= {100 * TARGET_ERROR:.2f} %)")]
    width = max(len(label) for label, _ in rows)
    print("\n".join(f"{label:<{width}}  {value}" for label, value in rows))

    record.update({
        "command": ("python benchmarks/mnist_dbn.py --mnist ../shared/data/mnist.npz "
                    + ("" if args.name == "mnist_dbn" else f"--name {args.name} ")
                    + ("--smoke" if args.smoke
                       else f"--finetune-epochs {args.finetune_epochs} --finetune-only"
                       + ("" if args.finetune_tag == "finetune" else f" --finetune-tag {args.finetune_tag}")
                       if args.finetune_only
                       else f"--epochs {args.epochs} --finetune-epochs {args.finetune_epochs}")
                    + "".join(f" --set {e}" for e in args.extra)
                    + "".join(f" --finetune-set '{e}'" for e in args.finetune_extra)),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(), "threads": mlp.config.threads,
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "torch": torch.__version__},
        "layers": [784, *layers], "epochs_per_layer": None if args.finetune_only else epochs,
        "evaluation_settings": evaluation,
        "finetune": {"run_dir": str(mlp_out), "epochs": finetune_epochs, "minutes": finetune_minutes,
                     "overrides": mlp_extra,
                     "test_error": error, "test_error_stderr": test["accuracy_stderr"],
                     "last_epoch": mlp.history[-1]},
        "targets": {"test_error": TARGET_ERROR, "rbm_log_likelihood": RBM_BEST},
    })
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{tag}.json"
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
