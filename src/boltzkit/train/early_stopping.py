"""Early stopping on a named metric with patience, keeping the best weights."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn


class EarlyStopping:
    """Watch ``metric`` after every epoch; :meth:`update` says when to stop.

    An epoch improves when its value beats the best so far by more than ``min_delta``
    in the metric's direction (``maximize`` or ``minimize``). After ``patience`` epochs
    without improvement, training stops; with ``restore_best`` the model then gets the
    best epoch's weights back (:meth:`restore`). Its state, best weights included, goes
    into checkpoints so that a resumed run stops where an uninterrupted one would. With
    ``restore_best`` a run that reaches its last epoch without stopping also ends with the
    best epoch's weights.
    """

    def __init__(self, metric: str, direction: str, patience: int, min_delta: float = 0.0,
                 restore_best: bool = True):
        self.metric, self.direction = metric, direction
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best
        self.best: float | None = None
        self.best_epoch = 0
        self.waited = 0
        self.best_weights: dict[str, Any] | None = None

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        gain = value - self.best if self.direction == "maximize" else self.best - value
        return gain > self.min_delta

    def update(self, metrics: dict[str, Any], model: nn.Module) -> bool:
        """Record this epoch; True when training should stop. Epochs that do not log the
        metric (AIS every few epochs) neither improve nor count toward the patience."""
        if self.metric not in metrics:
            return False
        value = float(metrics[self.metric])
        if self._improves(value):
            self.best, self.best_epoch, self.waited = value, int(metrics["epoch"]), 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights; False when there are none to load."""
        if not self.restore_best or self.best_weights is None:
            return False
        model.load_state_dict(self.best_weights)
        return True

    def describe(self, epoch: int) -> str:
        restored = ", its weights restored" if self.restore_best else ""
        return (f"early stop after epoch {epoch}: {self.metric} has not improved by more than "
                f"{self.min_delta:g} for {self.patience} epochs; best {self.best:.5g} at epoch "
                f"{self.best_epoch}{restored}")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.waited, self.best_weights = state["waited"], state["best_weights"]
