"""Does the learning-rate range test pick good rates? boltzkit vs torch-lr-finder vs a grid.

For each task, the final validation loss after a fixed training budget (constant rate,
same seed, boltzkit's trainer) at

  (i)   boltzkit's suggestion (``boltzkit lr-find``, default rule),
  (ii)  torch-lr-finder's suggestion (PyPI ``torch-lr-finder``, its default
        steepest-gradient rule) on the same model, optimizer, data and range,
  (iii) the best of a 13-point log grid over the same range (half-decade steps).

Tasks: logistic regression on digits (SGD), an MNIST MLP with SGD + momentum, the same
with Adam, and an RBM on digits (PCD; its "validation loss" is the negative validation
pseudo-log-likelihood, nats per example). Targets: boltzkit within 5 % of the grid's
best loss on every task, and never worse than torch-lr-finder's pick.

    python benchmarks/lr_finder_quality.py --mnist ../shared/data/mnist.npz
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from boltzkit.config import RunConfig, load_config  # noqa: F401
from boltzkit.train import Fit, train
from boltzkit.train.lr_find_run import find_lr

RESULTS = Path(__file__).parent / "results"


def tasks(mnist: Path) -> dict[str, dict]:
    mnist_data = ["data.name=npz", f"data.path={mnist}", "data.binarize=none", "data.validation=0.0833"]
    mlp = ["model={type: mlp}", "model.hidden_layers=[256]", "train.batch_size=128", "train.epochs=2",
           "train.metrics_examples=5000", *mnist_data]
    return {
        "digits logistic regression, SGD": {
            "overrides": ["model={type: mlp}", "model.hidden_layers=[]", "data.binarize=none",
                          "train.batch_size=32", "train.epochs=10", "train.optimizer={name: sgd, lr: 0.1}"],
            "metric": "val_loss", "low": 1e-6, "high": 10.0},
        "MNIST MLP, SGD + momentum 0.9": {
            "overrides": [*mlp, "train.optimizer={name: sgd, lr: 0.1, momentum: 0.9}"],
            "metric": "val_loss", "low": 1e-6, "high": 10.0},
        "MNIST MLP, Adam": {
            "overrides": [*mlp, "train.optimizer={name: adam, lr: 0.001}"],
            "metric": "val_loss", "low": 1e-6, "high": 10.0},
        "RBM on digits, PCD-1": {
            "overrides": ["train.epochs=20", "train.k=1", "model.n_hidden=100",
                          "train.optimizer={name: sgd, lr: 0.05, momentum: 0.9}"],
            "metric": "val_pseudo_log_likelihood", "low": 1e-5, "high": 10.0},
    }


def final_loss(overrides: list[str], lr: float, metric: str) -> float:
    """Train the fixed budget at a constant ``lr``; the final validation loss."""
    run = load_config(None, [*overrides, f"train.optimizer.lr={float(lr)!r}"])
    torch.manual_seed(run.seed)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            history = train(run, Path(tmp) / "run", progress=False).history
        except Exception as err:  # a rate that diverges is a (very) bad rate
            print(f"    lr {lr:.3g}: {type(err).__name__}")
            return float("inf")
    value = history[-1][metric]
    return -value if metric == "val_pseudo_log_likelihood" else value


def torch_lr_finder_pick(config: RunConfig, low: float, high: float, iterations: int) -> float:
    """torch-lr-finder's range test and default suggestion on the same model and data."""
    from torch_lr_finder import LRFinder

    torch.manual_seed(config.seed)
    session = Fit(config)
    task, model, step = session.task, session.model, session.train_step()
    if config.model.type == "mlp":
        dataset = torch.utils.data.TensorDataset(task.train_x, task.train_y)
        criterion: nn.Module = nn.CrossEntropyLoss()
        wrapped: nn.Module = model
    else:
        # The RBM's gradient is the CD surrogate's; the recorded value is boltzkit's proxy on
        # the training batch, so both finders watch the same number.
        dataset = torch.utils.data.TensorDataset(task.train_x, torch.zeros(len(task.train_x)))

        class Surrogate(nn.Module):
            def __init__(self):
                super().__init__()
                self.rbm = model

            def forward(self, x):
                batch = task.data.binarize_batch(x, session.data_rng)
                loss = step.objective.loss(self.rbm, batch)
                proxy = task.proxy_loss(self.rbm, batch)
                return loss - loss.detach() + proxy.detach()

        wrapped = Surrogate()
        criterion = _Identity()
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(config.seed))
    finder = LRFinder(wrapped, step.optimizer, criterion, device="cpu")
    finder.range_test(loader, start_lr=low, end_lr=high, num_iter=iterations)
    import matplotlib

    matplotlib.use("Agg")
    result = finder.plot(suggest_lr=True)
    finder.reset()
    import matplotlib.pyplot as plt

    plt.close("all")
    if isinstance(result, tuple) and result[1] is not None:
        return float(result[1])
    return float("nan")


