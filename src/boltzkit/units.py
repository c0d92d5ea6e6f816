"""Unit families: the per-layer maths that free energies and conditionals are built from.

A layer of units ``x`` (shape ``(B, n)``) with bias ``b`` receives an *input* ``a``
(shape ``(B, n)``) from the layer it is connected to, e.g. ``a = v @ W`` for the hidden
layer of an RBM. A family defines

- ``self_energy(x)``: the energy terms that involve this layer alone, shape ``(B,)``;
- ``log_partition(a)``: ``log sum_x exp(-self_energy(x) + x . a)`` summed over units,
  shape ``(B,)``: what marginalising the layer out of ``exp(-E)`` contributes;
- ``mean(a)`` and ``sample(a, generator)``: the conditional ``p(x | a)``.

so that, for any pair of families, an RBM's free energy is
``F(v) = visible.self_energy(v) - hidden.log_partition(v @ W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Units(nn.Module):
    """Base class of a layer of ``n`` units with a learnable bias (``self.bias``, ``(n,)``)."""

    name: str = ""

    def __init__(self, n: int):
        super().__init__()
        if n < 1:
            raise ValueError(f"Invalid number of units: {n} (expected >= 1)")
        self.n = n
        self.bias = nn.Parameter(torch.zeros(n))

    def self_energy(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def log_partition(self, a: Tensor) -> Tensor:
        raise NotImplementedError

    def mean(self, a: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, a: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"n={self.n}"


class BernoulliUnits(Units):
    """Binary units ``x_i in {0, 1}``.

    ``self_energy(x) = -x . b``;  ``p(x_i = 1 | a) = sigmoid(b_i + a_i)``;
    ``log_partition(a) = sum_i softplus(b_i + a_i)``.
    """

    name = "bernoulli"

    def self_energy(self, x: Tensor) -> Tensor:
        return -(x @ self.bias)

    def log_partition(self, a: Tensor) -> Tensor:
        return F.softplus(a + self.bias).sum(dim=-1)

    def mean(self, a: Tensor) -> Tensor:
        return torch.sigmoid(a + self.bias)

    def sample(self, a: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return bernoulli(self.mean(a), generator)

    def init_bias_from_mean(self, mean: Tensor, eps: float = 1e-3) -> None:
        """Set ``b_i = log(p_i / (1 - p_i))`` from data means ``p`` clipped to [eps, 1-eps].

        This makes the model's visible marginals match the data before any training
        (Hinton, "A practical guide to training RBMs", 2010, section 8).
        """
        p = mean.detach().to(self.bias).clamp(eps, 1.0 - eps)
        with torch.no_grad():
            self.bias.copy_(torch.log(p) - torch.log1p(-p))


def bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Binary samples with ``P(x = 1) = p``, same shape and dtype as ``p``.

    Draws 24-bit uniform integers ``u`` (the resolution of ``torch.rand`` in float32)
    and returns ``u < p * 2**24``, so ``p = 0`` never fires and ``p = 1`` always does.
    Raw integer draws skip the float conversion of ``torch.rand`` and the slower
    ``torch.bernoulli`` kernel: on a 2-core CPU this halves the cost of sampling, which
    is a sizeable part of a CD update (see benchmarks/rbm_speed.py).
    """
    bits = torch.empty(p.shape, dtype=torch.int32, device=p.device)
    bits.random_(generator=generator)  # uniform on [0, 2**31)
    bits.bitwise_right_shift_(7)  # uniform on [0, 2**24)
    return (bits < p * _TWO_24).to(p.dtype)


_TWO_24 = float(2**24)


UNIT_FAMILIES: dict[str, type[Units]] = {"bernoulli": BernoulliUnits}


def make_units(kind: str, n: int) -> Units:
    """Build a layer of ``n`` units of the family named ``kind``."""
    try:
        cls = UNIT_FAMILIES[kind]
    except KeyError:
        raise ValueError(
            f"Unknown unit family {kind!r}; accepted: {', '.join(sorted(UNIT_FAMILIES))}"
        ) from None
    return cls(n)
