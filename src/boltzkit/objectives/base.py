"""The contract of a training objective: a loss whose gradient the optimizer follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
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

    def has_closed_form(self, model: nn.Module) -> bool:
        """Whether :meth:`write_gradients` applies to ``model``."""
        return False

    product_dtype: torch.dtype | None = None
    """The dtype of :meth:`write_gradients`' matrix products where :meth:`product_keys`
    holds ``product_dtype`` (``None``: the model's own); the trainer sets it from
    ``train.product_dtype``."""

    product_kernel: str = "torch"
    """Who runs :meth:`write_gradients`' float32 products where :meth:`product_keys` holds
    ``product_kernel``: ``torch`` (its matmul) or ``onednn`` (:func:`boltzkit.onednn.linear`);
    the trainer sets it from ``train.product_kernel``."""

    def product_keys(self, model: nn.Module) -> frozenset[str]:
        """The ``train`` keys on how to multiply (``product_dtype``, ``product_kernel``) that
        :meth:`write_gradients` honours for ``model`` (default: none)."""
        return frozenset()

    def write_gradients(self, model: nn.Module, batch: Any) -> float:
        """The fast path: write ``d loss / d theta`` into each parameter's ``.grad`` from
        closed-form statistics, without an autograd graph, and return the loss value;
        the same random draws and (to rounding) the same gradients as ``loss().backward()``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form gradient")

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless by default)
        pass

    def epoch_metrics(self) -> dict[str, float]:
        """Metrics gathered since the last call (the trainer calls it once per epoch)."""
        return {}
