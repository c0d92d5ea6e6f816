"""Learning-rate schedules by name.

Each schedule is a pure function ``factor(t, total, **params)`` giving the multiplier of
the optimizer's initial learning rate at step ``t`` of ``total``. A step is one ``unit``
of the run: a batch (``unit: step``) or an epoch (``unit: epoch``), and ``total`` is the
run's length in that unit. :class:`FactorSchedule` drives an optimizer with one of them
through :class:`torch.optim.lr_scheduler.LambdaLR`, so a schedule can be plotted, tested
against its formula and restored from a checkpoint by LambdaLR's own state.

Schedules that react to the run instead of the clock are classes in :data:`REACTIVE`:
``plateau`` watches a metric (``metric``, default ``val_loss``; ``mode`` from the
metric's direction, which the trainer knows) and wraps
:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`. :func:`make_schedule` builds either
kind behind one interface, :class:`Schedule`.

Parameters and their units. Two kinds of length appear: *counts* of ``unit`` (absolute:
they mean a different point of the run when ``unit`` or the run length changes) and
*fractions* of the run (relative: ``0.1`` is the first tenth whatever ``total`` is).
Every value is a multiplier of the optimizer's ``lr`` unless it says otherwise.

============  =====================  ==========================================  ===============
schedule      parameter              unit                                        default
============  =====================  ==========================================  ===============
constant      (none)
exponential   ``steps``              count of ``unit``                           1
exponential   ``rate``               factor per ``steps``                        0.1
power         ``steps``              count of ``unit``                           1
power         ``power``              exponent                                    1
piecewise     ``boundaries``         counts of ``unit`` (absolute, increasing)   ``()``
piecewise     ``values``             multipliers, one more than boundaries       ``(1.0,)``
cosine        ``warmup``             fraction of the run                         0
cosine        ``min_factor``         multiplier at the end                       0
onecycle      ``pct_start``          fraction of the run                         0.45
onecycle      ``div_factor``         start = peak / div_factor                   10
onecycle      ``final_div_factor``   end = start / final_div_factor              100
onecycle      ``anneal``             ``linear`` or ``cos``                       ``linear``
wsd           ``warmup``             fraction of the run                         0.05
wsd           ``decay``              fraction of the run (the last one)          0.2
wsd           ``min_factor``         multiplier at the end                       0
wsd           ``shape``              ``linear``, ``cosine`` or ``sqrt``          ``linear``
plateau       ``metric``             a logged metric's name                      ``val_loss``
plateau       ``factor``             multiplier per reduction                    0.1
plateau       ``patience``           epochs without improvement                  10
plateau       ``threshold``          relative improvement that counts            1e-4
plateau       ``cooldown``           epochs to wait after a reduction            0
plateau       ``min_lr``             absolute learning rate (a floor)            0
plateau       ``mode``               ``min`` or ``max``                          the metric's direction
============  =====================  ==========================================  ===============

``plateau`` steps once per epoch (its defaults are ReduceLROnPlateau's).
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch

from .keywords import check_keywords, finite_number


def constant(t: int, total: int) -> float:
    """``1``."""
    return 1.0


def exponential(t: int, total: int, *, steps: float = 1.0, rate: float = 0.1) -> float:
    """``rate ** (t / steps)``: multiplies the rate by ``rate`` every ``steps`` steps.

    ``steps`` is a count of the schedule's ``unit`` (batches or epochs), not a fraction of
    the run; ``rate`` is the factor applied per ``steps``.
    """
    return rate ** (t / steps)


def power(t: int, total: int, *, steps: float = 1.0, power: float = 1.0) -> float:
    """``1 / (1 + t / steps) ** power`` (power scheduling; ``power=1`` is 1/t decay).

    ``steps`` is a count of the schedule's ``unit`` (batches or epochs): the rate has
    fallen to ``2 ** -power`` of its start after ``steps`` of them.
    """
    return (1.0 + t / steps) ** -power


def piecewise(
    t: int, total: int, *, boundaries: Sequence[float] = (), values: Sequence[float] = (1.0,)
) -> float:
    """``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]``: multipliers of the rate.

    ``boundaries`` are absolute counts of the schedule's ``unit`` (batches with
    ``unit: step``, epochs with ``unit: epoch``), not fractions of the run: with
    ``unit: step`` a boundary of 500 is the 500th update, whatever the run's length.
    ``len(values) == len(boundaries) + 1``; boundaries must increase.
    """
    index = sum(1 for b in boundaries if t >= b)
    return values[index]


def cosine(t: int, total: int, *, warmup: float = 0.0, min_factor: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup`` fraction of the run, then a half cosine
    from 1 down to ``min_factor`` at ``t = total`` (Loshchilov & Hutter, 2017).

    ``warmup`` is a fraction of the run in [0, 1] (``0.1``: the first tenth of ``total``);
    ``min_factor`` is the final multiplier of the rate.
    """
    warm = warmup * total
    if t < warm:
        return warming_up(t, warm)
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
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> float:
    """1cycle (Smith, 2018; Smith & Topin, 2019), peak factor 1 = the optimizer's rate.

    Momentum cycles inversely to the rate, as Smith prescribes (on by default,
    ``cycle_momentum``): ``max_momentum`` where the rate is at its start ``1/div_factor``
    or below, ``base_momentum`` at the peak, linear in the rate between (see
    :func:`onecycle_momentum`; SGD's and RMSprop's ``momentum``, Adam's ``beta1``).

    ``linear``: rise linearly from ``1/div_factor`` to 1 over ``pct_start`` of the run,
    fall back linearly to ``1/div_factor`` over the next ``pct_start``, then anneal
    linearly to ``1/(div_factor * final_div_factor)`` over the rest ("annihilation").
    ``cos``: the two-phase cosine variant: cosine rise over ``pct_start`` of the run, then
    cosine fall straight to ``1/(div_factor * final_div_factor)``.

    ``pct_start`` is a fraction of the run in [0, 1] (so ``linear`` needs it <= 0.5 to
    leave room for the annihilation); ``div_factor`` and ``final_div_factor`` are ratios.
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


def onecycle_momentum(factor: float, *, div_factor: float = 10.0, base_momentum: float = 0.85,
                      max_momentum: float = 0.95, **_: Any) -> float:
    """The momentum that goes with rate multiplier ``factor`` in 1cycle: linear in the rate,
    ``max_momentum`` at ``1/div_factor`` (and below, in the annihilation) and
    ``base_momentum`` at the peak ``1``."""
    low = 1.0 / div_factor
    rise = min(1.0, max(0.0, (factor - low) / max(1e-12, 1.0 - low)))
    return max_momentum - (max_momentum - base_momentum) * rise


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
    ``cosine`` or ``sqrt`` (``1 - sqrt(progress)``, Hägele et al., 2024).

    ``warmup`` and ``decay`` are fractions of the run in [0, 1] (the first and the last
    part of ``total``); ``min_factor`` is the final multiplier of the rate.
    """
    warm, start = warmup * total, (1 - decay) * total
    if t < warm:
        return warming_up(t, warm)
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


