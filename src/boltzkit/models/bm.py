"""General (fully connected) Boltzmann machine with binary visible and hidden units."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def coupling_mask(n_visible: int, n_hidden: int, connectivity: str = "full") -> Tensor:
    """Which pairs of units are coupled, ``(n, n)`` bool, symmetric, no self-couplings.

    ``full``: every pair; ``bipartite``: visible-hidden pairs only (an RBM).
    """
    n = n_visible + n_hidden
    if connectivity == "full":
        mask = torch.ones(n, n, dtype=torch.bool)
    elif connectivity == "bipartite":
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[:n_visible, n_visible:] = True
        mask[n_visible:, :n_visible] = True
    else:
        raise ValueError(f"unknown connectivity {connectivity!r}; accepted: full, bipartite")
    mask.fill_diagonal_(False)
    return mask


class BoltzmannMachine(nn.Module):
    """``E(s) = -sum_{i<j} W_ij s_i s_j - b . s`` over ``s = [v, h]`` in {0, 1}^(D + H).

    The couplings live in the upper triangle of ``weight`` (``(n, n)``), masked by a
    symmetric ``mask`` buffer; ``couplings()`` returns the symmetric matrix ``W`` with a
    zero diagonal. With a bipartite mask the machine is an RBM with weights
    ``weight[:D, D:]``.

    Args:
        n_visible, n_hidden: unit counts ``D`` and ``H``.
        mask: couplings that exist (default: all pairs, see :func:`coupling_mask`).
        init_std: standard deviation of the initial couplings.
        generator: random source for the initial couplings.
    """

    def __init__(self, n_visible: int, n_hidden: int, mask: Tensor | None = None,
                 init_std: float = 0.01, generator: torch.Generator | None = None):
        super().__init__()
        n = n_visible + n_hidden
        if n_visible < 1 or n_hidden < 0:
            raise ValueError(f"Invalid sizes: {n_visible} visible, {n_hidden} hidden units")
        mask = coupling_mask(n_visible, n_hidden) if mask is None else mask.to(torch.bool)
        if mask.shape != (n, n) or not torch.equal(mask, mask.T) or bool(mask.diagonal().any()):
            raise ValueError(f"mask must be a symmetric ({n}, {n}) boolean matrix with a false diagonal")
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.register_buffer("mask", torch.triu(mask, diagonal=1))
        self.weight = nn.Parameter(torch.randn(n, n, generator=generator) * init_std * self.mask)
        self.bias = nn.Parameter(torch.zeros(n))

    @property
    def n_units(self) -> int:
        return self.n_visible + self.n_hidden

    def couplings(self) -> Tensor:
        """The symmetric coupling matrix ``W`` (``(n, n)``, zero diagonal)."""
        upper = self.weight * self.mask
        return upper + upper.T

    def energy(self, s: Tensor) -> Tensor:
        """``E(s)`` for joint states ``(B, n)``, shape ``(B,)``."""
        upper = self.weight * self.mask
        return -((s @ upper) * s).sum(dim=-1) - s @ self.bias

    def unit_input(self, s: Tensor, i: int, couplings: Tensor) -> Tensor:
        """``b_i + sum_j W_ij s_j``: the log-odds of unit ``i`` given the others, ``(B,)``."""
        return self.bias[i] + s @ couplings[:, i]

    def sample(self, n: int, steps: int = 1000, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` visible samples ``(n, n_visible)`` after ``steps`` sequential Gibbs sweeps
        over all units, started from the biases' base rates."""
        from ..sampling.draw import draw_bm_samples  # sampling builds on this module

        return draw_bm_samples(self, n, steps, generator)[0]

    def init_from_data(self, data_mean: Tensor, eps: float = 1e-3) -> None:
        """Visible biases = clipped log-odds of the data means (as for RBMs)."""
        p = data_mean.detach().to(self.bias).clamp(eps, 1 - eps)
        with torch.no_grad():
            self.bias[: self.n_visible] = torch.log(p) - torch.log1p(-p)

    def extra_repr(self) -> str:
        return (f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
                f"couplings={int(self.mask.sum())}")
