"""Learning-rate schedules by name.

Each schedule is a pure function ``factor(t, total, **params)`` giving the multiplier of
the optimizer's initial learning rate at step ``t`` of ``total`` (steps are batches or
epochs, as ``unit`` says), so a schedule can be plotted, tested against its formula
and restored from a checkpoint by restoring ``t`` alone. ``plateau`` is the exception:
it reacts to a metric (``metric``, default ``val_loss``; ``mode`` follows the metric's
direction) and wraps :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..metrics import metric_direction


def constant(t: int, total: int) -> float:
    """``1``."""
    return 1.0


def exponential(t: int, total: int, *, steps: float = 1.0, rate: float = 0.1) -> float:
    """``rate ** (t / steps)``: divides the rate by ``1/rate`` every ``steps`` steps."""
    return rate ** (t / steps)


def power(t: int, total: int, *, steps: float = 1.0, power: float = 1.0) -> float:
    """``1 / (1 + t / steps) ** power`` (power scheduling; ``power=1`` is 1/t decay)."""
    return (1.0 + t / steps) ** -power


def piecewise(
    t: int, total: int, *, boundaries: Sequence[float] = (), values: Sequence[float] = (1.0,)
) -> float:
    """``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]``: multipliers of the rate.

    ``len(values) == len(boundaries) + 1``; boundaries must increase.
    """
    index = sum(1 for b in boundaries if t >= b)
    return values[index]


def cosine(t: int, total: int, *, warmup: float = 0.0, min_factor: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup`` fraction of the run, then a half cosine
    from 1 down to ``min_factor`` at ``t = total`` (Loshchilov & Hutter, 2017)."""
    warm = warmup * total
    if t < warm:
        return (t + 1) / warm
    progress = min(1.0, (t - warm) / max(1.0, total - warm))
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def onecycle(
    t: int,
    total: int,
    *,
    pct_start: float = 0.45,
    div_factor: float = 10.0,
    final_div_factor: float = 100.0,
    anneal: str = "linear",
) -> float:
    """1cycle (Smith, 2018; Smith & Topin, 2019), peak factor 1 = the optimizer's rate.

    ``linear``: rise linearly from ``1/div_factor`` to 1 over ``pct_start`` of the run,
    fall back linearly to ``1/div_factor`` over the next ``pct_start``, then anneal
    linearly to ``1/(div_factor * final_div_factor)`` over the rest ("annihilation").
    ``cos``: the two-phase cosine variant: cosine rise over ``pct_start`` of the run, then
    cosine fall straight to ``1/(div_factor * final_div_factor)``.
    """
    low = 1.0 / div_factor
    final = low / final_div_factor
    x = t / max(1, total)
    if anneal == "cos":
        if x < pct_start:
            return _cos_interp(low, 1.0, x / pct_start)
        return _cos_interp(1.0, final, (x - pct_start) / max(1e-12, 1 - pct_start))
    if x < pct_start:
        return low + (1 - low) * x / pct_start
    if x < 2 * pct_start:
        return 1 - (1 - low) * (x - pct_start) / pct_start
    return low + (final - low) * min(1.0, (x - 2 * pct_start) / max(1e-12, 1 - 2 * pct_start))


def wsd(
    t: int,
    total: int,
    *,
    warmup: float = 0.05,
    decay: float = 0.2,
    min_factor: float = 0.0,
    shape: str = "linear",
) -> float:
    """Warmup-stable-decay: linear warm-up over the first ``warmup`` fraction, constant
    1, then a decay over the last ``decay`` fraction to ``min_factor``, ``linear``,
    ``cosine`` or ``sqrt`` (``1 - sqrt(progress)``, Hägele et al., 2024)."""
    warm, start = warmup * total, (1 - decay) * total
    if t < warm:
        return (t + 1) / warm
    if t < start:
        return 1.0
    progress = min(1.0, (t - start) / max(1.0, total - start))
    if shape == "cosine":
        fall = 0.5 * (1 + math.cos(math.pi * progress))
    elif shape == "sqrt":
        fall = 1 - math.sqrt(progress)
    else:
        fall = 1 - progress
    return min_factor + (1 - min_factor) * fall


def _cos_interp(start: float, end: float, x: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, x)))


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant,
    "exponential": exponential,
    "power": power,
    "piecewise": piecewise,
    "cosine": cosine,
    "onecycle": onecycle,
    "wsd": wsd,
}

PLATEAU_ARGUMENTS = ("metric", "factor", "patience", "threshold", "cooldown", "min_lr", "mode")
SCHEDULE_NAMES = (*SCHEDULES, "plateau")
UNITS = ("epoch", "step")


