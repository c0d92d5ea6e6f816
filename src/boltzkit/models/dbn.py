"""Deep belief network: a stack of RBMs trained greedily, one layer at a time.

With ``L`` RBMs over the layers ``h_0 = v, h_1, ..., h_L`` (RBM ``l`` joins ``h_{l-1}`` and
``h_l``), the DBN is the directed model of Hinton, Osindero & Teh (2006)::

    p(v, h_1, ..., h_L) = p(h_{L-1}, h_L) * prod_{l=1}^{L-1} p(h_{l-1} | h_l)

the top RBM an undirected joint over its two layers, each lower RBM used only for its
top-down conditional ``p(h_{l-1} | h_l)``. The approximate posterior used for training
the next layer, for the bound and for classification is the bottom-up product of the
RBMs' own conditionals ``q(h_l | h_{l-1})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..units import Units
from .rbm import RBM


def log_conditional(units: Units, x: Tensor, a: Tensor) -> Tensor:
    """``log p(x | a)`` of a layer given its input ``a``, ``(B, n), (B, n) -> (B,)``.

    Every unit family has ``p(x | a) = exp(-self_energy(x) + scaled(x) . a - log_partition(a))``
    (:mod:`boltzkit.units`), e.g. for Bernoulli units ``sum_i x_i z_i - softplus(z_i)`` with
    ``z = b + a``; for Gaussian units it is a log density.
    """
    return -units.self_energy(x) + (units.scaled(x) * a).sum(dim=-1) - units.log_partition(a)


class DBN(nn.Module):
    """A deep belief network of ``len(layers)`` RBMs.

    Args:
        n_visible: visible units ``D``.
        layers: hidden layer widths ``[H_1, ..., H_L]`` (``L >= 1``).
        visible: ``bernoulli`` or ``gaussian`` units for ``v`` (upper layers are Bernoulli).
        init_std: standard deviation of the Gaussian initial weights.
        generator: random source for the initial weights (drawn bottom layer first, so the
            first RBM starts exactly as an RBM built from the same generator).
        centered: every RBM centered (Melchior, Fischer & Wiskott, 2016).
        visible_options: options of the visible family (``learn_variance``).

    Buffers: ``data_initialised`` ``(L,)`` marks the RBMs whose visible biases were set
    from the data they see (:meth:`init_layer_from_data`); it is saved with the weights,
    so a run resumed in the middle of layer ``l`` does not set them again.
    """

    def __init__(
        self,
        n_visible: int,
        layers: Sequence[int],
        visible: str = "bernoulli",
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        centered: bool = False,
        visible_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        if not layers:
            raise ValueError("Invalid DBN: no hidden layers (expected at least one width)")
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"Invalid DBN visible units {visible!r}; accepted: bernoulli, gaussian")
        widths = [n_visible, *layers]
        self.rbms = nn.ModuleList(
            RBM(below, above, visible if depth == 0 else "bernoulli", "bernoulli", init_std, generator,
                centered=centered, visible_options=visible_options if depth == 0 else None)
            for depth, (below, above) in enumerate(zip(widths, widths[1:], strict=False)))
        self.register_buffer("data_initialised", torch.zeros(len(layers), dtype=torch.bool))

    @property
    def n_visible(self) -> int:
        return self.rbms[0].n_visible

    @property
    def depth(self) -> int:
        """The number of RBMs ``L``."""
        return len(self.rbms)

    @property
    def top(self) -> RBM:
        return self.rbms[-1]

    def truncated(self, depth: int) -> DBN:
        """The DBN of the first ``depth`` RBMs, sharing their parameters (not a copy): what
        greedy training has built once layer ``depth`` is trained."""
        if not 1 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (expected 1 to {self.depth})")
        view = DBN.__new__(DBN)
        nn.Module.__init__(view)
        view.rbms = nn.ModuleList(self.rbms[:depth])
        view.register_buffer("data_initialised", self.data_initialised[:depth])
        return view

    # ---------------------------------------------------------------- bottom-up

    def up(self, v: Tensor, depth: int, sample: bool = False,
           generator: torch.Generator | None = None) -> Tensor:
        """The representation at layer ``depth`` (``0 <= depth <= L``), ``(B, D) -> (B, H_depth)``:
        ``h_l = E[h_l | h_{l-1}]`` (``sample=False``) or ``h_l ~ q(h_l | h_{l-1})`` from
        ``generator``, for ``l = 1 .. depth``; ``depth = 0`` returns ``v``."""
        if not 0 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (expected 0 to {self.depth})")
        x = v
        for rbm in self.rbms[:depth]:
            x = rbm.sample_hidden(x, generator) if sample else rbm.hidden_mean(x)
        return x

    def hidden_affines(self) -> list[tuple[Tensor, Tensor]]:
        """One ``(A_l, c_l)`` per RBM (see :meth:`RBM.hidden_affine`): an MLP with sigmoid
        units and these layers computes the mean-field pass :meth:`up` (``sample=False``)."""
        return [rbm.hidden_affine() for rbm in self.rbms]

    # ---------------------------------------------------------------- top-down

    def down(self, h: Tensor, depth: int, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor]:
        """The top-down pass from ``h = h_depth`` to the visible layer: ``h_{l-1} ~ p(h_{l-1} | h_l)``
        for ``l = depth .. 1``. Returns the visible sample and its mean ``E[v | h_1]``,
        each ``(B, D)`` (for ``depth = 0``, ``h`` twice)."""
        if not 0 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (expected 0 to {self.depth})")
        x, mean = h, h
        for rbm in reversed(self.rbms[:depth]):
            mean = rbm.visible_mean(x)
            x = rbm.visible.sample(rbm.visible_input(x), generator)
        return x, mean

    @torch.no_grad()
    def generate(self, n: int, steps: int = 1000, generator: torch.Generator | None = None,
                 temperatures: int = 0, min_beta: float = 0.5) -> tuple[Tensor, Tensor]:
        """``n`` samples of ``v``: ``steps`` Gibbs sweeps in the top RBM (parallel tempering
        with ``temperatures >= 2``) give ``h_{L-1}``, then one top-down pass (:meth:`down`).
        Returns the visible states and their means ``E[v | h_1]``, each ``(n, D)``."""
        from ..sampling.draw import draw_samples  # sampling builds on the models

        if steps < 1:
            raise ValueError(f"Invalid number of Gibbs sweeps: {steps} (expected >= 1)")
        top_states, top_means = draw_samples(self.top, n, steps, generator, temperatures, min_beta)
        if self.depth == 1:
            return top_states, top_means
        return self.down(top_states, self.depth - 1, generator)

    # ---------------------------------------------------------------- likelihood

    def log_joint_over_posterior(self, v: Tensor, latents: Sequence[Tensor]) -> Tensor:
        """The importance log-weight ``log w = log p*(v, h_1..h_{L-1}) - log q(h_1..h_{L-1} | v)``,
        ``(B,)``, of given states ``latents = [h_1, ..., h_{L-1}]`` (each ``(B, H_l)``), where
        ``p* = p * Z_top`` leaves out the top RBM's partition function::

            log p*(v, h) = sum_{l=1}^{L-1} log p(h_{l-1} | h_l) - F_top(h_{L-1})
            log q(h | v) = sum_{l=1}^{L-1} log q(h_l | h_{l-1})

        ``E_q[w] = p(v) Z_top``, so ``log mean(w) - log Z_top`` over draws from ``q`` is a
        stochastic lower bound on ``log p(v)`` (Salakhutdinov & Murray, 2008, section 5, for
        ``L = 2``; the same argument holds for any depth). For ``L = 1`` it is ``-F(v)``.
        """
        if len(latents) != self.depth - 1:
            raise ValueError(f"expected {self.depth - 1} latent layers, got {len(latents)}")
        states = [v, *latents]
        log_w = -self.top.free_energy(states[-1])
        for rbm, below, above in zip(self.rbms, states, states[1:], strict=False):
            log_w = log_w + log_conditional(rbm.visible, below, rbm.visible_input(above))
            log_w = log_w - log_conditional(rbm.hidden, above, rbm.hidden_input(below))
        return log_w

    def sample_posterior(self, v: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """``[h_1, ..., h_{L-1}]`` drawn from the bottom-up ``q(h | v)`` (the top layer ``h_L``
        is summed out analytically by the top RBM's free energy)."""
        states, x = [], v
        for rbm in self.rbms[:-1]:
            x = rbm.sample_hidden(x, generator)
            states.append(x)
        return states

    # ---------------------------------------------------------------- initialisation

    def init_from_data(self, data_mean: Tensor) -> None:
        """The first RBM's visible biases (and centering offsets) from the data's means."""
        self.init_layer_from_data(0, data_mean)

    @torch.no_grad()
    def init_layer_from_data(self, layer: int, mean: Tensor) -> None:
        """RBM ``layer``'s visible biases from the mean of what it sees (``E[h_layer]`` over the
        data: log-odds of the means, Hinton 2010, section 8), once: later calls are no-ops."""
        if not bool(self.data_initialised[layer]):
            self.rbms[layer].init_from_data(mean)
            self.data_initialised[layer] = True

    def extra_repr(self) -> str:
        widths = [self.n_visible] + [rbm.n_hidden for rbm in self.rbms]
        return f"layers={'-'.join(map(str, widths))}"
