"""Steps and seconds to 98 % validation accuracy on MNIST with an MLP, per optimizer.

SGD, SGD with momentum, Nesterov, AdaGrad, RMSProp, Adam and NAdam, each with a
constant rate and with 1cycle (linear warm-up to 4x the constant rate over 30 % of the
budget, back down, then annealing), median of 3 seeds. The MLP is 784-256-256-10 ReLU
with He initialisation, batch 128; 5,000 training images are held out for validation,
which is measured every 50 updates. The constant rates are the usual defaults for each
optimizer (named in RATES); the budget is 15 epochs.

    python benchmarks/optimizers.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from _machine import mnist_file

from boltzkit.config import load_config
from boltzkit.plots import plt
from boltzkit.train import Fit

RESULTS = Path(__file__).parent / "results"
TARGET = 0.98
RATES = {  # the common default rate of each optimizer
    "SGD": "{name: sgd, lr: 0.1}",
    "momentum": "{name: sgd, lr: 0.01, momentum: 0.9}",
    "Nesterov": "{name: sgd, lr: 0.01, momentum: 0.9, nesterov: true}",
    "AdaGrad": "{name: adagrad, lr: 0.01}",
    "RMSProp": "{name: rmsprop, lr: 0.001}",
    "Adam": "{name: adam, lr: 0.001}",
    "NAdam": "{name: nadam, lr: 0.002}",
}
SCHEDULES = {
    "constant": "{name: constant, unit: step}",
    "1cycle": "{name: onecycle, unit: step, pct_start: 0.3, div_factor: 4, final_div_factor: 100}",
}


def one_run(mnist: Path, optimizer: str, schedule: str, seed: int, epochs: int, every: int) -> dict:
    overrides = [
        "model={type: mlp}", "model.hidden_layers=[256, 256]", "model.init=he",
        "data.name=npz", f"data.path={mnist}", "data.binarize=none", "data.validation=0.0833",
        f"seed={seed}", f"train.epochs={epochs}", "train.batch_size=128",
        f"train.optimizer={RATES[optimizer]}", f"train.schedule={SCHEDULES[schedule]}",
    ]
    config = load_config(None, overrides)
    if schedule == "1cycle":  # peak at 4x the constant rate, starting from it
        config = load_config(None, [*overrides, f"train.optimizer.lr={4 * config.train.optimizer.lr!r}"])
    torch.manual_seed(seed)
    session = Fit(config)
    model, task, update = session.model, session.task, session.train_step()
    val_x, val_y = task.monitor["val"]
    batches = (task.batch(rows, session.data_rng) for rows in session.batches.endless())
    curve, reached = [], None
    seconds = 0.0
    for step in range(1, epochs * session.batches.per_epoch + 1):
        started = time.perf_counter()
        model.train()
        loss = update.objective.loss(model, next(batches))
        update.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        update.optimizer.step()
        update.schedule.step()
        seconds += time.perf_counter() - started
        if step % every == 0:
            model.eval()
            with torch.no_grad():
                logits = model(val_x)
                val_loss = torch.nn.functional.cross_entropy(logits, val_y).item()
                accuracy = (logits.argmax(1) == val_y).float().mean().item()
            curve.append((step, seconds, val_loss, accuracy))
            if reached is None and accuracy >= TARGET:
                reached = (step, seconds)
    return {"optimizer": optimizer, "schedule": schedule, "seed": seed, "curve": curve,
            "steps_to_target": reached[0] if reached else None,
            "seconds_to_target": reached[1] if reached else None,
            "final_accuracy": curve[-1][3], "best_accuracy": max(c[3] for c in curve)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=int, default=50, help="updates between validations")
    parser.add_argument("--only", help="run only the optimizers whose name contains this text")
    parser.add_argument("--out", default=str(RESULTS / "optimizers.json"))
    args = parser.parse_args()
    names = [name for name in RATES if not args.only or args.only in name]
    mnist = mnist_file(args.mnist)
    runs = []
    for optimizer in names:
        for schedule in SCHEDULES:
            for seed in range(args.seeds):
                result = one_run(mnist, optimizer, schedule, seed, args.epochs, args.every)
                runs.append(result)
                print(f"{optimizer:9s} {schedule:9s} seed {seed}: steps {result['steps_to_target']}, "
                      f"seconds {result['seconds_to_target'] and round(result['seconds_to_target'], 1)}, "
                      f"best accuracy {result['best_accuracy']:.4f}", flush=True)

    def median(values):
        values = [v if v is not None else float("inf") for v in values]
        return statistics.median(values)

    print(f"\n{'optimizer':10s} {'schedule':9s} {'steps to 98%':>13s} {'seconds':>8s} {'reached':>8s} "
          f"{'best acc.':>9s}")
    table = []
    for optimizer in names:
        for schedule in SCHEDULES:
            group = [r for r in runs if r["optimizer"] == optimizer and r["schedule"] == schedule]
            row = {"optimizer": optimizer, "schedule": schedule, "rate": RATES[optimizer],
                   "median_steps": median([r["steps_to_target"] for r in group]),
                   "median_seconds": median([r["seconds_to_target"] for r in group]),
                   "reached": sum(r["steps_to_target"] is not None for r in group),
                   "median_best_accuracy": statistics.median(r["best_accuracy"] for r in group)}
            table.append(row)
            print(f"{optimizer:10s} {schedule:9s} {row['median_steps']:13} {row['median_seconds']:8.1f} "
                  f"{row['reached']:>5d}/{len(group)} {row['median_best_accuracy']:9.4f}")

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, schedule in zip(axes, SCHEDULES, strict=True):
        for index, optimizer in enumerate(names):
            run = next(r for r in runs if r["optimizer"] == optimizer and r["schedule"] == schedule
                       and r["seed"] == 0)
            ax.plot([c[1] for c in run["curve"]], [c[2] for c in run["curve"]], color=f"C{index}",
                    label=optimizer)
        ax.set_yscale("log")
        ax.set_xlabel(f"training seconds ({torch.get_num_threads()} CPU thread(s))")
        ax.set_title(f"{schedule} rate, seed 0", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("validation loss")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    figure = Path(args.out).with_suffix(".png")
    fig.savefig(figure, dpi=100)
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/optimizers.py --mnist ../shared/data/mnist.npz",
        "threads": torch.get_num_threads(), "target_accuracy": TARGET, "epochs": args.epochs,
        "table": table, "runs": runs}, indent=1))
    print(f"wrote {args.out} and {figure}")


if __name__ == "__main__":
    main()
