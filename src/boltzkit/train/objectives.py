"""Training objectives written as surrogate losses whose autograd gradient is the estimator.

For an RBM, ``d/dtheta log p(v) = -dF(v)/dtheta + E_model[dF/dtheta]``. Replacing the model
expectation by samples ``v~`` gives the contrastive-divergence family, and

    loss = mean F(v_data) - mean F(v~)        (v~ treated as a constant)

has exactly that (negated) gradient, so any ``torch.optim`` optimizer, weight decay,
clipping and schedule applies unchanged. The loss *value* is the free-energy gap between
data and negative samples, a useful but not a likelihood-like number.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.rbm import RBM
from ..sampling.gibbs import PersistentChains, gibbs_hvh


class ContrastiveDivergence:
    """CD-k (Hinton, 2002): negative samples from ``k`` Gibbs sweeps started at the batch.

    Args:
        k: Gibbs sweeps per update (``k >= 1``).
        generator: random source for the chains.
    """

    def __init__(self, k: int, generator: torch.Generator):
        if k < 1:
            raise ValueError(f"Invalid number of Gibbs steps k: {k} (expected >= 1)")
        self.k = k
        self.generator = generator
        self.negatives: Tensor | None = None  # the last negative samples, for inspection

    def loss(self, model: RBM, v_data: Tensor) -> Tensor:
        data_input = model.hidden_input(v_data)  # kept in the graph and reused below
        with torch.no_grad():
            h = model.hidden.sample(data_input.detach(), self.generator)
            h = gibbs_hvh(model, h, self.k - 1, self.generator)
            v_model = model.sample_visible(h, self.generator)
        self.negatives = v_model
        return (
            model.free_energy(v_data, data_input).mean()
            - model.free_energy(v_model).mean()
        )

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class PersistentContrastiveDivergence:
    """PCD-k (Tieleman, 2008): negative samples from persistent chains.

    Args:
        k: Gibbs sweeps per update (``k >= 1``).
        n_chains: number of persistent chains (the usual choice is the batch size).
        generator: random source for the chains.
    """

    def __init__(self, k: int, n_chains: int, generator: torch.Generator):
        if k < 1:
            raise ValueError(f"Invalid number of Gibbs steps k: {k} (expected >= 1)")
        self.k = k
        self.chains = PersistentChains(n_chains, generator)
        self.negatives: Tensor | None = None  # the last negative samples, for inspection

    def loss(self, model: RBM, v_data: Tensor) -> Tensor:
        if self.chains.hidden is None:
            self.chains.start(model, v_data)
        v_model = self.chains.visible_sample(model, self.k)
        self.negatives = v_model
        model_input = model.hidden_input(v_model)
        self.chains.advance(model, model_input)
        return (
            model.free_energy(v_data).mean()
            - model.free_energy(v_model, model_input).mean()
        )

    def state_dict(self) -> dict:
        return self.chains.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.chains.load_state_dict(state)
