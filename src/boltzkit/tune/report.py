"""What a study leaves in its output directory: best.yaml, trials.csv, figures, a summary."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import RunConfig
from ..plots import plt
from .space import trial_config

FIGURES = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
    "intermediate_values.png": "plot_intermediate_values",
}


def write_report(study: optuna.Study, config: RunConfig, out: Path, url: str | None = None,
                 echo: bool = True) -> str:
    """Write ``best.yaml``, ``trials.csv`` and the figures; return (and print) a summary."""
    out = Path(out)
    trials = study.get_trials(deepcopy=False)
    write_trials_csv(trials, out / "trials.csv")
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
    _figures(study, out)
    lines.append(f"wrote {out / 'trials.csv'} and figures: {', '.join(FIGURES)}")
    if url:
        lines.append(f"browse it: optuna-dashboard {url}")
    text = "\n".join(lines)
    if echo:
        print(text)
    return text


def write_trials_csv(trials: list[optuna.trial.FrozenTrial], path: Path) -> None:
    """One row per trial: number, state, value, epochs run, seconds, parameters, notes."""
    params = sorted({key for t in trials for key in t.params})
    notes = ("pruned_reason", "error", "run_dir", "worker")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "state", "value", "epochs", "seconds", *params, *notes])
        for t in trials:
            seconds = t.duration.total_seconds() if t.duration else None
            writer.writerow([t.number, t.state.name, t.value, len(t.intermediate_values), seconds,
                             *(t.params.get(k) for k in params), *(t.user_attrs.get(k) for k in notes)])


def _figures(study: optuna.Study, out: Path) -> None:
    import optuna.visualization.matplotlib as vis

    for name, function in FIGURES.items():
        path = out / name
        try:
            with warnings.catch_warnings():  # experimental-API and layout warnings
                warnings.simplefilter("ignore")
                axes = getattr(vis, function)(study)
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                figure.set_size_inches(8, 5)
                figure.tight_layout()
                figure.savefig(path, dpi=100)
        except Exception as err:  # too few trials for this figure: say so in an empty one
            figure = plt.figure(figsize=(6, 2))
            figure.text(0.02, 0.5, f"{name[:-4]}: not available yet ({type(err).__name__}: {err})"[:150],
                        fontsize=8)
            figure.savefig(path, dpi=100)
        plt.close("all")


def _short(value) -> str:
    if isinstance(value, float) and value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4):
        return f"{value:.3g}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
