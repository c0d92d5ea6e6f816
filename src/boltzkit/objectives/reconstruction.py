"""The (denoising, sparse) reconstruction loss of an autoencoder, whole or one layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..models.autoencoder import Autoencoder, check_corruption, corrupt
from .base import Objective


class Reconstruction(Objective):
    """``mean_b loss(x_b | x~_b) + beta * sum_l sum_j KL(rho || rho_hat_lj)``.

    The batch ``x`` is corrupted to ``x~`` (:func:`~boltzkit.models.autoencoder.corrupt`,
    drawn from ``generator``), encoded and decoded; the loss scores the reconstruction of
    the clean ``x``. With ``depth=None`` the whole autoencoder is trained and the sparsity
    penalty covers every encoder layer; with ``depth=l`` only layer ``l`` is, as a
    one-hidden-layer autoencoder of the batch, which is then the codes ``h_{l-1}`` of the
    layers below (greedy stacked pretraining).

    The generator's state is part of :meth:`state_dict`, so a resumed run draws the same
    corruption. ``corrupted`` holds the last corrupted batch (for tests and figures).
    """

    def __init__(self, corruption: str, level: float, generator: torch.Generator,
                 sparsity_target: float = 0.05, sparsity_weight: float = 0.0, depth: int | None = None):
        check_corruption(corruption, level)
        if sparsity_weight < 0 or not 0 < sparsity_target < 1:
            raise ValueError(f"Invalid sparsity: target {sparsity_target}, weight {sparsity_weight} "
                             "(expected 0 < target < 1 and weight >= 0)")
        self.corruption, self.level, self.generator = corruption, level, generator
        self.sparsity_target, self.sparsity_weight, self.depth = sparsity_target, sparsity_weight, depth
        self.corrupted: Tensor | None = None

    def loss(self, model: Autoencoder, batch: Tensor) -> Tensor:
        self.corrupted = corrupt(batch, self.corruption, self.level, self.generator)
        if self.depth is None:
            pre, r = model.forward_pre(self.corrupted)
            loss = model.level_loss(1, r, batch).mean()
        else:
            code, r = model.layer_forward(self.depth, self.corrupted)
            pre = [code]
            loss = model.level_loss(self.depth, r, batch).mean()
        if self.sparsity_weight:
            loss = loss + self.sparsity_weight * model.sparsity_penalty(pre, self.sparsity_target)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
