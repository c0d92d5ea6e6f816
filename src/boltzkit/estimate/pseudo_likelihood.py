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
    if model.visible.name == "categorical":
        return _categorical_pseudo_log_likelihood(model, v)
    if model.visible.name != "bernoulli":
        raise ValueError("pseudo-likelihood is defined for discrete (Bernoulli or categorical) "
                         "visible units")
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
        if model.centered:  # F(v) has the term a . lambda, and a moves by s W_i
            gap = gap - s * (model.weight[idx] @ model.hidden_offset)
        total -= F.softplus(gap).sum(dim=1)
    return total if n_units is None else total * (width / n_units)


@torch.no_grad()
def _categorical_pseudo_log_likelihood(model: RBM, v: Tensor) -> Tensor:
    """``sum_g log p(x_g | x_-g)`` over the groups of a categorical visible layer: each
    group's current state against all ``k`` states, the rest held fixed."""
    units = model.visible
    batch = len(v)
    hidden_input = model.hidden_input(v)  # (B, H)
    w = model.weight.reshape(units.groups, units.k, -1)  # (G, K, H)
    onehot = v.reshape(batch, units.groups, units.k)  # (B, G, K)
    current_row = torch.einsum("bgk,gkh->bgh", onehot, w)  # x_g W_g: the active state's row
    bias = units.bias.reshape(units.groups, units.k)
    total = torch.zeros(batch, dtype=hidden_input.dtype, device=v.device)
    for g in range(units.groups):
        # hidden input with group g in each of its k states: (B, K, H)
        alternative = hidden_input[:, None, :] - current_row[:, g, None, :] + w[g][None]
        neg_f = bias[g][None] + model.hidden.log_partition(alternative)  # -F up to shared terms
        if model.centered:
            neg_f = neg_f - alternative @ model.hidden_offset
        total += (onehot[:, g] * neg_f).sum(dim=1) - torch.logsumexp(neg_f, dim=1)
    return total


@torch.no_grad()
def reconstruction_error(model: RBM, v: Tensor) -> Tensor:
    """Squared error of the mean-field reconstruction, summed over units, ``(B,)``.

    ``sum_i (v_i - E[v_i | h = E[h | v]])^2``: deterministic, so it moves smoothly from
    epoch to epoch; a rough health signal, not a likelihood.
    """
    return (v - model.reconstruct(v)).pow(2).sum(dim=1)