class _Identity(nn.Module):
    def forward(self, output, target):
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get("BOLTZKIT_MNIST", "../shared/data/mnist.npz"))
    parser.add_argument("--only", help="run only the tasks whose name contains this text")
    parser.add_argument("--out", default=str(RESULTS / "lr_finder_quality.json"))
    parser.add_argument("--verify", action="store_true",
                        help="run lr-find --verify on each task and compare its pick with the grid and "
                             "torch-lr-finder results already in --out (writes lr_finder_verify.json)")
    args = parser.parse_args()
    if args.verify:
        verify_main(args)
        return
    mnist = Path(args.mnist).resolve()
    rows = []
    for name, spec in tasks(mnist).items():
        if args.only and args.only not in name:
            continue
        if "MNIST" in name and not mnist.is_file():
            print(f"skipping {name}: no MNIST at {mnist}")
            continue
        started = time.perf_counter()
        overrides = [*spec["overrides"], "train.schedule={name: constant}", "train.checkpoint_every=0"]
        config = load_config(None, overrides)
        low, high, metric = spec["low"], spec["high"], spec["metric"]
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(config.seed)
            ours, _ = find_lr(config, tmp, low=low, high=high, progress=False)
        iterations = 300 if config.model.type == "rbm" else 100  # boltzkit's defaults, for both
        theirs = torch_lr_finder_pick(config, low, high, iterations)
        grid = np.geomspace(low, high, 13)
        print(f"{name}: boltzkit {ours.suggestion:.3g} ({ours.confidence}), torch-lr-finder {theirs:.3g}")
        grid_losses = [final_loss(overrides, lr, metric) for lr in grid]
        best = int(np.argmin(grid_losses))
        our_loss = final_loss(overrides, ours.suggestion, metric)
        their_loss = final_loss(overrides, theirs, metric) if np.isfinite(theirs) else float("inf")
        row = {
            "task": name, "metric": "negative " + metric if "likelihood" in metric else metric,
            "boltzkit_lr": ours.suggestion, "boltzkit_rule": ours.rule,
            "boltzkit_suggestions": ours.suggestions, "boltzkit_confidence": ours.confidence,
            "boltzkit_loss": our_loss, "boltzkit_curve": {"lrs": ours.lrs, "losses": ours.losses},
            "torch_lr_finder_lr": theirs, "torch_lr_finder_loss": their_loss,
            "grid_lrs": grid.tolist(), "grid_losses": grid_losses, "grid_best_lr": float(grid[best]),
            "grid_best_loss": grid_losses[best],
            "within_5_percent_of_grid": our_loss <= grid_losses[best] + 0.05 * abs(grid_losses[best]),
            "not_worse_than_torch_lr_finder": our_loss <= their_loss,
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        print(f"  final loss: boltzkit {our_loss:.4f}, torch-lr-finder {their_loss:.4f}, "
              f"grid best {grid_losses[best]:.4f} at {grid[best]:.3g}")

    print(f"\n{'task':34s} {'boltzkit lr':>11s} {'loss':>8s} {'tlf lr':>9s} {'loss':>8s} "
          f"{'grid lr':>9s} {'loss':>8s}  within 5%  >= tlf")
    for r in rows:
        print(f"{r['task']:34s} {r['boltzkit_lr']:11.3g} {r['boltzkit_loss']:8.4f} "
              f"{r['torch_lr_finder_lr']:9.3g} {r['torch_lr_finder_loss']:8.4f} {r['grid_best_lr']:9.3g} "
              f"{r['grid_best_loss']:8.4f}  {'yes' if r['within_5_percent_of_grid'] else 'NO':>9s}  "
              f"{'yes' if r['not_worse_than_torch_lr_finder'] else 'NO':>5s}")
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/lr_finder_quality.py --mnist ../shared/data/mnist.npz",
        "threads": torch.get_num_threads(), "tasks": rows}, indent=2, default=float))
    print(f"wrote {args.out}")


