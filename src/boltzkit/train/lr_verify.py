"""``lr-find --verify``: train the range test's candidate rates briefly and keep the best.

No rule read off a loss curve fits every optimizer and model (docs/RESULTS.md: for SGD the
best rate sits near the curve's minimum, for Adam near its steepest point, and for RBMs
every rule points too low). So the candidates of all rules, plus the curve's minimum
itself, are trained with successive halving (Jamieson & Talwalkar, 2016): all of them for
a quarter of the budget's updates, the best :data:`FINALISTS` for the whole budget, judged
on a validation metric (not the range test's proxy). Each candidate is a fresh
run from the same config and seed, so nothing of the caller's model or optimizer changes.
Compute: ``n/4 + 2`` budgets for ``n`` candidates (usually 3 to 5): a fifth to a quarter
of a 13-point grid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..config import RunConfig
from ..data import Dataset, load_dataset
from ..errors import ConfigError, DivergenceError
from ..families import get_family
from ..seeding import global_rng_state, set_global_rng_state
from .fit import Fit, FitInterrupted

FINALISTS = 2
FIRST_ROUND = 0.25
"""The first round trains every candidate for this fraction of the budget (in updates)."""
MERGE_DECADES = 0.2
"""Candidates closer than this (in log10 of the rate) are one candidate."""
GAP_DECADES = 0.5
"""Between candidates further apart than this, their geometric mean is tried too: the
best rate often lies between two rules (SGD on MNIST: 0.18 between 0.055 and 0.39)."""


@dataclass
class Verification:
    """The short runs behind a verified rate: ``rungs[i]`` = ``{"epochs", "results": {lr: value}}``."""

    metric: str
    direction: str
    candidates: list[float]
    rungs: list[dict[str, Any]] = field(default_factory=list)
    best_lr: float = math.nan
    epochs_spent: float = 0.0
    budget_epochs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """One line per candidate: its value at each rung (``-`` where it stopped)."""
        lines = [f"{'rate':>10s}  " + "  ".join(f"{r['epochs']:>4g} epochs" for r in self.rungs)]
        for lr in self.candidates:
            cells = [f"{r['results'][lr]:10.5g}" if lr in r["results"] else f"{'-':>10s}" for r in self.rungs]
            lines.append(f"{lr:10.3g}  " + "  ".join(cells) + ("   <- best" if lr == self.best_lr else ""))
        return "\n".join(lines)


def candidate_rates(suggestions: dict[str, float], curve_minimum: float | None) -> list[float]:
    """Every rule's rate and the curve's minimum, merged within :data:`MERGE_DECADES`, with
    the geometric mean of neighbours more than :data:`GAP_DECADES` apart added."""
    rates: list[float] = []
    for lr in sorted([*suggestions.values(), *([curve_minimum] if curve_minimum else [])]):
        if not rates or math.log10(lr) - math.log10(rates[-1]) > MERGE_DECADES:
            rates.append(float(lr))
    filled: list[float] = []
    for lr in rates:
        if filled and math.log10(lr) - math.log10(filled[-1]) > GAP_DECADES:
            filled.append(math.sqrt(filled[-1] * lr))
        filled.append(lr)
    return filled


def _score(config: RunConfig, dataset: Dataset, lr: float, epochs: float, metric: str) -> float:
    """The validation ``metric`` after ``epochs`` (a fraction counts updates) at rate ``lr``
    (NaN when it diverged)."""
    run = config.with_overrides({"train.optimizer.lr": lr, "train.epochs": math.ceil(epochs)})
    caller = global_rng_state()
    torch.manual_seed(config.seed)  # dropout draws from the global generator: every candidate alike
    session = Fit(run, dataset)
    updates = round(epochs * session.batches.per_epoch)
    try:
        session.run(should_stop=lambda: session.state.step >= updates)
        metrics = session.history[-1]
    except FitInterrupted:  # part of an epoch: measure where it stopped
        metrics = session.task.epoch_metrics(session.model.eval(), session.epochs_done + 1)
    except DivergenceError:
        return math.nan
    finally:
        set_global_rng_state(caller)
    if metric not in metrics:
        raise ConfigError(f"lr-find --verify judges rates on {metric!r}, which this run does not log "
                          f"(logged: {', '.join(sorted(metrics))}); set train.metrics_examples > 0")
    return float(metrics[metric])


def verify_rates(config: RunConfig, candidates: list[float], epochs: int | None = None,
                 progress: bool = False, metric: str | None = None) -> Verification:
    """Successive halving over ``candidates`` on a validation ``metric`` (default: ``val_loss``
    where the family logs it, finer-grained than an accuracy, else the family's headline
    metric); ``epochs`` is the final rung's budget (default: the config's ``train.epochs``)."""
    family = get_family(config.model.type)
    metric = metric or ("val_loss" if "val_loss" in family.metrics else family.default_metric)
    direction = family.direction(metric) or "minimize"
    budget = epochs or config.train.epochs
    dataset = load_dataset(config.data, config.seed, unit_interval=family.unit_interval(config.model))
    result = Verification(metric, direction, list(candidates), budget_epochs=budget)
    sign = -1.0 if direction == "maximize" else 1.0

    def rank(values: dict[float, float]) -> list[float]:  # best first; diverged (NaN) last
        return sorted(values, key=lambda lr: math.inf if math.isnan(values[lr]) else sign * values[lr])

    alive = list(candidates)
    rungs = [budget * FIRST_ROUND, budget] if len(alive) > FINALISTS else [budget]
    for rung, rung_epochs in enumerate(rungs):
        values = {}
        for lr in alive:
            values[lr] = _score(config, dataset, lr, rung_epochs, metric)
            result.epochs_spent += rung_epochs
            if progress:
                print(f"  verify: rate {lr:.3g}, {rung_epochs:g} epochs: {metric} {values[lr]:.5g}",
                      flush=True)
        result.rungs.append({"epochs": rung_epochs, "results": values})
        alive = rank(values)[: FINALISTS if rung + 1 < len(rungs) else 1]
    result.best_lr = alive[0]
    if math.isnan(result.rungs[-1]["results"][result.best_lr]):
        raise DivergenceError("lr-find --verify: every candidate rate diverged; lower --high")
    return result
