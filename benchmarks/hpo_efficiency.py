"""Hyperparameter search efficiency: grid vs random vs TPE + Hyperband on an RBM on digits.

Tuned: learning rate (log-uniform 1e-4..1), hidden units (16..256, log), CD steps k
(1..5), batch size and momentum, for the validation log-likelihood (AIS after every
epoch, 64 runs x 3,000 inverse temperatures; ``val_ais_log_likelihood``). Each
configuration trains for 10 epochs (PCD-k, cosine schedule). TPE starts model-based
sampling after 5 random trials (``tune.startup_trials``).

- grid: 48 configurations, every epoch of every one;
- random search and TPE with Hyperband pruning, on the continuous space, with a budget
  of 20 % of the grid's epochs (the trials run until their cumulative epochs pass it).

The best trial of each method is re-evaluated with a precise AIS (100 runs x 5,000
inverse temperatures) on the validation set, so lucky quick-AIS values do not decide.
Median of 3 seeds. Target: TPE + Hyperband within 1 % of the grid's best value using at
most 20 % of the grid's epochs.

    python benchmarks/hpo_efficiency.py
    python benchmarks/hpo_efficiency.py --plot-only   # redraw the figure from the JSON
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from boltzkit.config import load_config
from boltzkit.data import load_dataset
from boltzkit.estimate.evaluate import binary_view, evaluate_rbm
from boltzkit.plots import plt
from boltzkit.train.run_dir import load_run_model
from boltzkit.tune import run

RESULTS = Path(__file__).parent / "results"
EPOCHS = 10
BASE = [
    f"train.epochs={EPOCHS}", "train.method=pcd", "train.metrics_examples=500",
    "train.schedule={name: cosine, unit: step, min_factor: 0.02}", "train.checkpoint_every=0",
    "eval.every=1", "eval.quick_ais={runs: 64, betas: 3000}", "eval.exact_max_units=0",
    "tune.metric=val_ais_log_likelihood",
]
GRID = ("{train.optimizer.lr: {values: [0.001, 0.01, 0.1]}, model.n_hidden: {values: [32, 128]}, "
        "train.k: {values: [1, 5]}, train.batch_size: {values: [16, 64]}, "
        "train.optimizer.momentum: {values: [0.5, 0.9]}}")
SPACE = ("{train.optimizer.lr: {low: 1.0e-4, high: 1.0, log: true}, "
         "model.n_hidden: {low: 16, high: 256, log: true, type: int}, "
         "train.k: {low: 1, high: 5, type: int}, train.batch_size: {choices: [16, 32, 64, 128]}, "
         "train.optimizer.momentum: {low: 0.0, high: 0.95}}")


def search(method: str, pruner: str, space: str, n_trials: int, seed: int, out: Path, *extra: str):
    config = load_config(None, [*BASE, f"seed={seed}", f"tune.method={method}", f"tune.pruner={pruner}",
                                f"tune.n_trials={n_trials}", f"tune.space={space}", *extra])
    started = time.perf_counter()
    study = run(config, out, progress=False)
    return config, study, time.perf_counter() - started


def best_within(study, budget: float | None):
    """The best finished trial among those started before the cumulative epochs passed
    ``budget`` (all trials if None), and the epochs consumed up to it."""
    used, best = 0, None
    for trial in sorted(study.trials, key=lambda t: t.number):
        if budget is not None and used >= budget:
            break
        used += len(trial.intermediate_values)
        if trial.state.name == "COMPLETE" and (best is None or trial.value > best.value):
            best = trial
    return best, used


def precise(config, trial, data) -> float:
    model = load_run_model(trial.user_attrs["run_dir"]).model
    generator = torch.Generator().manual_seed(0)
    result = evaluate_rbm(model, binary_view(data.validation, generator), data.train, ais_runs=100,
                          ais_betas=5000, exact_max_units=0)
    return result["log_likelihood_ais"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget-fraction", type=float, default=0.2)
    parser.add_argument("--out", default=str(RESULTS / "hpo_efficiency.json"))
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figure from the curves saved in --out, without training")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads(Path(args.out).read_text())
        if "curves" not in saved:
            sys.exit(f"{args.out} holds no curves (written before they were saved): rerun the benchmark")
        grid_epochs = next(r["median_epochs"] for r in saved["summary"] if r["method"] == "grid")
        figure = plot(saved["curves"], args.budget_fraction * grid_epochs, args.budget_fraction,
                      Path(args.out).with_suffix(".png"))
        print(f"wrote {figure}")
        return
    rows, curves = [], {}
    for seed in range(args.seeds):
        data = load_dataset(load_config(None, []).data, seed)  # the trials' validation split
        with tempfile.TemporaryDirectory() as tmp:
            config, grid_study, grid_seconds = search("grid", "none", GRID, 48, seed, Path(tmp) / "grid")
            grid_best, grid_epochs = best_within(grid_study, None)
            budget = args.budget_fraction * grid_epochs
            n = int(budget // EPOCHS) + 1  # random search: every trial runs its 10 epochs
            _, random_study, random_seconds = search("random", "none", SPACE, n, seed, Path(tmp) / "random")
            _, tpe_study, tpe_seconds = search("tpe", "hyperband", SPACE, 80, seed, Path(tmp) / "tpe",
                                               "tune.startup_trials=5")
            for name, study, seconds in (("grid", grid_study, grid_seconds),
                                         ("random", random_study, random_seconds),
                                         ("tpe+hyperband", tpe_study, tpe_seconds)):
                best, used = best_within(study, None if name == "grid" else budget)
                value = precise(config, best, data)
                rows.append({"seed": seed, "method": name, "epochs": used, "trials": len(study.trials),
                             "best_trial": best.number, "best_quick_value": best.value,
                             "best_precise_value": value, "params": best.params, "seconds": seconds})
                curves.setdefault(name, []).append(_curve(study))
                print(f"seed {seed} {name:14s}: {used:4d} epochs, {len(study.trials):3d} trials, "
                      f"best {value:.3f} (quick {best.value:.3f}) {best.params}", flush=True)

    summary = []
    print(f"\n{'method':14s} {'epochs':>7s} {'% of grid':>9s} {'best val LL (nats)':>19s} {'vs grid':>8s}")
    grid_value = statistics.median(r["best_precise_value"] for r in rows if r["method"] == "grid")
    grid_epochs = statistics.median(r["epochs"] for r in rows if r["method"] == "grid")
    for name in ("grid", "random", "tpe+hyperband"):
        group = [r for r in rows if r["method"] == name]
        value = statistics.median(r["best_precise_value"] for r in group)
        epochs = statistics.median(r["epochs"] for r in group)
        gap = (grid_value - value) / abs(grid_value)
        summary.append({"method": name, "median_epochs": epochs, "median_best_value": value,
                        "fraction_of_grid_epochs": epochs / grid_epochs, "relative_gap_to_grid": gap})
        print(f"{name:14s} {epochs:7.0f} {100 * epochs / grid_epochs:8.0f}% {value:19.3f} {100 * gap:7.2f}%")
    tpe = summary[-1]
    met = tpe["relative_gap_to_grid"] <= 0.01 and tpe["fraction_of_grid_epochs"] <= 0.2
    print(f"target (TPE+Hyperband within 1 % of the grid's best with <= 20 % of its epochs): "
          f"{'met' if met else 'NOT met'}")

    RESULTS.mkdir(exist_ok=True)
    figure = plot(curves, args.budget_fraction * grid_epochs, args.budget_fraction,
                  Path(args.out).with_suffix(".png"))
    Path(args.out).write_text(json.dumps({
        "command": "python benchmarks/hpo_efficiency.py", "threads": torch.get_num_threads(),
        "epochs_per_trial": EPOCHS, "summary": summary, "target_met": met, "runs": rows,
        "curves": curves}, indent=1))
    print(f"wrote {args.out} and {figure}")


def plot(curves: dict[str, list], budget: float, fraction: float, path: Path) -> Path:
    """Best value so far against epochs consumed: a colour per method, a line style (and
    width, widest first) per seed, a marker where each run ends, so coinciding runs stay
    visible."""
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(8, 5))
    seeds = max(len(runs) for runs in curves.values())
    for index, runs in enumerate(curves.values()):
        for k, (epochs, best) in enumerate(runs):
            if not epochs:
                continue
            width = 1.5 + 1.5 * (seeds - 1 - k) / max(1, seeds - 1)
            ax.plot(epochs, best, color=f"C{index}", linestyle=styles[k % len(styles)], linewidth=width,
                    drawstyle="steps-post", alpha=0.85, zorder=2 + k)
            ax.plot(epochs[-1], best[-1], marker="o", color=f"C{index}", markersize=5, zorder=10)
    ax.axvspan(0, budget, color="0.92", zorder=0)
    handles = [Line2D([], [], color=f"C{i}", linewidth=2, label=name) for i, name in enumerate(curves)]
    handles += [Line2D([], [], color="0.3", linestyle=styles[k % len(styles)], label=f"seed {k}")
                for k in range(seeds)]
    handles += [Patch(color="0.92", label=f"within {100 * fraction:.0f} % of the grid's epochs"),
                Line2D([], [], color="0.3", marker="o", linestyle="", label="end of a run")]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xlabel("training epochs consumed")
    ax.set_ylabel("best val. log-likelihood so far\n(quick AIS, nats)")
    ax.set_title("HPO efficiency: best value found against training epochs")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _curve(study) -> tuple[list[int], list[float]]:
    used, best, xs, ys = 0, None, [], []
    for trial in sorted(study.trials, key=lambda t: t.number):
        used += len(trial.intermediate_values)
        if trial.state.name == "COMPLETE" and (best is None or trial.value > best):
            best = trial.value
        if best is not None:
            xs.append(used)
            ys.append(best)
    return xs, ys


if __name__ == "__main__":
    main()