def schedule_arguments(name: str) -> list[str]:
    """Keyword parameters the named schedule accepts."""
    if name == "plateau":
        return list(PLATEAU_ARGUMENTS)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; accepted: {', '.join(SCHEDULE_NAMES)}")
    params = inspect.signature(SCHEDULES[name]).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check_schedule(name: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for an unknown schedule, parameter or inconsistent values."""
    accepted = schedule_arguments(name)
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"{key!r} is not a parameter of schedule {name!r}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
    if name == "piecewise":
        boundaries = list(params.get("boundaries", ()))
        values = list(params.get("values", (1.0,)))
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"piecewise needs len(values) == len(boundaries) + 1, "
                f"got {len(values)} values for {len(boundaries)} boundaries"
            )
        if boundaries != sorted(boundaries):
            raise ValueError(f"piecewise boundaries must increase, got {boundaries}")
    for key in ("steps", "div_factor", "final_div_factor"):
        if key in params and not float(params[key]) > 0:
            raise ValueError(f"{key} must be > 0, got {params[key]}")
    for key in ("warmup", "decay", "pct_start"):
        if key in params and not 0 <= float(params[key]) <= 1:
            raise ValueError(f"{key} is a fraction of the run and must lie in [0, 1], "
                             f"got {params[key]}")
    if name == "onecycle" and params.get("anneal", "linear") not in ("linear", "cos"):
        raise ValueError(f"onecycle anneal must be 'linear' or 'cos', got {params['anneal']!r}")
    if name == "wsd" and params.get("shape", "linear") not in ("linear", "cosine", "sqrt"):
        raise ValueError(f"wsd shape must be linear, cosine or sqrt, got {params['shape']!r}")


def schedule_factors(name: str, total: int, **params: Any) -> list[float]:
    """The multiplier at every step ``0 .. total - 1`` (for plots and tests)."""
    fn = SCHEDULES[name]
    return [fn(t, total, **params) for t in range(total)]


class Schedule:
    """Drives an optimizer's learning rates from a named schedule.

    Call :meth:`step` once per unit (batch or epoch, as the trainer is told by
    ``unit``); ``plateau`` also takes the epoch's metrics. The state is the step counter
    (and the wrapped plateau scheduler's state), saved by :meth:`state_dict`.

    Args:
        optimizer: whose parameter groups' ``lr`` are set.
        name: one of :data:`SCHEDULE_NAMES`.
        total: number of steps in the run, in ``unit``.
        unit: ``epoch`` or ``step``.
        params: the schedule's keyword parameters.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        name: str = "constant",
        total: int = 1,
        unit: str = "epoch",
        **params: Any,
    ):
        if unit not in UNITS:
            raise ValueError(f"unknown schedule unit {unit!r}; accepted: {', '.join(UNITS)}")
        check_schedule(name, params)
        self.optimizer, self.name, self.total, self.unit = optimizer, name, total, unit
        self.params = params
        self.t = 0
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self._plateau = None
        if name == "plateau":
            options = {k: v for k, v in params.items() if k != "metric"}
            self.metric = params.get("metric", "val_loss")
            options.setdefault("mode", "max" if metric_direction(self.metric) == "maximize" else "min")
            self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
        else:
            self._apply()

    def _apply(self) -> None:
        factor = SCHEDULES[self.name](self.t, self.total, **self.params)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def step(self, metrics: Mapping[str, float] | None = None) -> None:
        """Advance one unit; ``plateau`` reads ``metrics[metric]``."""
        self.t += 1
        if self._plateau is None:
            self._apply()
            return
        if metrics is None or self.metric not in metrics:
            available = ", ".join(sorted(metrics or {}))
            raise ValueError(
                f"plateau schedule watches metric {self.metric!r}, which this run does not "
                f"log; logged metrics: {available}"
            )
        self._plateau.step(metrics[self.metric])

    @property
    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        state = {"t": self.t, "base_lrs": list(self.base_lrs)}
        if self._plateau is not None:
            state["plateau"] = self._plateau.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.t = int(state["t"])
        self.base_lrs = list(state["base_lrs"])
        if self._plateau is not None:
            self._plateau.load_state_dict(state["plateau"])
        else:
            self._apply()


def plot_schedule(
    name: str, params: dict[str, Any], lr: float, epochs: int, steps_per_epoch: int, unit: str,
    path: str,
) -> list[float]:
    """Plot the learning rate at every update of a run into ``path``; returns the rates."""
    from ..plots import plt

    if name == "plateau":
        raise ValueError("the plateau schedule reacts to a metric during training; "
                         "it has no curve to plot in advance")
    check_schedule(name, params)
    steps = epochs * steps_per_epoch
    fn = SCHEDULES[name]
    if unit == "step":
        rates = [lr * fn(t, steps, **params) for t in range(steps)]
    else:
        rates = [lr * fn(t // steps_per_epoch, epochs, **params) for t in range(steps)]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([t / steps_per_epoch for t in range(steps)], rates, color="C0")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    detail = ", ".join(f"{k}={v}" for k, v in params.items())
    ax.set_title(f"{name} ({detail or 'default parameters'}), stepped per {unit}; "
                 f"{epochs} epochs x {steps_per_epoch} updates", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return rates
