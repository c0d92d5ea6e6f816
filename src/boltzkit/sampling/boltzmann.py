"""Sampling and inference in general Boltzmann machines (``models.bm``): sequential
single-site Gibbs sweeps and the mean-field approximation to ``p(h | v)``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.bm import BoltzmannMachine
from ..units import bernoulli


@torch.no_grad()
def gibbs_sweeps(model: BoltzmannMachine, s: Tensor, units: range, sweeps: int,
                 generator: torch.Generator | None) -> Tensor:
    """``sweeps`` sequential single-site Gibbs sweeps over ``units`` of the joint states
    ``s`` (``(B, n)``), the other units clamped: unit ``i`` is set to 1 with probability
    ``sigmoid(b_i + sum_j W_ij s_j)``. Returns new states; ``s`` is not modified."""
    s = s.clone()
    couplings = model.couplings()
    for _ in range(sweeps):
        for i in units:
            s[:, i] = bernoulli(torch.sigmoid(model.unit_input(s, i, couplings)), generator)
    return s


@torch.no_grad()
def mean_field(model: BoltzmannMachine, v: Tensor, steps: int, damping: float = 0.5) -> Tensor:
    """Hidden means ``mu`` of the factorised approximation to ``p(h | v)``: iterate
    ``mu <- (1 - damping) sigmoid(b_h + v W_vh + mu W_hh) + damping mu`` from ``mu = 1/2``;
    returns ``[v, mu]`` (``(B, n)``)."""
    couplings = model.couplings()
    d = model.n_visible
    mu = torch.full((len(v), model.n_hidden), 0.5, dtype=v.dtype, device=v.device)
    for _ in range(steps):
        update = torch.sigmoid(model.bias[d:] + v @ couplings[:d, d:] + mu @ couplings[d:, d:])
        mu = (1 - damping) * update + damping * mu
    return torch.cat([v, mu], dim=1)
