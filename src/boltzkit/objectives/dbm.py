"""Training objectives of deep Boltzmann machines: joint learning and greedy pretraining.

**Joint learning** (Salakhutdinov & Hinton 2009): the gradient of ``log p(v)`` is
``E_{p(h|v)}[-dE/dtheta] - E_{p(v,h)}[-dE/dtheta]``. The first expectation is replaced by
the mean-field posterior (exact for the energy's multilinear terms: ``E_q[x_{l-1} x_l^T] =
mu_{l-1} mu_l^T``), the second by persistent chains. The surrogate

    loss = mean E(v, mu) - mean E(x~)          (mu and x~ constant)

has that (negated) gradient, so every optimizer, weight decay and schedule applies.

**Sparsity** (Lee, Ekanadham & Ng 2008; Hinton's practical guide, 2010, Sec. 11): a
target activity ``p`` for each hidden layer; the penalty's gradient on the hidden biases
is ``cost * (q - p)``, with ``q`` the batch mean of the mean-field activity per unit
(``statistic: unit``) or of the whole layer (``statistic: layer``, one number per layer:
individual units may stay dead or saturated as long as the layer is sparse on average).

**Greedy pretraining** (Salakhutdinov & Hinton 2009; 2012, Sec. 3.2): layer ``l`` is an RBM
over ``(x_{l-1}, x_l)`` whose conditionals double the weights where the DBM will give a
layer a second neighbour: bottom-up for the first RBM (its hidden layer will also hear
the layer above), top-down for the last, both ways for the middle ones. After pretraining
each weight is used once in the DBM, which then starts close to the stack's
distribution. The surrogate is ``mean E(x, h_data) - mean E(x~, h~)`` with the RBM energy
``-x W h - b.x - c.h`` and CD-``k`` chains under the modified conditionals.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .. import onednn
from ..models.dbm import DBM, States
from ..sampling.dbm import DBMChains
from ..units import bernoulli
from .base import Objective
from .statistics import contrast_product


class DBMLearning(Objective):
    """Mean-field positive phase, persistent (optionally tempered) negative phase.

    Args:
        chains: the negative phase.
        mean_field_iter, tol: fixed-point sweeps (cap) and tolerance of the positive phase.
        offset_rate: how fast a centered model's offsets follow the batch means.
        sparsity_target, sparsity_cost, sparsity_statistic: the sparsity penalty (cost 0: off).
    """

    def __init__(self, chains: DBMChains, mean_field_iter: int = 10, tol: float = 1e-3,
                 offset_rate: float = 0.01, sparsity_target: float = 0.1, sparsity_cost: float = 0.0,
                 sparsity_statistic: Literal["unit", "layer"] = "unit"):
        self.chains = chains
        self.mean_field_iter, self.tol, self.offset_rate = mean_field_iter, tol, offset_rate
        self.sparsity_target, self.sparsity_cost = sparsity_target, sparsity_cost
        self.sparsity_statistic = sparsity_statistic
        self.positive: States | None = None
        self.negatives: States | None = None
        self._sweeps = self._updates = 0

    @torch.no_grad()
    def _phases(self, model: DBM, v: Tensor) -> tuple[States, States]:
        """Mean field on the batch, the offsets' step, the chains' step: the positive
        states ``[v, mu_1, ...]`` and the negative ones."""
        positive, sweeps = model.mean_field(v, self.mean_field_iter, self.tol)
        model.update_offsets(positive, self.offset_rate)  # centered models only
        negatives = self.chains.step(model, positive)
        self._sweeps += sweeps
        self._updates += 1
        self.positive, self.negatives = positive, negatives
        return positive, negatives

    def _sparsity_slopes(self, positive: States) -> list[Tensor]:
        """``cost * (q_l - p)`` per hidden layer ``l``: the penalty's gradient on ``b_l``."""
        slopes = []
        for depth in range(1, len(positive)):
            q = positive[depth].mean(dim=0)
            if self.sparsity_statistic == "layer":
                q = q.mean().expand_as(q)
            slopes.append(self.sparsity_cost * (q - self.sparsity_target))
        return slopes

    def loss(self, model: DBM, v: Tensor) -> Tensor:
        positive, negatives = self._phases(model, v)
        loss = model.energy(positive).mean() - model.energy(negatives).mean()
        if self.sparsity_cost:
            for depth, slope in enumerate(self._sparsity_slopes(positive), start=1):
                loss = loss + (slope * model.biases[depth]).sum()
        return loss

    def has_closed_form(self, model: DBM) -> bool:
        return True

    def product_keys(self, model: DBM) -> frozenset[str]:
        """The kernel only: mean field, the chains and the weight gradients run their
        float32 products in oneDNN with ``onednn`` (:meth:`~boltzkit.models.dbm.DBM.products_in`);
        bfloat16 products were not measured on a DBM's likelihood, so they are not offered."""
        return frozenset({"product_kernel"})

    @torch.no_grad()
    def write_gradients(self, model: DBM, v: Tensor) -> float:
        """The gradient of :meth:`loss` without autograd, after the same draws: with
        ``c_l = x_l - mu_l`` (``mu_l = 0`` uncentered), ``d/dW_l = c_l~^T c_{l+1}~ / n~ -
        c_l^T c_{l+1} / n`` (one fused product, :func:`contrast_product`) and ``d/db_l =
        mean x_l~ - mean x_l`` (plus the sparsity slope), data at the mean-field means and
        ``~`` the chains. The energy is linear in the parameters (for fixed states and
        offsets), and so is the sparsity term, so the loss equals ``sum <theta, grad>``:
        its value costs no further product."""
        kernel = onednn.kernel_for(self.product_kernel, *model.weights, rows=len(v))
        with model.products_in(kernel):
            positive, negatives = self._phases(model, v)
        data = [model.center(x, depth) for depth, x in enumerate(positive)]
        chains = [model.center(x, depth) for depth, x in enumerate(negatives)]
        grads = {}
        for depth, weight in enumerate(model.weights):
            grads[weight] = contrast_product(data[depth], data[depth + 1], chains[depth], chains[depth + 1],
                                             kernel=kernel)
        for depth, bias in enumerate(model.biases):
            grads[bias] = negatives[depth].mean(dim=0) - positive[depth].mean(dim=0)
        if self.sparsity_cost:
            for depth, slope in enumerate(self._sparsity_slopes(positive), start=1):
                grads[model.biases[depth]] += slope
        value = sum(torch.dot(param.detach().flatten(), grad.flatten()) for param, grad in grads.items())
        for parameter, grad in grads.items():
            if parameter.requires_grad:
                parameter.grad = grad
        return float(value)

    def epoch_metrics(self) -> dict[str, float]:
        metrics = {"mean_field_sweeps": self._sweeps / self._updates} if self._updates else {}
        self._sweeps = self._updates = 0
        return {**metrics, **self.chains.epoch_metrics()}

    def state_dict(self) -> dict:
        return {"chains": self.chains.state_dict(), "sweeps": self._sweeps, "updates": self._updates}

    def load_state_dict(self, state: dict) -> None:
        self.chains.load_state_dict(state["chains"])
        self._sweeps, self._updates = state["sweeps"], state["updates"]


