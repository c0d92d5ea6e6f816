"""Deep Boltzmann machine: binary layers ``x_0 = v, x_1, ..., x_L``, each coupled only to
its neighbours (Salakhutdinov & Hinton, AISTATS 2009), optionally centered (Montavon &
Muller 2012; Melchior, Fischer & Wiskott, JMLR 2016).

Energy of a joint state (a list of ``L + 1`` tensors ``x_l`` of shape ``(B, n_l)``)::

    E(x) = -sum_l b_l . x_l - sum_{l=1}^{L} (x_{l-1} - mu_{l-1}) W_l (x_l - mu_l)

with ``W_l`` of shape ``(n_{l-1}, n_l)`` and offsets ``mu_l`` (0 without centering). The
energy is linear in each layer, and a layer's units are independent given its
neighbours: ``p(x_l = 1 | rest) = sigmoid(a_l)`` with the input

    a_l = b_l + (x_{l-1} - mu_{l-1}) W_l + (x_{l+1} - mu_{l+1}) W_{l+1}^T.

Hence layers of one parity can be summed out in closed form given the others: with the
layers ``S`` (no two adjacent) summed out,

    F(x_rest) = E(x with x_S = 0) - sum_{l in S} sum_j softplus(a_lj).

Everything the estimators and samplers need is built from :meth:`energy`,
:meth:`layer_input` and :meth:`free_energy`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import onednn
from ..units import bernoulli

CLASSIFIER_SWEEPS = 50
"""Cap on the mean-field sweeps of :meth:`DBM.input_features` (fixed: a classifier's inputs
must be the same at training and at evaluation)."""
CLASSIFIER_TOL = 1e-6
"""Per-example convergence tolerance of :meth:`DBM.input_features`."""

States = list[Tensor]
"""One tensor per layer, ``(B, n_l)``; a summed-out layer may be ``None``."""


class DBM(nn.Module):
    """A deep Boltzmann machine with Bernoulli units on every layer.

    Args:
        sizes: ``[n_0, n_1, ..., n_L]``: the visible layer and at least two hidden layers.
        init_std: standard deviation of the Gaussian initial weights.
        generator: random source for the initial weights.
        centered: use offsets ``mu_l`` (buffers ``offset{l}``, saved with the weights),
            kept near the mean of each layer on the data by :meth:`update_offsets`.
    """

    activation = "sigmoid"
    """What its units' means compute: an MLP seeded from it must use the same (model.activation)."""

    def __init__(self, sizes: Sequence[int], init_std: float = 0.01,
                 generator: torch.Generator | None = None, centered: bool = False):
        super().__init__()
        sizes = [int(n) for n in sizes]
        if len(sizes) < 3:
            raise ValueError(f"Invalid DBM sizes {sizes}: a visible layer and at least two hidden "
                             "layers are needed (one hidden layer is an RBM)")
        if min(sizes) < 1:
            raise ValueError(f"Invalid number of units in DBM sizes {sizes} (expected >= 1 per layer)")
        if init_std < 0:
            raise ValueError(f"Invalid init_std: {init_std} (expected >= 0)")
        self.sizes = sizes
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(a, b, generator=generator) * init_std)
            for a, b in zip(sizes, sizes[1:], strict=False))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in sizes)
        self.centered = centered
        for depth, n in enumerate(sizes):
            self.register_buffer(f"offset{depth}", torch.full((n,), 0.5 if centered and depth else 0.0))
        self._onednn = False  # inside products_in("onednn") only

    # ---------------------------------------------------------------- structure

    @property
    def n_layers(self) -> int:
        """``L + 1``: the visible layer and the hidden layers."""
        return len(self.sizes)

    @property
    def n_visible(self) -> int:
        return self.sizes[0]

    def offsets(self) -> list[Tensor]:
        return [getattr(self, f"offset{depth}") for depth in range(self.n_layers)]

    def center(self, x: Tensor, depth: int) -> Tensor:
        """``x - mu_depth`` for a centered model, ``x`` otherwise: what the energy multiplies."""
        return x - getattr(self, f"offset{depth}") if self.centered else x

    @contextlib.contextmanager
    def products_in(self, kernel: str = "torch", rows: int | None = None) -> Iterator[str]:
        """Inside the block, with ``kernel="onednn"`` and float32 CPU weights, the products
        of sampling, mean field and energies (:meth:`layer_input`, :meth:`recognition`,
        :meth:`energy`) run in :func:`boltzkit.onednn.times` on the weights' detached views
        (no gradient: for the closed-form update of a training step, ``train.product_kernel``,
        and for evaluation, ``eval.product_kernel``; the autograd surrogate never runs
        inside); ``torch``, and outside it, they multiply as usual. A nested block holds
        until it ends. ``kernel`` ``auto`` decides by the size of products of ``rows`` rows
        (:func:`boltzkit.onednn.kernel_for`). Yields the kernel that multiplies."""
        outer = getattr(self, "_onednn", False)  # nested blocks: the outer one's setting returns
        self._onednn = onednn.kernel_for(kernel, *self.weights, rows=rows) == "onednn"
        try:
            yield "onednn" if self._onednn else "torch"
        finally:
            self._onednn = outer

    def __getstate__(self) -> dict:
        """Copies and pickles leave the product kernel behind: a DBM copied inside
        :meth:`products_in` (e.g. to float64) multiplies as usual."""
        state = super().__getstate__()
        state["_onednn"] = False
        return state

    def _times(self, x: Tensor, depth: int, transposed: bool = False) -> Tensor:
        """``x W_depth`` (or ``x W_depth^T``), in oneDNN inside :meth:`products_in` ("onednn")."""
        weight = self.weights[depth]
        if getattr(self, "_onednn", False):
            return onednn.times(x, weight.detach(), transposed)
        return x @ (weight.T if transposed else weight)

    # ---------------------------------------------------------------- energy

    def layer_input(self, states: States, depth: int, from_below: Tensor | None = None) -> Tensor:
        """``a_l = b_l + (x_{l-1} - mu_{l-1}) W_l + (x_{l+1} - mu_{l+1}) W_{l+1}^T``, ``(B, n_l)``;
        only the neighbours of layer ``l`` are read. ``from_below``: the product
        ``(x_{l-1} - mu_{l-1}) W_l`` where the caller already has it (mean field: the
        visible layer's never changes), the same sum to the bit."""
        a = self.biases[depth]
        if depth > 0:
            if from_below is None:
                from_below = self._times(self.center(states[depth - 1], depth - 1), depth - 1)
            a = a + from_below
        if depth < self.n_layers - 1:
            a = a + self._times(self.center(states[depth + 1], depth + 1), depth, transposed=True)
        return a

    def energy(self, states: States) -> Tensor:
        """``E(x)``, shape ``(B,)``."""
        e = -sum(x @ b for x, b in zip(states, self.biases, strict=True))
        for depth in range(len(self.weights)):
            below = self.center(states[depth], depth)
            above = self.center(states[depth + 1], depth + 1)
            e = e - (self._times(below, depth) * above).sum(dim=-1)
        return e

    def free_energy(self, states: States, summed: Sequence[int]) -> Tensor:
        """``F = -log sum_{x_S} exp(-E(x))`` with the layers ``summed`` (no two adjacent)
        summed out; their entries in ``states`` are ignored. ``(B,)``."""
        summed = sorted(set(summed))
        if any(b - a == 1 for a, b in zip(summed, summed[1:], strict=False)):
            raise ValueError(f"adjacent layers {summed} cannot be summed out in closed form")
        batch = next(x for depth, x in enumerate(states) if depth not in summed)
        zeros = [batch.new_zeros(len(batch), n) if depth in summed else x
                 for depth, (x, n) in enumerate(zip(states, self.sizes, strict=True))]
        f = self.energy(zeros)
        for depth in summed:
            f = f - F.softplus(self.layer_input(zeros, depth)).sum(dim=-1)
        return f

    # ---------------------------------------------------------------- sampling

    def sample_layers(self, states: States, parity: int, generator: torch.Generator | None,
                      beta: float | Tensor = 1.0) -> States:
        """A copy of ``states`` with every layer of ``parity`` (0: even, 1: odd) drawn from
        ``p_beta(x_l | neighbours) = sigmoid(beta a_l)``; ``beta`` may be a column ``(B, 1)``
        (one inverse temperature per row)."""
        new = list(states)
        for depth in range(parity, self.n_layers, 2):
            new[depth] = bernoulli(torch.sigmoid(beta * self.layer_input(states, depth)), generator)
        return new

    def gibbs(self, states: States, sweeps: int, generator: torch.Generator | None,
              beta: float | Tensor = 1.0) -> States:
        """``sweeps`` alternating updates: odd layers given even, then even given odd."""
        for _ in range(sweeps):
            states = self.sample_layers(self.sample_layers(states, 1, generator, beta), 0, generator, beta)
        return states

    def visible_mean(self, states: States) -> Tensor:
        """``p(v = 1 | x_1)``, ``(B, n_0)``."""
        return torch.sigmoid(self.layer_input(states, 0))

    def base_states(self, n: int, generator: torch.Generator | None) -> States:
        """``n`` states with every layer drawn from ``sigmoid(b_l)`` alone (no couplings)."""
        weight = self.weights[0]
        return [bernoulli(torch.sigmoid(b.detach()).expand(n, -1).to(weight.dtype), generator)
                for b in self.biases]

    def sample(self, n: int, steps: int = 1000, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` visible samples ``(n, n_0)`` after ``steps`` Gibbs sweeps from the biases' base rates."""
        with torch.no_grad():
            return self.gibbs(self.base_states(n, generator), steps, generator)[0]

    # ---------------------------------------------------------------- mean field

    def recognition(self, v: Tensor, layers: int | None = None, from_visible: Tensor | None = None) -> States:
        """The bottom-up pass that starts mean field (Salakhutdinov & Hinton 2012): every
        hidden layer but the top receives its input from below doubled, standing in for
        the missing input from above; the top layer receives it once. ``[v, mu_1, ...]``
        up to ``layers`` hidden layers (default all). ``from_visible``: ``(v - mu_0) W_1``
        where the caller already has it."""
        top = self.n_layers - 1
        states = [v]
        for depth in range(1, (top if layers is None else layers) + 1):
            factor = 1.0 if depth == top else 2.0
            below = (from_visible if depth == 1 and from_visible is not None
                     else self._times(self.center(states[-1], depth - 1), depth - 1))
            states.append(torch.sigmoid(self.biases[depth] + factor * below))
        return states

    def mean_field(self, v: Tensor, max_iter: int = 30, tol: float = 1e-4,
                   per_example: bool = False) -> tuple[States, int]:
        """The fully factorised posterior ``q(h | v) = prod_l prod_j mu_lj^h (1 - mu_lj)^(1-h)``
        that maximises :meth:`variational_bound`, by fixed-point iteration

            mu_l <- sigmoid(a_l(v, mu)),  l = 1, ..., L in turn,

        from :meth:`recognition`, until no mean moves by more than ``tol`` or ``max_iter``
        sweeps. Each layer update is the exact maximiser of the bound over that layer
        given the others (its units are independent given the neighbours), so the bound
        never decreases. Returns ``[v, mu_1, ..., mu_L]`` and the sweeps taken.

        ``per_example``: test ``tol`` per row and freeze each row once it has converged, so
        that a row's result does not depend on the rest of the batch (row ``i`` equals
        ``mean_field(v[i:i+1])``); the sweeps returned are the batch's maximum.
        """
        # v never changes: its product with W_1 is made once, not once per sweep (28 % of
        # each sweep's multiply-adds for 784-500-1000)
        from_visible = self._times(self.center(v, 0), 0)
        states = self.recognition(v, from_visible=from_visible)
        if per_example:
            return self._mean_field_rows(states, max_iter, tol, from_visible)
        for sweep in range(1, max_iter + 1):
            changes = []
            for depth in range(1, self.n_layers):
                new = torch.sigmoid(self.layer_input(states, depth, from_visible if depth == 1 else None))
                changes.append((new - states[depth]).abs().max())
                states[depth] = new
            if torch.stack(changes).max().item() < tol:  # one device sync per sweep
                return states, sweep
        return states, max_iter

    def _mean_field_rows(self, states: States, max_iter: int, tol: float,
                         from_visible: Tensor) -> tuple[States, int]:
        """:meth:`mean_field`'s sweeps with a convergence test per row: a converged row
        keeps its means (``active`` marks the rows still moving)."""
        active = torch.ones(len(states[0]), dtype=torch.bool, device=states[0].device)
        for sweep in range(1, max_iter + 1):
            change = torch.zeros(len(states[0]), dtype=states[1].dtype, device=states[1].device)
            for depth in range(1, self.n_layers):
                update = torch.sigmoid(self.layer_input(states, depth, from_visible if depth == 1 else None))
                new = torch.where(active[:, None], update, states[depth])
                change = torch.maximum(change, (new - states[depth]).abs().amax(dim=1))
                states[depth] = new
            active = active & (change >= tol)
            if not active.any():
                return states, sweep
        return states, max_iter

    def variational_bound(self, states: States) -> Tensor:
        """``-E(v, mu) + sum_l H(mu_l)``, ``(B,)``: with ``log Z`` subtracted, a lower bound on
        ``log p(v)`` for any factorised ``q`` with means ``mu`` (``E_q[E] = E(v, mu)``
        because the energy is linear in each layer and ``q`` makes layers independent)."""
        entropy = sum(_bernoulli_entropy(mu).sum(dim=-1) for mu in states[1:])
        return -self.energy(states) + entropy

    @torch.no_grad()
    def init_from_data(self, data_mean: Tensor) -> None:
        """Visible biases ``logit(p)`` of the data's pixel means ``p`` (clipped to [1e-3,
        1 - 1e-3]: Hinton's practical guide, Sec. 8); with centering, ``mu_0 = p``."""
        p = data_mean.to(self.biases[0]).clamp(1e-3, 1 - 1e-3)
        self.biases[0].copy_(torch.log(p) - torch.log1p(-p))
        if self.centered:
            self.offset0.copy_(data_mean.to(self.offset0))

    # ---------------------------------------------------------------- centering

    @torch.no_grad()
    def set_offsets(self, targets: Sequence[Tensor]) -> None:
        """Move the offsets to ``targets`` and re-parametrise the biases so that ``p(x)`` is
        unchanged: moving ``mu_l`` by ``d`` adds ``x_{l-1} . W_l d`` and ``d W_{l+1} . x_{l+1}``
        (plus constants) to the energy, undone by ``b_{l-1} += W_l d`` and
        ``b_{l+1} += W_{l+1}^T d``."""
        shifts = [target.to(mu) - mu for target, mu in zip(targets, self.offsets(), strict=True)]
        for depth, weight in enumerate(self.weights):
            self.biases[depth].add_(weight @ shifts[depth + 1])
            self.biases[depth + 1].add_(shifts[depth] @ weight)
        for mu, d in zip(self.offsets(), shifts, strict=True):
            mu.add_(d)

    @torch.no_grad()
    def update_offsets(self, states: States, rate: float) -> None:
        """Centered models: move each ``mu_l`` a fraction ``rate`` toward the batch mean of
        ``states[l]`` (the data and its mean-field posterior)."""
        if self.centered:
            self.set_offsets([mu + rate * (x.mean(dim=0) - mu)
                              for mu, x in zip(self.offsets(), states, strict=True)])

    @torch.no_grad()
    def without_offsets(self) -> DBM:
        """A plain copy whose energy differs from this model's by a constant only (the same
        distribution); a model without centering is returned as is."""
        if not self.centered:
            return self
        plain = copy.deepcopy(self)
        plain.set_offsets([torch.zeros_like(mu) for mu in self.offsets()])
        plain.centered = False
        return plain

    @torch.no_grad()
    def hidden_affines(self) -> list[tuple[Tensor, Tensor]]:
        """``[(A_l, c_l)]`` of :meth:`recognition`: ``mu_l = sigmoid(mu_{l-1} A_l + c_l)`` with
        ``A_l = f W_l`` and ``c_l = b_l - f mu_{l-1}^offset W_l`` (``f = 2`` below the top, 1 at
        the top; the offset term only for centered models). A sigmoid MLP started from them
        computes the bottom-up pass that starts mean field."""
        top = self.n_layers - 1
        affines = []
        for depth in range(1, self.n_layers):
            factor = 1.0 if depth == top else 2.0
            weight = factor * self.weights[depth - 1].detach()
            bias = self.biases[depth].detach().clone()
            if self.centered:
                bias = bias - getattr(self, f"offset{depth - 1}") @ weight
            affines.append((weight.clone(), bias))
        return affines

    # ---------------------------------------------------------------- the classifier of SH 2009

    def _check_two_hidden_layers(self) -> None:
        if self.n_layers != 3:
            raise ValueError(
                f"the mean-field input of Salakhutdinov & Hinton (2009) is defined for a DBM with two "
                f"hidden layers, and this one has {self.n_layers - 1} (sizes {self.sizes}): with more, "
                "q(h_top | v) couples to a layer above the first and has no place in the first "
                "layer's input; use model.pretrained_input: plain")

    @torch.no_grad()
    def input_features(self, v: Tensor, max_iter: int = CLASSIFIER_SWEEPS,
                       tol: float = CLASSIFIER_TOL) -> Tensor:
        """``q(h_2 | v)``, ``(B, n_2)``: the top layer's means of :meth:`mean_field` (tested
        per example, so a row does not depend on its batch), the extra input of the
        classifier of Salakhutdinov & Hinton (2009, Sec. 3 and Fig. 4). Defined for two
        hidden layers only (a ``ValueError`` otherwise)."""
        self._check_two_hidden_layers()
        states, _ = self.mean_field(v, max_iter, tol, per_example=True)
        return states[-1]

    @torch.no_grad()
    def augmented_affines(self) -> list[tuple[Tensor, Tensor]]:
        """``[(A_1, b_1), (W_2, b_2)]`` of the plain model for the input ``[v, q(h_2 | v)]``:
        ``A_1 = [[W_1], [W_2^T]]``, ``(n_0 + n_2, n_1)``, so a sigmoid MLP's first layer computes
        ``sigmoid(v W_1 + q W_2^T + b_1)`` (the mean-field update of ``h_1`` with ``q`` for
        ``h_2``) and its second ``sigmoid(h_1 W_2 + b_2)``. Two hidden layers only."""
        self._check_two_hidden_layers()
        plain = self.without_offsets()
        first, second = (w.detach().clone() for w in plain.weights)
        return [(torch.cat([first, second.T]), plain.biases[1].detach().clone()),
                (second, plain.biases[2].detach().clone())]

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, centered={self.centered}"


def _bernoulli_entropy(p: Tensor) -> Tensor:
    """``-p log p - (1 - p) log(1 - p)`` elementwise, 0 at ``p`` in {0, 1}."""
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))
