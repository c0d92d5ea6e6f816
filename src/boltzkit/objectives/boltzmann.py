"""Maximum-likelihood learning of a general Boltzmann machine."""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.bm import BoltzmannMachine
from ..sampling.boltzmann import gibbs_sweeps, mean_field
from ..units import bernoulli
from .base import Objective

POSITIVE_PHASES = ("gibbs", "meanfield")


class BoltzmannMachineLearning(Objective):
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
        if positive not in POSITIVE_PHASES:
            raise ValueError(f"unknown positive phase {positive!r}; accepted: {', '.join(POSITIVE_PHASES)}")
        self.k, self.positive, self.positive_steps = k, positive, positive_steps
        self.n_chains = n_chains
        self.generator = generator
        self.chains: Tensor | None = None
        self.negatives: Tensor | None = None

    def positive_states(self, model: BoltzmannMachine, v: Tensor) -> Tensor:
        """Joint states ``[v, h]`` (``(B, n)``) for the data: hidden means or samples."""
        if self.positive == "meanfield":
            return mean_field(model, v, self.positive_steps)
        hidden = bernoulli(torch.full((len(v), model.n_hidden), 0.5, dtype=v.dtype, device=v.device),
                           self.generator)
        s = torch.cat([v, hidden], dim=1)
        return gibbs_sweeps(model, s, range(model.n_visible, model.n_units), self.positive_steps,
                            self.generator)

    def loss(self, model: BoltzmannMachine, v_data: Tensor) -> Tensor:
        s_data = self.positive_states(model, v_data)
        if self.chains is None:
            rows = torch.randint(len(s_data), (self.n_chains,), generator=self.generator,
                                 device=self.generator.device).to(s_data.device)
            self.chains = s_data[rows].round()
        self.chains = gibbs_sweeps(model, self.chains, range(model.n_units), self.k, self.generator)
        self.negatives = self.chains[:, : model.n_visible]
        return model.energy(s_data).mean() - model.energy(self.chains).mean()

    def state_dict(self) -> dict:
        return {"chains": self.chains, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.chains = None if state["chains"] is None else state["chains"].to(self.generator.device)
        self.generator.set_state(state["generator"])
