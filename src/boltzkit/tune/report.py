"""What a study leaves in its output directory: best.yaml, trials.csv, figures, a summary."""

from __future__ import annotations

import csv
import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import optuna
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from optuna.trial import TrialState

from ..config import RunConfig
from ..plots import plt
from .space import trial_config

FIGURES = ("optimization_history.png", "param_importances.png", "parallel_coordinate.png",
           "intermediate_values.png")
MIN_TRIALS_FOR_IMPORTANCES = 10  # fANOVA on fewer completed trials ranks noise
LEGEND_TRIALS = 12  # the intermediate-values plot names trials in its legend up to this many


def write_report(study: optuna.Study, config: RunConfig, out: Path, url: str | None = None,
                 echo: bool = True) -> str:
    """Write ``best.yaml``, ``trials.csv`` and the figures; return (and print) a summary."""
    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    write_trials_csv(study, out / "trials.csv")
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    tally = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    lines = [f"study {study.study_name}: {len(trials)} trials ({tally}); "
             f"{config.tune.metric} ({study.direction.name.lower()})"]
    if completed:
        best = study.best_trial
        (out / "best.yaml").write_text(trial_config(config, best.params).to_yaml())
        lines.append(f"best: trial {best.number}, {config.tune.metric} {best.value:.5g}, "
                     + ", ".join(f"{k}={_short(v)}" for k, v in best.params.items()))
        ranked = sorted(completed, key=lambda t: t.value,
                        reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)[:5]
        lines.append(f"{'trial':>5s}  {'value':>10s}  {'epochs':>6s}  params")
        for t in ranked:
            lines.append(f"{t.number:5d}  {t.value:10.5g}  {len(t.intermediate_values):6d}  "
                         + ", ".join(f"{k}={_short(v)}" for k, v in t.params.items()))
        lines.append(f"wrote {out / 'best.yaml'} (train it with: boltzkit train {out / 'best.yaml'})")
    failed = [t for t in trials if t.state == TrialState.FAIL and "error" in t.user_attrs]
    for t in failed[:3]:
        lines.append(f"trial {t.number} failed: {t.user_attrs['error'][:200]}")
    written, skipped = write_figures(study, config.tune.metric, out)
    lines.append(f"wrote {out / 'trials.csv'} and figures: {', '.join(written) or 'none'}")
    lines.extend(f"{name} not drawn: {why}" for name, why in skipped.items())
    if url:
        if importlib.util.find_spec("optuna_dashboard") is None:
            lines.append("browse it in optuna-dashboard, which is not installed: pip install "
                         f"'boltzkit[dashboard]' (or pip install optuna-dashboard), then run: "
                         f"optuna-dashboard {url}")
        else:
            lines.append(f"browse it: optuna-dashboard {url}")
    text = "\n".join(lines)
    if echo:
        print(text)
    return text


TRIAL_COLUMNS = ("number", "state", "value", "epochs", "seconds")


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """One row per trial: number, state, value, epochs run, seconds, then the parameters
    and user attributes (pruned_reason, error, run_dir, worker, ...) under their own
    names, then start and end times. Built on ``study.trials_dataframe()`` where pandas
    is installed."""
    trials = study.get_trials(deepcopy=False)
    if importlib.util.find_spec("pandas") is None:
        _write_trials_csv_plain(trials, path)
        return
    frame = study.trials_dataframe(multi_index=True)
    if frame.empty:
        _write_trials_csv_plain(trials, path)
        return
    params = sorted(key for group, key in frame.columns if group == "params")
    attrs = sorted(key for group, key in frame.columns if group == "user_attrs")
    table = frame[[("number", ""), ("state", ""), ("value", "")]].droplevel(1, axis=1)
    epochs = {t.number: len(t.intermediate_values) for t in trials}
    table["epochs"] = table["number"].map(epochs)
    table["seconds"] = frame[("duration", "")].dt.total_seconds()
    for key in params:
        table[key] = frame[("params", key)]
    for key in attrs:  # whole numbers (a worker's pid) stay integers despite empty cells
        table[key] = frame[("user_attrs", key)].convert_dtypes()
    table["datetime_start"] = frame[("datetime_start", "")]
    table["datetime_complete"] = frame[("datetime_complete", "")]
    table.to_csv(path, index=False)


def _write_trials_csv_plain(trials: list[optuna.trial.FrozenTrial], path: Path) -> None:
    """The same table without pandas."""
    params = sorted({key for t in trials for key in t.params})
    attrs = sorted({key for t in trials for key in t.user_attrs})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*TRIAL_COLUMNS, *params, *attrs, "datetime_start", "datetime_complete"])
        for t in trials:
            seconds = t.duration.total_seconds() if t.duration else None
            writer.writerow([t.number, t.state.name, t.value, len(t.intermediate_values), seconds,
                             *(t.params.get(k) for k in params), *(t.user_attrs.get(k) for k in attrs),
                             t.datetime_start, t.datetime_complete])


