"""Hyperparameter optimization on Optuna: ``run(config, out)`` returns the study."""

from .space import grid, suggest
from .study import open_study, run

__all__ = ["grid", "open_study", "run", "suggest"]
