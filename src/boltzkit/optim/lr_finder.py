"""Learning-rate range test (Smith, 2017 "Cyclical learning rates"; 2018 "A disciplined
approach to neural network hyper-parameters").

The rate grows exponentially from ``low`` to ``high`` over ``iterations`` updates while a
loss is recorded for each batch, smoothed by a bias-corrected exponential moving average
and the test stops early when the smoothed loss passes ``diverge`` times its best value.
Afterwards the model, optimizer, schedule, objective (sampler chains) and generators are
restored exactly, so the test can run in the middle of training.

Suggestion rules, applied to the smoothed curve (``r`` = rate, ``L`` = smoothed loss):

- ``steepest`` (default): the rate where ``dL / d log r`` is most negative;
- ``valley``: the descent is where ``L`` falls from 5 % to 95 % of its drop
  from its highest point (after the first tenth of the curve, the moving average's
  warm-up) to its minimum; suggest its middle, ``sqrt(r_start * r_end)``;
- ``minimum``: the rate of the lowest ``L``, divided by 10.

``steepest`` is the default because it came closest to the best rate of a 13-point grid
across four tasks in ``benchmarks/lr_finder_quality.py`` (see docs/RESULTS.md).

Confidence: the spread of the three suggestions in decades (``log10 max - log10 min``)
and the curve's noise (median ``|loss - L|`` over the range of ``L``); ``high`` when they
agree within half a decade on a smooth curve, ``low`` when they spread over more than
a decade or the noise exceeds 30 % of the drop.

What this test does beyond torch-lr-finder (0.2.x, whose default is the steepest point of
its smoothed training loss):

- **exact restore**: model parameters and buffers, the optimizer's state (momentum, Adam
  moments, rates), every object in ``stateful`` (the schedule, the objective's sampler
  chains, the data order and generators) and the global random generator are snapshot and
  restored, so a run continues bit for bit as if the test had not happened; torch-lr-finder
  reloads model and optimizer only (from a copy on disk or in memory).
- **several suggestion rules** (``steepest``, ``valley``, ``minimum``) are always reported
  together, one of them chosen as ``suggestion``.
- **a confidence label** from the rules' spread in decades and the curve's noise, so a
  flat or noisy curve says so instead of giving one confident-looking number.
- **any recorded value**: ``record`` may log a proxy instead of the loss followed (a
  fixed held-out probe batch in ``boltzkit lr-find``, which removes batch noise).

Where it misleads: RBMs. Their proxy (pseudo-likelihood of a probe) barely moves at small
rates and first gets *worse* when learning starts, so every rule tends to point too low,
and suggestions spread over decades across seeds (docs/RESULTS.md, "Learning-rate range
test quality"). Tune an RBM's rate with
``boltzkit tune`` instead. Even for discriminative nets no rule fits every optimizer: the
best fixed-budget rate of plain SGD sits near the curve's minimum, Adam's near its
steepest point.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..seeding import global_rng_state, set_global_rng_state

RULES = ("valley", "steepest", "minimum")
DEFAULT_RULE = "steepest"


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float]
    rule: str
    suggestion: float
    confidence: str
    spread_decades: float
    noise: float
    stopped_early: bool
    loss_name: str = "loss"
    caveat: str = ""
    """Why the suggestion may mislead for this kind of model (then ``confidence`` is low)."""
    verification: dict[str, Any] | None = None
    """``lr-find --verify``: the short runs that chose ``suggestion`` (rule ``verified``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smooth(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Bias-corrected exponential moving average: ``avg_i / (1 - beta^(i+1))``."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest(lrs: Sequence[float], smoothed: Sequence[float], rule: str) -> float:
    """The rate the named rule picks from a smoothed loss curve (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"unknown suggestion rule {rule!r}; accepted: {', '.join(RULES)}")
    r = np.asarray(lrs, dtype=float)
    loss = np.asarray(smoothed, dtype=float)
    if len(r) < 5:
        raise ValueError(f"the range test recorded only {len(r)} points; at least 5 are needed")
    low = int(np.argmin(loss))
    if rule == "minimum":
        return float(r[low] / 10)
    if rule == "steepest":
        skip = max(1, len(r) // 10)  # the first points carry the moving average's warm-up
        slope = np.gradient(loss, np.log(r))
        window = slice(skip, max(skip + 1, low + 1))
        return float(r[window][int(np.argmin(slope[window]))])
    skip = max(1, len(r) // 10)
    top = skip + int(np.argmax(loss[skip : low + 1])) if low >= skip else 0
    drop = loss[top] - loss[low]
    if drop <= 0:
        return float(r[low])
    start = next(i for i in range(top, low + 1) if loss[top] - loss[i] >= 0.05 * drop)
    end = next(i for i in range(start, low + 1) if loss[top] - loss[i] >= 0.95 * drop)
    return float(math.sqrt(r[start] * r[end]))


def confidence(
    lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
    suggestions: dict[str, float]
) -> tuple[str, float, float]:
    """``(label, spread in decades, noise)`` as described in the module docstring."""
    values = np.log10(list(suggestions.values()))
    spread = float(values.max() - values.min())
    curve = np.asarray(smoothed)
    scale = max(float(curve.max() - curve.min()), 1e-12)
    noise = float(np.median(np.abs(np.asarray(losses) - curve)) / scale)
    if spread <= 0.5 and noise <= 0.1:
        label = "high"
    elif spread > 1.0 or noise > 0.3:
        label = "low"
    else:
        label = "medium"
    return label, spread, noise


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Any],
    step_loss: Callable[[Any], Tensor],
    record: Callable[[Any, Tensor], float],
    *,
    low: float = 1e-6,
    high: float = 1.0,
    iterations: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
    rule: str = DEFAULT_RULE,
    stateful: Sequence[Any] = (),
    clip: Callable[[], None] | None = None,
    loss_name: str = "loss",
    progress: bool = False,
) -> LRFindResult:
    """Run the range test and restore every state it touched.

    Args:
        model, optimizer: what is trained; the optimizer's parameter groups keep their
            ratios to the first group's rate.
        batches: an endless iterator of training batches.
        step_loss: ``batch -> loss`` whose gradient the optimizer follows.
        record: ``(batch, loss) -> float``, the value put on the curve (the loss itself,
            or a proxy such as an RBM's negative pseudo-log-likelihood).
        low, high, iterations: the exponential ramp.
        beta: smoothing factor; diverge: stop when smoothed > diverge x best smoothed.
        rule: the suggestion rule reported as ``suggestion``.
        stateful: other objects with ``state_dict``/``load_state_dict`` (schedule, objective)
            or ``get_state``/``set_state`` (generators) to restore afterwards.
        clip: called between ``backward`` and ``step`` (gradient clipping).
    """
    if not 0 < low < high:
        raise ValueError(f"Invalid range: low={low}, high={high} (expected 0 < low < high)")
    if iterations < 5:
        raise ValueError(f"Invalid number of iterations: {iterations} (expected >= 5)")
    if rule not in RULES:
        raise ValueError(f"unknown suggestion rule {rule!r}; accepted: {', '.join(RULES)}")
    snapshot = _snapshot(model, optimizer, stateful)
    ratios = [group["lr"] / optimizer.param_groups[0]["lr"] for group in optimizer.param_groups]
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped = False
    try:
        model.train()
        for i in tqdm(range(iterations), disable=not progress, desc="lr-find", leave=False):
            lr = low * (high / low) ** (i / (iterations - 1))
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            batch = next(batches)
            loss = step_loss(batch)
            value = record(batch, loss)
            if not math.isfinite(value):
                stopped = True
                break
            lrs.append(lr)
            losses.append(value)
            smoothed = smooth(losses, beta)
            if len(smoothed) > 5 and smoothed[-1] > diverge * min(smoothed):
                stopped = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                clip()
            optimizer.step()
    finally:
        _restore(model, optimizer, stateful, snapshot)
    suggestions = {name: suggest(lrs, smoothed, name) for name in RULES}
    label, spread, noise = confidence(lrs, losses, smoothed, suggestions)
    return LRFindResult(lrs, losses, smoothed, suggestions, rule, suggestions[rule], label, spread,
                        noise, stopped, loss_name)


def _snapshot(model, optimizer, stateful) -> dict[str, Any]:
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "others": [copy.deepcopy(obj.get_state() if isinstance(obj, torch.Generator)
                                 else obj.state_dict()) for obj in stateful],
        "training": model.training,
        "global_rng": global_rng_state(),  # dropout draws from it
    }


def _restore(model, optimizer, stateful, snapshot) -> None:
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    for obj, state in zip(stateful, snapshot["others"], strict=True):
        if isinstance(obj, torch.Generator):
            obj.set_state(state)
        else:
            obj.load_state_dict(state)
    model.train(snapshot["training"])
    set_global_rng_state(snapshot["global_rng"])