def pretraining_factors(depth: int, top: int) -> tuple[float, float]:
    """``(up, down)`` weight factors of the RBM that pretrains ``W_depth`` in a DBM whose top
    layer is ``top``: 2 where the DBM layer it feeds gets a second neighbour."""
    return (1.0 if depth == top else 2.0), (1.0 if depth == 1 else 2.0)


class ModifiedRBMPretraining(Objective):
    """CD-``k`` for the RBM over layers ``depth - 1`` (the batch: its activities) and ``depth``
    of a DBM, with the doubled conditionals of the module docstring.

    Trains ``W_depth`` and ``b_depth``; the lower bias ``b_{depth-1}`` only for the first RBM
    (above it, the lower layer's bias is the one learned as the hidden bias below).
    """

    def __init__(self, depth: int, k: int, generator: torch.Generator):
        self.depth, self.k, self.generator = depth, k, generator
        self.negatives: Tensor | None = None

    def loss(self, model: DBM, x: Tensor) -> Tensor:
        depth = self.depth
        up, down = pretraining_factors(depth, model.n_layers - 1)
        weight, bias = model.weights[depth - 1], model.biases[depth]
        lower = model.biases[depth - 1] if depth == 1 else model.biases[depth - 1].detach()
        with torch.no_grad():
            h_data = torch.sigmoid(up * (x @ weight) + bias)
            h = bernoulli(h_data, self.generator)
            for step in range(self.k):
                x_model = bernoulli(torch.sigmoid(down * (h @ weight.T) + lower), self.generator)
                h_model = torch.sigmoid(up * (x_model @ weight) + bias)
                if step < self.k - 1:
                    h = bernoulli(h_model, self.generator)
        self.negatives = x_model

        def energy(x_: Tensor, h_: Tensor) -> Tensor:
            return -((x_ @ weight) * h_).sum(dim=-1) - x_ @ lower - h_ @ bias

        return energy(x, h_data).mean() - energy(x_model, h_model).mean()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