def verify_main(args: argparse.Namespace) -> None:
    """``--verify``: the verified pick of each task against the stored grid and torch-lr-finder
    losses (the grid is not trained again: 13 budgets per task)."""
    stored = {row["task"]: row for row in json.loads(Path(args.out).read_text())["tasks"]}
    mnist = Path(args.mnist).resolve()
    rows = []
    for name, spec in tasks(mnist).items():
        if (args.only and args.only not in name) or name not in stored:
            continue
        started = time.perf_counter()
        overrides = [*spec["overrides"], "train.schedule={name: constant}", "train.checkpoint_every=0"]
        config = load_config(None, overrides)
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(config.seed)
            ours, _ = find_lr(config, tmp, low=spec["low"], high=spec["high"], verify=True, progress=False)
        check = ours.verification
        loss = final_loss(overrides, ours.suggestion, spec["metric"])
        old = stored[name]
        best = old["grid_best_loss"]
        rows.append({
            "task": name, "verified_lr": ours.suggestion, "verified_loss": loss,
            "candidates": check["candidates"], "verify_epochs": check["epochs_spent"],
            "grid_epochs": 13 * config.train.epochs, "rule_lr": old["boltzkit_lr"],
            "rule_loss": old["boltzkit_loss"],
            "torch_lr_finder_loss": old["torch_lr_finder_loss"], "grid_best_lr": old["grid_best_lr"],
            "grid_best_loss": best, "within_5_percent_of_grid": loss <= best + 0.05 * abs(best),
            "not_worse_than_torch_lr_finder": loss <= old["torch_lr_finder_loss"],
            "compute_fraction_of_grid": check["epochs_spent"] / (13 * config.train.epochs),
            "seconds": time.perf_counter() - started})
        print(rows[-1], flush=True)
    print(f"\n{'task':34s} {'verified lr':>11s} {'loss':>8s} {'grid lr':>9s} {'loss':>8s} {'tlf loss':>9s} "
          f"{'compute':>8s}  within 5%  >= tlf")
    for r in rows:
        print(f"{r['task']:34s} {r['verified_lr']:11.3g} {r['verified_loss']:8.4f} {r['grid_best_lr']:9.3g} "
              f"{r['grid_best_loss']:8.4f} {r['torch_lr_finder_loss']:9.4f} "
              f"{100 * r['compute_fraction_of_grid']:7.0f}%  "
              f"{'yes' if r['within_5_percent_of_grid'] else 'NO':>9s}"
              f"  {'yes' if r['not_worse_than_torch_lr_finder'] else 'NO':>5s}")
    out = Path(args.out).with_name("lr_finder_verify.json")
    out.write_text(json.dumps({"command": "python benchmarks/lr_finder_quality.py --verify "
                                          "--mnist ../shared/data/mnist.npz",
                               "threads": torch.get_num_threads(), "tasks": rows}, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
