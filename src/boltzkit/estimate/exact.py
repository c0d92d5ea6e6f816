"""Exact log partition function and log-likelihood of small RBMs, by enumeration.

``log Z = logsumexp_s(-F(s))`` over every state ``s`` of the smaller layer, with the other
layer summed out analytically (``F`` is the visible or the hidden free energy). All in
float64 with log-sum-exp, in chunks, so 2^20 states take seconds and 2^25 minutes.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from ..models.rbm import RBM

MAX_UNITS = 25
_CHUNK_ELEMENTS = 1 << 23  # states x width of the other layer per chunk


def binary_states(n: int, start: int, stop: int, dtype=torch.float64, device=None) -> Tensor:
    """The binary codes of the integers ``start .. stop - 1`` on ``n`` bits, ``(stop-start, n)``."""
    codes = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(n - 1, -1, -1, device=device, dtype=torch.int64)
    return ((codes[:, None] >> bits) & 1).to(dtype)


def smaller_layer(model: RBM) -> int:
    return min(model.n_visible, model.n_hidden)


def as_float64(model: RBM) -> RBM:
    """A float64 copy of ``model`` (the original is left untouched)."""
    return copy.deepcopy(model).double()


@torch.no_grad()
def exact_log_partition(model: RBM, max_units: int = MAX_UNITS) -> float:
    """``log Z`` by enumerating the ``2^n`` states of the smaller layer (``n <= max_units``)."""
    n = smaller_layer(model)
    if n > max_units:
        raise ValueError(
            f"exact log Z enumerates 2^{n} states; the smaller layer must have at most "
            f"{max_units} units (use AIS for larger models)"
        )
    if model.visible.name != "bernoulli" or model.hidden.name != "bernoulli":
        raise ValueError("exact log Z enumerates binary layers: both unit families must be bernoulli")
    m = as_float64(model)
    enumerate_visible = m.n_visible <= m.n_hidden
    width = m.n_hidden if enumerate_visible else m.n_visible
    free_energy = m.free_energy if enumerate_visible else m.hidden_free_energy
    chunk = max(1, _CHUNK_ELEMENTS // width)
    device = m.weight.device
    partial = []
    for start in range(0, 2**n, chunk):
        states = binary_states(n, start, min(2**n, start + chunk), device=device)
        partial.append(torch.logsumexp(-free_energy(states), dim=0))
    return torch.logsumexp(torch.stack(partial), dim=0).item()


@torch.no_grad()
def exact_log_likelihood(model: RBM, v: Tensor, log_z: float | None = None) -> Tensor:
    """``log p(v) = -F(v) - log Z`` per example, float64, shape ``(B,)``."""
    if log_z is None:
        log_z = exact_log_partition(model)
    m = as_float64(model)
    return -m.free_energy(v.to(torch.float64)) - log_z


def enumerable(model: RBM, max_units: int = MAX_UNITS) -> bool:
    """Whether :func:`exact_log_partition` applies to ``model``."""
    return (
        smaller_layer(model) <= max_units
        and model.visible.name == "bernoulli"
        and model.hidden.name == "bernoulli"
    )


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(x)))`` computed stably."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])
