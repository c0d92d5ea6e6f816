"""Names and directions of the metrics a run logs."""

from __future__ import annotations

_MAXIMIZED = ("accuracy", "likelihood", "ess")


def metric_direction(name: str) -> str:
    """``maximize`` for accuracies, (pseudo-)likelihoods and effective sample sizes,
    ``minimize`` for losses, errors, free energies and everything else."""
    return "maximize" if any(part in name for part in _MAXIMIZED) else "minimize"
