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
from ..sampling.tempering import ParallelTempering


class ContrastiveDivergence:
    """CD-k (Hinton, 2002): negative samples from ``k`` Gibbs sweeps started at the batch.

    Args:
        k: Gibbs sweeps per update (``k >= 1``).
        generator: random source for the chains.
    """

    def __init__(self, k: int, generator: torch.Generator, offset_rate: float = 0.01):
        if k < 1:
            raise ValueError(f"Invalid number of Gibbs steps k: {k} (expected >= 1)")
        self.k = k
        self.generator = generator
        self.offset_rate = offset_rate
        self.negatives: Tensor | None = None  # the last negative samples, for inspection

    def loss(self, model: RBM, v_data: Tensor) -> Tensor:
        model.update_offsets(v_data, self.offset_rate)  # centered models only
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

    def __init__(self, k: int, n_chains: int, generator: torch.Generator, offset_rate: float = 0.01):
        if k < 1:
            raise ValueError(f"Invalid number of Gibbs steps k: {k} (expected >= 1)")
        self.k = k
        self.chains = PersistentChains(n_chains, generator)
        self.offset_rate = offset_rate
        self.negatives: Tensor | None = None  # the last negative samples, for inspection

    def loss(self, model: RBM, v_data: Tensor) -> Tensor:
        model.update_offsets(v_data, self.offset_rate)  # centered models only
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


class ParallelTemperingObjective:
    """PT-k: negative samples from the ``beta = 1`` replica of a parallel-tempering sampler
    after ``k`` rounds of sweeps and swaps (Desjardins et al., 2010).

    Args:
        k: sweep-and-swap rounds per update.
        betas: the inverse-temperature ladder, decreasing from 1.
        n_chains: chains per temperature.
        generator: random source for the replicas.
    """

    def __init__(self, k: int, betas: Tensor, n_chains: int, generator: torch.Generator,
                 offset_rate: float = 0.01):
        if k < 1:
            raise ValueError(f"Invalid number of Gibbs steps k: {k} (expected >= 1)")
        self.k = k
        self.sampler = ParallelTempering(betas, n_chains, generator)
        self.offset_rate = offset_rate
        self.negatives: Tensor | None = None

    def loss(self, model: RBM, v_data: Tensor) -> Tensor:
        model.update_offsets(v_data, self.offset_rate)
        if self.sampler.visible is None:
            self.sampler.start(model, v_data)
        v_model = self.sampler.step(model, self.k)
        self.negatives = v_model
        return model.free_energy(v_data).mean() - model.free_energy(v_model).mean()

    def epoch_metrics(self) -> dict[str, float]:
        """Swap acceptance over the epoch: mean and lowest over neighbour pairs."""
        rates = self.sampler.acceptance_rates(reset=True)
        return {"pt_swap_rate_mean": rates.mean().item(), "pt_swap_rate_min": rates.min().item()}

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


class BoltzmannMachineLearning:
    """Maximum-likelihood learning of a general Boltzmann machine (Ackley, Hinton &
    Sejnowski, 1985; with persistent chains, Tieleman 2008; mean-field positive phase,
    Salakhutdinov & Hinton 2009).

    Positive phase: the hidden units given the data, by ``positive_steps`` clamped Gibbs
    sweeps or mean-field updates. Negative phase: persistent free-running chains advanced
    ``k`` sweeps per update. The surrogate ``mean E(data) - mean E(chains)`` has gradient
    ``-(<s_i s_j>_data - <s_i s_j>_model)`` on every coupling.
    """

    def __init__(self, k: int, n_chains: int, positive: str, positive_steps: int,
                 generator: torch.Generator):
        if positive not in ("gibbs", "meanfield"):
            raise ValueError(f"unknown positive phase {positive!r}; accepted: gibbs, meanfield")
        self.k, self.positive, self.positive_steps = k, positive, positive_steps
        self.n_chains = n_chains
        self.generator = generator
        self.chains: Tensor | None = None
        self.negatives: Tensor | None = None

    def positive_states(self, model, v: Tensor) -> Tensor:
        if self.positive == "meanfield":
            return model.mean_field(v, self.positive_steps)
        from ..units import bernoulli

        hidden = bernoulli(torch.full((len(v), model.n_hidden), 0.5, dtype=v.dtype, device=v.device),
                           self.generator)
        s = torch.cat([v, hidden], dim=1)
        return model.gibbs(s, range(model.n_visible, model.n_units), self.positive_steps, self.generator)

    def loss(self, model, v_data: Tensor) -> Tensor:
        s_data = self.positive_states(model, v_data)
        if self.chains is None:
            rows = torch.randint(len(s_data), (self.n_chains,), generator=self.generator,
                                 device=self.generator.device).to(s_data.device)
            self.chains = s_data[rows].round()
        self.chains = model.gibbs(self.chains, range(model.n_units), self.k, self.generator)
        self.negatives = self.chains[:, : model.n_visible]
        return model.energy(s_data).mean() - model.energy(self.chains).mean()

    def state_dict(self) -> dict:
        return {"chains": self.chains, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.chains = None if state["chains"] is None else state["chains"].to(self.generator.device)
        self.generator.set_state(state["generator"])
