"""Objectives for discriminative models."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class CrossEntropy:
    """Mean cross-entropy of a classifier's logits on ``(x, y)`` batches."""

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
