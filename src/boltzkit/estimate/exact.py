"""Exact log partition function and log-likelihood of small RBMs, by enumeration.

``log Z = logsumexp_s(-F(s))`` over every state ``s`` of the smaller discrete layer, with
the other layer summed (or, for Gaussian units, integrated) out analytically: ``F`` is
the visible or the hidden free energy. All in float64 with log-sum-exp, in chunks, so
2^20 states take seconds and 2^25 minutes.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from ..models.rbm import RBM
from ..units import Units

MAX_UNITS = 25
_CHUNK_ELEMENTS = 1 << 23  # states x width of the other layer per chunk


def enumerated_layer(model: RBM) -> Units | None:
    """The discrete layer with fewer states (the one to enumerate), or None if neither is."""
    layers = [layer for layer in (model.visible, model.hidden) if layer.discrete]
    return min(layers, key=lambda layer: layer.configurations) if layers else None


def as_float64(model: RBM) -> RBM:
    """A float64 copy of ``model`` (the original is left untouched)."""
    return copy.deepcopy(model).double()


def enumerable(model: RBM, max_units: int = MAX_UNITS) -> bool:
    """Whether :func:`exact_log_partition` applies: a discrete layer of at most
    ``2^max_units`` states."""
    layer = enumerated_layer(model)
    return layer is not None and layer.configurations <= 2.0**max_units


@torch.no_grad()
def exact_log_partition(model: RBM, max_units: int = MAX_UNITS) -> float:
    """``log Z`` by enumerating every state of the smaller discrete layer, the other layer
    summed (or, for Gaussian units, integrated) out analytically, in float64."""
    if not enumerable(model, max_units):
        layer = enumerated_layer(model)
        size = "no discrete layer" if layer is None else f"{layer.configurations:.3g} states"
        raise ValueError(
            f"exact log Z enumerates the smaller discrete layer, which must have at most "
            f"2^{max_units} states ({size} here; use AIS for larger models)"
        )
    m = as_float64(model)
    visible = enumerated_layer(model) is model.visible
    layer = m.visible if visible else m.hidden
    free_energy = m.free_energy if visible else m.hidden_free_energy
    width = m.n_hidden if visible else m.n_visible
    total = int(layer.configurations)
    chunk = max(1, _CHUNK_ELEMENTS // width)
    partial = []
    for start in range(0, total, chunk):
        states = layer.all_states(start, min(total, start + chunk), device=m.weight.device)
        partial.append(torch.logsumexp(-free_energy(states), dim=0))
    return torch.logsumexp(torch.stack(partial), dim=0).item()


@torch.no_grad()
def exact_log_likelihood(model: RBM, v: Tensor, log_z: float | None = None) -> Tensor:
    """``log p(v) = -F(v) - log Z`` per example, float64, shape ``(B,)`` (a log density for
    Gaussian visible units)."""
    if log_z is None:
        log_z = exact_log_partition(model)
    m = as_float64(model)
    return -m.free_energy(v.to(torch.float64)) - log_z


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    """``log(mean(exp(x)))`` computed stably."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])
