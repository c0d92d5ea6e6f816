"""Drawing samples from a trained model, from scratch (no data): ``model.sample(n)``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.bm import BoltzmannMachine
from ..models.rbm import RBM
from .boltzmann import gibbs_sweeps
from .gibbs import sample_chains
from .tempering import ParallelTempering, temperature_ladder


@torch.no_grad()
def draw_samples(
    model: RBM, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
    min_beta: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """``n`` chains run for ``steps`` sweeps from the visible biases' base rates: plain
    Gibbs, or with ``temperatures >= 2`` parallel tempering down to ``min_beta`` (the
    ``beta = 1`` replicas are returned).

    Returns the final states and their means ``E[v | h]``, each ``(n, D)``.
    """
    no_input = torch.zeros(n, model.n_visible, device=model.weight.device, dtype=model.weight.dtype)
    v0 = model.visible.sample(no_input, generator)  # p(v) from the visible biases alone
    if temperatures < 2:
        return sample_chains(model, v0, steps, generator)
    sampler = ParallelTempering(temperature_ladder(temperatures, min_beta), n, generator)
    sampler.start(model, v0)
    v = sampler.step(model, steps)
    return v, model.visible_mean(sampler.hidden[0])


@torch.no_grad()
def draw_bm_samples(
    model: BoltzmannMachine, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
    min_beta: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """``n`` chains of ``steps`` sequential Gibbs sweeps over all units of a general BM,
    started from the biases' base rates. Returns the visible states and, as their "means",
    ``p(v_i = 1 | rest)`` at the last state, each ``(n, n_visible)``."""
    if temperatures >= 2:
        raise ValueError("parallel tempering is not implemented for general Boltzmann machines; "
                         "use plain Gibbs (no --pt)")
    if steps < 1:
        raise ValueError(f"Invalid number of Gibbs sweeps: {steps} (expected >= 1)")
    base = torch.sigmoid(model.bias).expand(n, model.n_units)
    s = torch.bernoulli(base, generator=generator)
    s = gibbs_sweeps(model, s, range(model.n_units), steps, generator)
    couplings = model.couplings()
    d = model.n_visible
    means = torch.stack([torch.sigmoid(model.unit_input(s, i, couplings)) for i in range(d)], dim=1)
    return s[:, :d], means
