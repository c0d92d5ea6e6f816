"""Objectives for discriminative models."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Objective


class CrossEntropy(Objective):
    """Mean cross-entropy of a classifier's logits on ``(x, y)`` batches."""

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)
