"""Pseudo-likelihood of binary visible vectors under an RBM.

Convention (Besag, 1975): for one example ``v`` with ``D`` binary visible units,

    PL(v) = sum_{i=1..D} log p(v_i | v_{-i})        (nats per example)

and "per unit" means ``PL(v) / D``. With ``v^(i)`` = ``v`` with unit ``i`` flipped,
``log p(v_i | v_{-i}) = -softplus(F(v) - F(v^(i)))``. This sums every unit exactly;
scikit-learn's ``BernoulliRBM.score_samples`` instead draws one unit per example and
multiplies by ``D`` (pass ``n_units=1`` for that stochastic, unbiased estimate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.rbm import RBM

_CHUNK_ELEMENTS = 1 << 22  # bound the (B, units, H) flip tensor to ~16 MB in float32


@torch.no_grad()
def pseudo_log_likelihood(
    model: RBM,
    v: Tensor,
    n_units: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``PL(v)`` per example, shape ``(B,)``, for binary ``v`` of shape ``(B, D)``.

    Args:
        model: an RBM with Bernoulli visible units.
        v: binary visible vectors.
        n_units: ``None`` sums all ``D`` units exactly; an integer ``m`` draws ``m``
            units per example (without replacement) and scales the sum by ``D / m``.
        generator: random source for the drawn units.
    """
    if model.visible.name != "bernoulli":
        raise ValueError("pseudo-likelihood is defined here for Bernoulli visible units")
    batch, width = v.shape
    hidden_input = model.hidden_input(v)
    base = model.hidden.log_partition(hidden_input)  # (B,)
    sign = 1.0 - 2.0 * v  # +1 turns a unit on, -1 turns it off
    if n_units is None:
        units = torch.arange(width, device=v.device).expand(batch, width)
    else:
        if not 1 <= n_units <= width:
            raise ValueError(f"Invalid n_units: {n_units} (expected 1..{width})")
        scores = torch.rand(batch, width, generator=generator, device=v.device)
        units = scores.argsort(dim=1)[:, :n_units]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * model.n_hidden))
    total = torch.zeros(batch, dtype=hidden_input.dtype, device=v.device)
    for start in range(0, units.shape[1], chunk):
        idx = units[:, start : start + chunk]  # (B, u)
        s = sign.gather(1, idx)  # (B, u)
        flipped_input = hidden_input.unsqueeze(1) + s.unsqueeze(2) * model.weight[idx]
        gap = s * model.visible.bias[idx] + model.hidden.log_partition(flipped_input) - base[:, None]
        total -= F.softplus(gap).sum(dim=1)
    return total if n_units is None else total * (width / n_units)


@torch.no_grad()
def reconstruction_error(model: RBM, v: Tensor) -> Tensor:
    """Squared error of the mean-field reconstruction, summed over units, ``(B,)``.

    ``sum_i (v_i - E[v_i | h = E[h | v]])^2``: deterministic, so it moves smoothly from
    epoch to epoch; a rough health signal, not a likelihood.
    """
    return (v - model.reconstruct(v)).pow(2).sum(dim=1)