def write_figures(study: optuna.Study, metric: str, out: Path) -> tuple[list[str], dict[str, str]]:
    """Save the study's figures in ``out``; returns the files written and, for the others,
    why they were not drawn (a stale file of that name is removed)."""
    written = []
    figures, skipped = build_figures(study, metric)
    for name in FIGURES:
        path = Path(out) / name
        if name in figures:
            figures[name].savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figures[name])
            written.append(name)
        else:
            path.unlink(missing_ok=True)
    return written, skipped


def build_figures(study: optuna.Study, metric: str) -> tuple[dict[str, Figure], dict[str, str]]:
    """The study's figures by file name, and the reasons for those not drawn.

    On top of Optuna's matplotlib plots: the metric names the value axes; trial numbers
    and epochs (1-based) are integer ticks; pruned trials appear in the history at their
    last reported value; importances need ``MIN_TRIALS_FOR_IMPORTANCES`` completed trials.
    """
    import optuna.visualization.matplotlib as vis

    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    builders = {
        "optimization_history.png": lambda: _history(vis, study, trials, metric),
        "param_importances.png": lambda: _importances(vis, study, metric),
        "parallel_coordinate.png": lambda: _parallel(vis, study, metric),
        "intermediate_values.png": lambda: _intermediate(vis, study, trials, metric),
    }
    figures: dict[str, Figure] = {}
    skipped: dict[str, str] = {}
    for name, build in builders.items():
        if name == "param_importances.png" and len(completed) < MIN_TRIALS_FOR_IMPORTANCES:
            skipped[name] = (f"{len(completed)} completed trial(s); parameter importances need at "
                             f"least {MIN_TRIALS_FOR_IMPORTANCES} to mean anything")
            continue
        if name == "intermediate_values.png" and not any(t.intermediate_values for t in trials):
            skipped[name] = "no trial reported a value yet"
            continue
        if name == "parallel_coordinate.png" and not completed:
            skipped[name] = "no completed trial yet"
            continue
        try:
            # Optuna's plots switch matplotlib to the ggplot style: keep that to each figure
            with plt.rc_context(), warnings.catch_warnings():  # experimental-API warnings
                warnings.simplefilter("ignore")
                figures[name] = build()
        except Exception as err:  # e.g. no completed trial yet
            plt.close("all")
            skipped[name] = f"{type(err).__name__}: {err}"[:200]
    return figures, skipped


def _history(vis, study, trials, metric: str) -> Figure:
    ax = vis.plot_optimization_history(study, target_name=metric)
    ax.figure.set_size_inches(8, 5)
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values]
    pruned = [(n, v) for n, v in pruned if math.isfinite(v)]
    if pruned:
        ax.scatter([n for n, _ in pruned], [v for _, v in pruned], marker="x", color="0.45",
                   zorder=3, label="pruned (last reported)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(bbox_to_anchor=(1.02, 1.0), loc="upper left", borderaxespad=0.0)
    return ax.figure


def _importances(vis, study, metric: str) -> Figure:
    ax = vis.plot_param_importances(study, target_name=metric)
    n_params = len(ax.get_yticks())
    ax.figure.set_size_inches(8, max(3.0, 1.5 + 0.5 * n_params))
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    ax.set_title(f"Hyperparameter importances for {metric} ({completed} completed trials)", loc="left")
    return ax.figure


def _parallel(vis, study, metric: str) -> Figure:
    ax = vis.plot_parallel_coordinate(study, target_name=metric)
    labels = ax.get_xticklabels()
    names = {name for t in study.get_trials(deepcopy=False) for name in t.params}
    for label in labels:  # Optuna cuts names at 17 characters: give the config keys back
        text = label.get_text()
        if text.endswith("...") and text not in names:
            full = [name for name in names if name.startswith(text[:-3])]
            if len(full) == 1:
                label.set_text(full[0])
        label.set_rotation(25)  # slanted, each ending under its axis
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")
    ax.set_xticks(ax.get_xticks(), labels)
    for lines in ax.collections:  # the palest trials would vanish into the background
        cmap = lines.get_cmap()  # Blues, or Blues_r when the metric is minimized
        span = (0.0, 0.75) if cmap.name.endswith("_r") else (0.25, 1.0)  # without the palest
        lines.set_cmap(ListedColormap(cmap(np.linspace(*span, 256))))
    ax.figure.set_size_inches(max(8.0, 2.0 * len(labels) + 2.5), 5.5)
    return ax.figure


def _intermediate(vis, study, trials, metric: str) -> Figure:
    ax = vis.plot_intermediate_values(study)
    ax.figure.set_size_inches(8, 5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # trials report step = epoch index from 0: label the steps as epochs from 1
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{round(x) + 1:d}"))
    reported = sum(bool(t.intermediate_values) for t in trials)
    legend = ax.get_legend()
    if legend is not None and reported > LEGEND_TRIALS:
        legend.remove()
        ax.set_title(f"Intermediate values of {reported} trials")
    return ax.figure


def _short(value) -> str:
    if isinstance(value, float) and value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4):
        return f"{value:.3g}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