def warming_up(t: int, warm: float) -> float:
    """The linear warm-up shared by ``cosine`` and ``wsd``: ``(t + 1) / warm`` for ``t < warm``
    (the first step already trains, at ``1 / warm`` of the rate)."""
    return (t + 1) / warm


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

UNITS = ("epoch", "step")
PLATEAU_ARGUMENTS = ("metric", "factor", "patience", "threshold", "cooldown", "min_lr", "mode")


class Schedule:
    """Drives an optimizer's learning rates; built by :func:`make_schedule`.

    Call :meth:`step` once per ``unit`` (batch or epoch), with the epoch's metrics where
    the trainer has them. ``t`` counts the steps taken; ``base_lrs`` are the rates the
    schedule's multipliers apply to. The state round-trips through :meth:`state_dict`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total: int = 1, unit: str = "epoch"):
        if unit not in UNITS:
            raise ValueError(f"unknown schedule unit {unit!r}; accepted: {', '.join(UNITS)}")
        self.optimizer, self.total, self.unit = optimizer, total, unit

    def step(self, metrics: Mapping[str, float] | None = None) -> None:
        raise NotImplementedError

    @property
    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def scale(self, factor: float) -> None:
        """Multiply the rates, now and for the rest of the run (``train.backoff``)."""
        self.base_lrs = [rate * factor for rate in self.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= factor


class FactorSchedule(Schedule):
    """A pure schedule: ``lr = base_lr * SCHEDULES[name](t, total, **params)``, run by a
    :class:`torch.optim.lr_scheduler.LambdaLR` (``scheduler``) whose lambda is the factor
    function with ``total`` and ``params`` bound.

    ``state_dict`` is LambdaLR's; :meth:`load_state_dict` also accepts the
    ``{"t": steps taken, "base_lrs": [...]}`` form that checkpoints written before
    LambdaLR was used hold.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, total: int = 1,
                 unit: str = "epoch", **params: Any):
        super().__init__(optimizer, total, unit)
        self.name, self.params = name, params
        for group in optimizer.param_groups:  # the base is the rate now, whatever ran before
            group["initial_lr"] = group["lr"]
        self.factor = partial(SCHEDULES[name], total=total, **params)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.factor)
        self.cycles_momentum = name == "onecycle" and params.get("cycle_momentum", True)
        self._set_momentum()

    def _set_momentum(self) -> None:
        """1cycle: every group's momentum (or Adam's beta1) from the current factor; groups
        without momentum (plain SGD) are left alone."""
        if not self.cycles_momentum:
            return
        momentum = onecycle_momentum(self.factor(self.t), **self.params)
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (momentum, *tuple(group["betas"])[1:])
            elif group.get("momentum", 0):
                group["momentum"] = momentum

    @property
    def momenta(self) -> list[float | None]:
        """Each group's momentum (Adam: beta1; None without momentum)."""
        return [group["betas"][0] if "betas" in group else group.get("momentum")
                for group in self.optimizer.param_groups]

    @property
    def t(self) -> int:
        return self.scheduler.last_epoch

    @property
    def base_lrs(self) -> list[float]:
        return self.scheduler.base_lrs

    @base_lrs.setter
    def base_lrs(self, rates: Sequence[float]) -> None:
        self.scheduler.base_lrs = list(rates)

    def step(self, metrics: Mapping[str, float] | None = None) -> None:
        with warnings.catch_warnings():  # a step whose update was skipped still counts
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        self._set_momentum()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "last_epoch" in state:
            self.scheduler.load_state_dict(copy.deepcopy(dict(state)))
        else:  # written by the FactorSchedule that kept its own step counter
            t = int(state["t"])
            self.scheduler.last_epoch, self.scheduler._step_count = t, t + 1
            self.scheduler.base_lrs = list(state["base_lrs"])
        rates = [base * fn(self.t) for fn, base in
                 zip(self.scheduler.lr_lambdas, self.scheduler.base_lrs, strict=True)]
        for group, rate in zip(self.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        self.scheduler._last_lr = list(rates)
        self._set_momentum()


class PlateauSchedule(Schedule):
    """Divide the rate by ``1 / factor`` when ``metric`` stops improving for ``patience``
    epochs (:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`). ``mode`` defaults to
    the metric's direction as ``direction(metric)`` tells (``maximize`` -> ``max``)."""

    arguments = PLATEAU_ARGUMENTS

    def __init__(self, optimizer: torch.optim.Optimizer, total: int = 1, unit: str = "epoch",
                 direction: Callable[[str], str] | None = None, **params: Any):
        super().__init__(optimizer, total, unit)
        self.t = 0
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        options = {k: v for k, v in params.items() if k != "metric"}
        self.metric = params.get("metric", "val_loss")
        if "mode" not in options:
            maximize = direction is not None and direction(self.metric) == "maximize"
            options["mode"] = "max" if maximize else "min"
        self._plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)

    def step(self, metrics: Mapping[str, float] | None = None) -> None:
        self.t += 1
        if metrics is None or self.metric not in metrics:
            available = ", ".join(sorted(metrics or {}))
            raise ValueError(
                f"plateau schedule watches metric {self.metric!r}, which this run does not "
                f"log; logged metrics: {available}"
            )
        self._plateau.step(metrics[self.metric])

    def state_dict(self) -> dict:
        return {"t": self.t, "base_lrs": list(self.base_lrs), "plateau": self._plateau.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.t = int(state["t"])
        self.base_lrs = list(state["base_lrs"])
        self._plateau.load_state_dict(state["plateau"])


REACTIVE: dict[str, type[Schedule]] = {"plateau": PlateauSchedule}
"""Schedules that react to the run's metrics: no formula, nothing to plot in advance."""
SCHEDULE_NAMES = (*SCHEDULES, *REACTIVE)


def schedule_arguments(name: str) -> list[str]:
    """Keyword parameters the named schedule accepts."""
    if name in REACTIVE:
        return list(REACTIVE[name].arguments)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; accepted: {', '.join(SCHEDULE_NAMES)}")
    params = inspect.signature(SCHEDULES[name]).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check_schedule(name: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for an unknown schedule, parameter or inconsistent values."""
    check_keywords(params, schedule_arguments(name), f"schedule {name!r}", "parameter")
    for key, value in params.items():
        if key in ("anneal", "shape", "mode", "metric") and not isinstance(value, str):
            raise ValueError(f"schedule {name!r}: {key} must be a name, got {value!r}")
        if key in NON_NUMERIC_PARAMETERS:
            continue
        if not finite_number(value):
            raise ValueError(f"schedule {name!r}: {key} must be a finite number, got {value!r}")
    for key in ("boundaries", "values"):
        items = params.get(key, ())
        if not isinstance(items, list | tuple) or not all(finite_number(v) for v in items):
            raise ValueError(f"schedule {name!r}: {key} must be a list of finite numbers, got {items!r}")
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
        if min(values) < 0:
            raise ValueError(f"piecewise values are multipliers of the rate and must be >= 0, got {values}")
    for key in ("steps", "div_factor", "final_div_factor"):
        if key in params and not float(params[key]) > 0:
            raise ValueError(f"{key} must be > 0, got {params[key]}")
    for key in ("warmup", "decay", "pct_start"):
        if key in params and not 0 <= float(params[key]) <= 1:
            raise ValueError(f"{key} is a fraction of the run and must lie in [0, 1], "
                             f"got {params[key]}")
    if name == "onecycle":
        if not isinstance(params.get("cycle_momentum", True), bool):
            raise ValueError(f"onecycle cycle_momentum must be true or false, "
                             f"got {params['cycle_momentum']!r}")
        low, high = params.get("base_momentum", 0.85), params.get("max_momentum", 0.95)
        if not 0 <= low <= high < 1:
            raise ValueError(f"onecycle needs 0 <= base_momentum <= max_momentum < 1, got {low} and {high}")
    if name == "onecycle" and params.get("anneal", "linear") not in ("linear", "cos"):
        raise ValueError(f"onecycle anneal must be 'linear' or 'cos', got {params['anneal']!r}")
    if name == "wsd" and params.get("shape", "linear") not in ("linear", "cosine", "sqrt"):
        raise ValueError(f"wsd shape must be linear, cosine or sqrt, got {params['shape']!r}")
    if name in REACTIVE:
        _probe_reactive(name, params)
        return
    try:  # whatever the parameters, the rate must stay a finite, non-negative multiple
        factors = schedule_factors(name, PROBE_STEPS, **params)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
        raise ValueError(f"schedule {name!r} cannot use {dict(params)}: {err}") from None
    bad = next((f for f in factors if not (math.isfinite(f) and 0 <= f <= MAX_FACTOR)), None)
    if bad is not None:
        raise ValueError(f"schedule {name!r} with {dict(params)} gives a learning-rate factor of {bad:g}; "
                         f"factors must lie in [0, {MAX_FACTOR:g}] (check min_factor, values, rate)")


NON_NUMERIC_PARAMETERS = ("anneal", "shape", "mode", "metric", "boundaries", "values", "cycle_momentum")
MAX_FACTOR = 1e6
"""No schedule multiplies the rate by more: beyond, it is a typo that can only diverge."""
PROBE_STEPS = 1000
"""Steps over which :func:`check_schedule` evaluates a schedule's factors."""


def _probe_reactive(name: str, params: Mapping[str, Any]) -> None:
    """Build the reactive schedule on a one-parameter optimizer, so torch checks its values."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        REACTIVE[name](optimizer, **params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"schedule {name!r} refuses {dict(params)}: {' '.join(str(err).split())}") from None


def make_schedule(
    optimizer: torch.optim.Optimizer,
    name: str = "constant",
    total: int = 1,
    unit: str = "epoch",
    direction: Callable[[str], str] | None = None,
    **params: Any,
) -> Schedule:
    """The schedule ``name`` over ``total`` steps of ``unit``, driving ``optimizer``.

    Args:
        optimizer: whose parameter groups' ``lr`` are set (their ratios are kept).
        name: one of :data:`SCHEDULE_NAMES`.
        total: number of steps in the run, in ``unit``.
        unit: ``epoch`` or ``step``.
        direction: ``metric name -> 'maximize' | 'minimize'``, for reactive schedules.
        params: the schedule's keyword parameters.
    """
    check_schedule(name, params)
    if name in REACTIVE:
        return REACTIVE[name](optimizer, total, unit, direction=direction, **params)
    return FactorSchedule(optimizer, name, total, unit, **params)


def schedule_factors(name: str, total: int, **params: Any) -> list[float]:
    """The multiplier at every step ``0 .. total - 1`` (for plots and tests)."""
    fn = SCHEDULES[name]
    return [fn(t, total, **params) for t in range(total)]


def cycled_momenta(name: str, params: Mapping[str, Any], lr: float,
                   rates: Sequence[float]) -> list[float] | None:
    """The momentum at every update that goes with ``rates`` (1cycle), or None when the
    schedule does not cycle it."""
    if name != "onecycle" or not params.get("cycle_momentum", True):
        return None
    return [onecycle_momentum(rate / lr, **params) for rate in rates]


def learning_rates(name: str, params: Mapping[str, Any], lr: float, epochs: int,
                   steps_per_epoch: int, unit: str) -> list[float]:
    """The learning rate at every update of a run (``epochs * steps_per_epoch`` values)."""
    if name in REACTIVE:
        raise ValueError(f"the {name} schedule reacts to the run's metrics; "
                         "it has no curve to plot in advance")
    check_schedule(name, params)
    fn, steps = SCHEDULES[name], epochs * steps_per_epoch
    if unit == "step":
        return [lr * fn(t, steps, **params) for t in range(steps)]
    return [lr * fn(t // steps_per_epoch, epochs, **params) for t in range(steps)]
