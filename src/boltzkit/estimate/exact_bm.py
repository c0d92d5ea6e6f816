"""Exact log partition function and log-likelihood of small general Boltzmann machines."""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from ..models.bm import BoltzmannMachine
from ..units import BernoulliUnits

MAX_UNITS = 25
_CHUNK = 1 << 16


def _states(n: int, start: int, stop: int, device) -> Tensor:
    return BernoulliUnits(max(n, 1)).all_states(start, stop, device=device)[:, :n]


@torch.no_grad()
def bm_log_partition(model: BoltzmannMachine, max_units: int = MAX_UNITS) -> float:
    """``log Z = logsumexp_s(-E(s))`` over all ``2^(D+H)`` states, in float64."""
    n = model.n_units
    if n > max_units:
        raise ValueError(f"exact log Z of a Boltzmann machine enumerates 2^{n} states; "
                         f"at most {max_units} units are allowed")
    m = copy.deepcopy(model).double()
    parts = [torch.logsumexp(-m.energy(_states(n, start, min(2**n, start + _CHUNK), m.bias.device)), 0)
             for start in range(0, 2**n, _CHUNK)]
    return torch.logsumexp(torch.stack(parts), 0).item()


@torch.no_grad()
def bm_log_likelihood(model: BoltzmannMachine, v: Tensor, log_z: float | None = None) -> Tensor:
    """``log p(v) = logsumexp_h(-E(v, h)) - log Z`` per example, float64, ``(B,)``."""
    if log_z is None:
        log_z = bm_log_partition(model)
    m = copy.deepcopy(model).double()
    hidden = _states(m.n_hidden, 0, 2**m.n_hidden, m.bias.device)  # (2^H, H)
    v = v.to(torch.float64)
    joint = torch.cat([v[:, None, :].expand(-1, len(hidden), -1),
                       hidden[None].expand(len(v), -1, -1)], dim=2)  # (B, 2^H, n)
    return torch.logsumexp(-m.energy(joint), dim=1) - log_z
