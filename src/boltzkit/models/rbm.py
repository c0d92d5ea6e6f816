"""Restricted Boltzmann machine with pluggable visible and hidden unit families."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .. import onednn
from ..units import Units, make_units


class RBM(nn.Module):
    """A restricted Boltzmann machine, optionally centered.

    Energy of a joint state ``v`` (``(B, D)``) and ``h`` (``(B, H)``), with ``s(x)`` each
    family's scaled view of its states (``x``, or ``x / sigma`` for Gaussian units)::

        E(v, h) = visible.self_energy(v) + hidden.self_energy(h) - (s(v) - mu) W (s(h) - lambda)

    ``W`` has shape ``(D, H)``. Without centering the offsets ``mu``, ``lambda`` are 0 and
    for Bernoulli units ``E = -b.v - c.h - v W h``. Summing out the hidden layer::

        F(v) = -log sum_h exp(-E(v, h))
             = visible.self_energy(v) + a . lambda - hidden.log_partition(a),  a = (s(v) - mu) W

    Centering (Melchior, Fischer & Wiskott, JMLR 2016) keeps ``mu`` and ``lambda`` near the
    mean of ``s(v)`` and of ``E[h | v]`` on the data: the gradient of the centered energy
    is better conditioned. :meth:`update_offsets` moves them and shifts the biases so that
    the distribution is unchanged.

    Args:
        n_visible, n_hidden: layer sizes ``D`` and ``H``.
        visible, hidden: unit family names (see :mod:`boltzkit.units`).
        init_std: standard deviation of the Gaussian initial weights.
        generator: random source for the initial weights.
        centered: use offsets ``mu``, ``lambda`` (buffers, saved with the weights).
        visible_options, hidden_options: keyword options of the families (``k`` for
            categorical units, ``learn_variance`` for Gaussian units).
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        hidden: str = "bernoulli",
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        centered: bool = False,
        visible_options: dict[str, Any] | None = None,
        hidden_options: dict[str, Any] | None = None,
    ):
        super().__init__()
        if init_std < 0:
            raise ValueError(f"Invalid init_std: {init_std} (expected >= 0)")
        self.visible: Units = make_units(visible, n_visible, **(visible_options or {}))
        self.hidden: Units = make_units(hidden, n_hidden, **(hidden_options or {}))
        self.weight = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)
        self.centered = centered
        self.register_buffer("visible_offset", torch.zeros(n_visible))
        self.register_buffer("hidden_offset", torch.full((n_hidden,), 0.5 if centered else 0.0))
        self._product_weight: Tensor | None = None  # W in a lower precision, inside products_in only
        self._onednn_weight: Tensor | None = None  # W for oneDNN, likewise

    @property
    def n_visible(self) -> int:
        return self.visible.n

    @property
    def n_hidden(self) -> int:
        return self.hidden.n

    @contextlib.contextmanager
    def products_in(self, dtype: torch.dtype | None, kernel: str = "torch") -> Iterator[None]:
        """Inside the block, :meth:`hidden_input` and :meth:`visible_input` multiply in
        ``dtype`` (a copy of ``W`` cast once on entry, so it must not change inside) and
        return the model's dtype; with ``kernel="onednn"`` float32 products run in
        :func:`boltzkit.onednn.times` (on ``W`` detached, no copy). Outside
        it, and with ``dtype`` ``None`` or the weights' own and the ``torch`` kernel, they
        multiply as usual. The copies carry no gradient: for the closed-form update of a
        training step (``train.product_dtype``, ``train.product_kernel``), never for
        evaluation. A nested block holds until it ends."""
        weight = self.weight.detach()
        outer = getattr(self, "_product_weight", None), getattr(self, "_onednn_weight", None)  # nesting
        lower = dtype is not None and dtype != weight.dtype
        if lower:
            self._product_weight, self._onednn_weight = weight.to(dtype), None
        elif onednn.kernel_for(kernel, weight) == "onednn":
            self._product_weight, self._onednn_weight = None, weight
        else:
            self._product_weight, self._onednn_weight = None, None
        try:
            yield
        finally:
            self._product_weight, self._onednn_weight = outer

    def __getstate__(self) -> dict:
        """Copies and pickles leave the block's weight copies behind: a copy made inside
        :meth:`products_in` multiplies its own ``W`` as usual, not a stale copy."""
        state = super().__getstate__()
        state["_product_weight"] = state["_onednn_weight"] = None
        return state

    def _times(self, x: Tensor, transposed: bool) -> Tensor:
        """``x W`` (or ``x W^T``), in the dtype or kernel of :meth:`products_in` when inside it."""
        # getattr: an RBM pickled by an earlier version (a scikit-learn estimator) has neither
        onednn_weight = getattr(self, "_onednn_weight", None)
        if onednn_weight is not None:
            return onednn.times(x, onednn_weight, transposed)
        weight = getattr(self, "_product_weight", None)
        if weight is None:
            return x @ (self.weight.T if transposed else self.weight)
        return (x.to(weight.dtype) @ (weight.T if transposed else weight)).to(x.dtype)

    def hidden_input(self, v: Tensor) -> Tensor:
        """``(s(v) - mu) W``: what the hidden layer receives, ``(B, D) -> (B, H)``."""
        x = self.visible.scaled(v)
        return self._times(x - self.visible_offset if self.centered else x, transposed=False)

    def visible_input(self, h: Tensor) -> Tensor:
        """``(s(h) - lambda) W^T``: what the visible layer receives, ``(B, H) -> (B, D)``."""
        x = self.hidden.scaled(h)
        return self._times(x - self.hidden_offset if self.centered else x, transposed=True)

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """``E(v, h)``, shape ``(B,)``."""
        y = self.hidden.scaled(h)
        if self.centered:
            y = y - self.hidden_offset
        interaction = (self.hidden_input(v) * y).sum(dim=-1)
        return self.visible.self_energy(v) + self.hidden.self_energy(h) - interaction

    def free_energy(self, v: Tensor, hidden_input: Tensor | None = None) -> Tensor:
        """``F(v) = visible.self_energy(v) + a . lambda - hidden.log_partition(a)``, ``(B,)``.

        ``hidden_input`` may pass an ``a = (s(v) - mu) W`` already computed (for sampling)
        so the matrix product is not done twice; gradients flow through it either way.
        """
        if hidden_input is None:
            hidden_input = self.hidden_input(v)
        f = self.visible.self_energy(v) - self.hidden.log_partition(hidden_input)
        return f + hidden_input @ self.hidden_offset if self.centered else f

    def hidden_free_energy(self, h: Tensor) -> Tensor:
        """``F(h) = -log integral_v exp(-E(v, h))``, shape ``(B,)``: the visible layer summed
        out (used to enumerate the hidden layer when it is the smaller one)."""
        a = self.visible_input(h)
        f = self.hidden.self_energy(h) - self.visible.log_partition(a)
        return f + a @ self.visible_offset if self.centered else f

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

    def sample(self, n: int, steps: int = 1000, *, generator: torch.Generator | None = None,
               temperatures: int = 0, min_beta: float = 0.5) -> Tensor:
        """``n`` visible samples ``(n, D)`` after ``steps`` Gibbs sweeps from the visible
        biases' base rates (parallel tempering with ``temperatures >= 2`` replicas down to
        inverse temperature ``min_beta``). For pictures, ``E[v | h]`` is smoother: see
        :func:`boltzkit.sampling.draw.draw_samples`."""
        from ..sampling.draw import draw_samples  # sampling builds on this module

        with torch.no_grad():
            return draw_samples(self, n, steps, generator, temperatures, min_beta)[0]

    def reconstruct(self, v: Tensor) -> Tensor:
        """Mean-field reconstruction ``E[v | h = E[h | v]]``, ``(B, D) -> (B, D)``."""
        return self.visible_mean(self.hidden_mean(v))

    def init_from_data(self, data_mean: Tensor) -> None:
        """Visible biases from the training data's per-unit means (clipped log-odds for
        Bernoulli units); with centering, ``mu`` starts at the data's scaled mean."""
        self.visible.init_bias_from_mean(data_mean)
        if self.centered:
            with torch.no_grad():
                self.visible_offset.copy_(self.visible.scaled(data_mean.to(self.weight)))

    @torch.no_grad()
    def update_offsets(self, v: Tensor, rate: float) -> None:
        """Move ``mu`` and ``lambda`` a fraction ``rate`` toward the batch's mean of ``s(v)``
        and of ``s(E[h | v])``, re-parametrising the biases so that ``p(v, h)`` is unchanged.

        The energy's terms linear in a layer are ``s(v) . W lambda`` and ``mu W . s(h)``;
        moving ``lambda`` by ``d`` is undone by giving the visible layer the extra input
        ``W d`` (and likewise for ``mu``): :meth:`Units.absorb_input`.
        """
        if not self.centered:
            return
        target_mu = self.visible.scaled(v).mean(dim=0)
        target_lambda = self.hidden.scaled(self.hidden_mean(v)).mean(dim=0)
        d_mu = rate * (target_mu - self.visible_offset)
        d_lambda = rate * (target_lambda - self.hidden_offset)
        self.visible.absorb_input(self.weight @ d_lambda)
        self.hidden.absorb_input(d_mu @ self.weight)
        self.visible_offset.add_(d_mu)
        self.hidden_offset.add_(d_lambda)

    @torch.no_grad()
    def without_offsets(self) -> RBM:
        """A plain (uncentered) copy with the same distribution ``p(v, h)``.

        Expanding ``(s(v) - mu) W (s(h) - lambda)`` gives the plain interaction plus the
        input ``-W lambda`` to the visible layer and ``-mu W`` to the hidden layer (absorbed
        into the biases) and a constant; the copy's free energy differs from this model's
        by that constant only. A model without centering is returned as is.
        """
        if not self.centered:
            return self
        plain = copy.deepcopy(self)
        plain.centered = False
        plain.visible.absorb_input(-(self.weight @ self.hidden_offset))
        plain.hidden.absorb_input(-(self.visible_offset @ self.weight))
        plain.visible_offset.zero_()
        plain.hidden_offset.zero_()
        return plain

    @torch.no_grad()
    def hidden_affine(self) -> tuple[Tensor, Tensor]:
        """``(A, c)`` with ``A`` ``(D, H)`` and ``c`` ``(H,)`` such that for Bernoulli hidden
        units ``E[h | v] = sigmoid(v A + c)``: the offsets absorbed into ``c``, the Gaussian
        scaling ``1 / sigma`` folded into ``A``. A feed-forward layer starts from these.
        """
        plain = self.without_offsets()
        eye = torch.eye(self.n_visible, dtype=self.weight.dtype, device=self.weight.device)
        return plain.visible.scaled(eye) @ plain.weight, plain.hidden.bias.detach().clone()

    def hidden_affines(self) -> list[tuple[Tensor, Tensor]]:
        """``[hidden_affine()]``: the layers an MLP starts from (one for an RBM)."""
        return [self.hidden_affine()]

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, centered={self.centered}"
