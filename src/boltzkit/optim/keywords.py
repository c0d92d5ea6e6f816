"""Checks for keyword arguments given by name in a config (optimizers, schedules)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def check_keywords(given: Mapping[str, Any], accepted: Iterable[str], owner: str, kind: str = "argument",
                   hint: str = "") -> None:
    """Raise ``ValueError`` naming the first key of ``given`` that ``owner`` does not take,
    with the accepted ones: ``'gamma' is not a parameter of schedule 'exponential';
    accepted: steps, rate``."""
    accepted = list(accepted)
    for key in given:
        if key not in accepted:
            raise ValueError(f"{key!r} is not a{'n' if kind[0] in 'aeiou' else ''} {kind} of {owner}; "
                             f"accepted: {', '.join(accepted) or 'none'}{hint}")


def finite_number(value: Any) -> bool:
    """A real number (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
