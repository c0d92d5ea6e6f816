"""Search spaces from ``tune.space``: each config key becomes an Optuna distribution.

A range (``low``, ``high``) is sampled uniformly, or uniformly in ``log`` space, on a
``step`` lattice if given, as float or ``type: int``; ``choices`` and ``values`` are
categorical. Why log space for scale parameters: a learning rate drawn uniformly from
[1e-3, 1e-1] lands above 1e-2 with probability (0.1 - 0.01) / (0.1 - 0.001) = 91 %,
so the decade [1e-3, 1e-2] gets 9 % of the trials; drawn log-uniformly each decade
gets half.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna

from ..config import RunConfig, SpaceEntry, TuneConfig


def suggest(trial: optuna.Trial, space: Mapping[str, SpaceEntry]) -> dict[str, Any]:
    """Draw one value per key of ``space`` from ``trial`` (define-by-run)."""
    params: dict[str, Any] = {}
    for key, entry in space.items():
        if entry.choices is not None or entry.values is not None:
            params[key] = trial.suggest_categorical(key, entry.choices or entry.values)
        elif entry.type == "int":
            step = int(entry.step) if entry.step is not None else 1
            params[key] = trial.suggest_int(key, int(entry.low), int(entry.high), step=step, log=entry.log)
        else:
            params[key] = trial.suggest_float(key, entry.low, entry.high, step=entry.step, log=entry.log)
    return params


def grid(space: Mapping[str, SpaceEntry]) -> dict[str, list[Any]]:
    """Every key's finite set of values, for grid search.

    Ranges need a ``step`` (or ``type: int``, stepping by 1); a continuous range has no
    finite grid and is an error naming the key.
    """
    values: dict[str, list[Any]] = {}
    for key, entry in space.items():
        if entry.choices is not None or entry.values is not None:
            values[key] = list(entry.choices or entry.values)
        elif entry.type == "int" and not entry.log:
            values[key] = list(range(int(entry.low), int(entry.high) + 1, int(entry.step or 1)))
        elif entry.step is not None:
            count = int(math.floor((entry.high - entry.low) / entry.step + 1e-9)) + 1
            values[key] = [float(v) for v in entry.low + entry.step * np.arange(count)]
        else:
            raise ValueError(
                f"tune.space key {key!r}: grid search needs a finite set of values; give values: "
                f"[...] or a step (a log range has no step: list its values)"
            )
    return values


def grid_size(space: Mapping[str, SpaceEntry]) -> int:
    return math.prod(len(v) for v in grid(space).values())


def trial_config(config: RunConfig, params: Mapping[str, Any], number: int | None = None) -> RunConfig:
    """The base config with a trial's parameters applied and the tune section reset
    (``name`` gets ``-trial-NNNN`` when ``number`` is given)."""
    result = config.with_overrides({**params, "tune": TuneConfig().model_dump(mode="json")})
    if number is not None:
        result.name = f"{config.name}-trial-{number:04d}"
    return result
