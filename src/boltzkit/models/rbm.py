"""Restricted Boltzmann machine with pluggable visible and hidden unit families."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..units import Units, make_units


class RBM(nn.Module):
    """A restricted Boltzmann machine.

    Energy of a joint state ``v`` (``(B, D)``) and ``h`` (``(B, H)``)::

        E(v, h) = visible.self_energy(v) + hidden.self_energy(h) - v W h

    with ``W`` of shape ``(D, H)``; for Bernoulli units the self energies are
    ``-b . v`` and ``-c . h``. The hidden layer is summed out in the free energy::

        F(v) = -log sum_h exp(-E(v, h)) = visible.self_energy(v) - hidden.log_partition(v W)

    Args:
        n_visible: number of visible units ``D``.
        n_hidden: number of hidden units ``H``.
        visible, hidden: unit family names (see :mod:`boltzkit.units`).
        init_std: standard deviation of the Gaussian initial weights.
        generator: random source for the initial weights.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        hidden: str = "bernoulli",
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if init_std < 0:
            raise ValueError(f"Invalid init_std: {init_std} (expected >= 0)")
        self.visible: Units = make_units(visible, n_visible)
        self.hidden: Units = make_units(hidden, n_hidden)
        self.weight = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)

    @property
    def n_visible(self) -> int:
        return self.visible.n

    @property
    def n_hidden(self) -> int:
        return self.hidden.n

    def hidden_input(self, v: Tensor) -> Tensor:
        """``v W``: what the hidden layer receives, ``(B, D) -> (B, H)``."""
        return v @ self.weight

    def visible_input(self, h: Tensor) -> Tensor:
        """``h W^T``: what the visible layer receives, ``(B, H) -> (B, D)``."""
        return h @ self.weight.T

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """``E(v, h)``, shape ``(B,)``."""
        interaction = (self.hidden_input(v) * h).sum(dim=-1)
        return self.visible.self_energy(v) + self.hidden.self_energy(h) - interaction

    def free_energy(self, v: Tensor, hidden_input: Tensor | None = None) -> Tensor:
        """``F(v) = visible.self_energy(v) - hidden.log_partition(v W)``, shape ``(B,)``.

        ``hidden_input`` may pass a ``v W`` already computed (for sampling) so the
        matrix product is not done twice; gradients flow through it either way.
        """
        if hidden_input is None:
            hidden_input = self.hidden_input(v)
        return self.visible.self_energy(v) - self.hidden.log_partition(hidden_input)

    def hidden_free_energy(self, h: Tensor) -> Tensor:
        """``F(h) = -log sum_v exp(-E(v, h)) = hidden.self_energy(h) - visible.log_partition(h W^T)``,
        shape ``(B,)``: the visible layer summed out (used to enumerate the smaller layer)."""
        return self.hidden.self_energy(h) - self.visible.log_partition(self.visible_input(h))

    def hidden_mean(self, v: Tensor) -> Tensor:
        """``E[h | v]``, ``(B, D) -> (B, H)``."""
        return self.hidden.mean(self.hidden_input(v))

    def visible_mean(self, h: Tensor) -> Tensor:
        """``E[v | h]``, ``(B, H) -> (B, D)``."""
        return self.visible.mean(self.visible_input(h))

    def sample_hidden(self, v: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sample of ``h ~ p(h | v)``, ``(B, D) -> (B, H)``."""
        return self.hidden.sample(self.hidden_input(v), generator)

    def sample_visible(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sample of ``v ~ p(v | h)``, ``(B, H) -> (B, D)``."""
        return self.visible.sample(self.visible_input(h), generator)

    def reconstruct(self, v: Tensor) -> Tensor:
        """Mean-field reconstruction ``E[v | h = E[h | v]]``, ``(B, D) -> (B, D)``."""
        return self.visible_mean(self.hidden_mean(v))

    def init_from_data(self, data_mean: Tensor) -> None:
        """Set visible biases from the training data's per-unit means (clipped log-odds)."""
        self.visible.init_bias_from_mean(data_mean)

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"
