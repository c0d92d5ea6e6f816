"""Variational objectives: the negative ELBO or importance-weighted bound of a VAE,
averaged over the batch, with reparametrised noise from the objective's own generator."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ..models.vae import VAE
from .base import Objective

BOUNDS = ("elbo", "iwae")


class VariationalBound(Objective):
    """``loss = -mean_b bound(x_b)`` with ``bound`` the ELBO (``k`` samples of ``z`` per
    example, closed-form KL) or the ``k``-sample importance-weighted bound (Burda et al.,
    2016). Its autograd gradient is the reparametrisation-trick estimator.

    The noise ``eps`` comes from ``generator``, whose state round-trips through
    :meth:`state_dict`, so a resumed run draws exactly the noise the uninterrupted one
    would; the last draw is kept in ``noise`` ``(k, B, L)`` (the tests read it).
    """

    def __init__(self, bound: Literal["elbo", "iwae"], k: int, generator: torch.Generator):
        if bound not in BOUNDS:
            raise ValueError(f"unknown bound {bound!r}; accepted: {', '.join(BOUNDS)}")
        if k < 1:
            raise ValueError(f"Invalid number of samples: k={k} (expected >= 1)")
        self.bound, self.k, self.generator = bound, k, generator
        self.noise: Tensor | None = None

    def loss(self, model: VAE, batch: Tensor) -> Tensor:
        self.noise = model.draw_noise(len(batch), self.k, self.generator)
        if self.bound == "iwae":
            return -model.iwae_bound(batch, self.k, noise=self.noise).mean().to(batch.dtype)
        return -model.elbo(batch, noise=self.noise).mean()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
