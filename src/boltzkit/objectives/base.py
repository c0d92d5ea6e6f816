"""The contract of a training objective: a loss whose gradient the optimizer follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor, nn


class Objective(ABC):
    """``loss(model, batch)``: a scalar whose autograd gradient is the update direction
    (a surrogate for estimators such as CD, whose value need not be a likelihood).

    An objective may own state that must survive a restart (persistent chains, their
    generator): it round-trips through :meth:`state_dict`. :meth:`epoch_metrics` reports
    what the objective itself observed during the epoch (e.g. swap rates).
    """

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> Tensor:
        """The scalar loss for one training batch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless by default)
        pass

    def epoch_metrics(self) -> dict[str, float]:
        """Metrics gathered since the last call (the trainer calls it once per epoch)."""
        return {}
