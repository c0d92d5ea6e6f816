"""Persistent chains over all layers of a deep Boltzmann machine, optionally tempered.

Each update advances the chains by ``k`` alternating sweeps (odd layers given even, then
even given odd: :meth:`DBM.gibbs`). With a ladder of inverse temperatures ``beta_1 = 1 >
beta_2 > ... > beta_R`` the chains form parallel tempering (Desjardins et al. 2010 for
RBMs; Salakhutdinov 2010 used tempered transitions for DBMs): replica ``r`` samples
``p_r(x) ~ exp(-beta_r E(x))``, and after each round neighbouring replicas ``r, r + 1``
(even pairs, then odd pairs, alternately) swap states with probability
``min(1, exp((beta_r - beta_{r+1}) (E(x_r) - E(x_{r+1}))))``. The ``beta = 1`` replica is the
negative phase.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.dbm import DBM, States
from .tempering import temperature_ladder


class DBMChains:
    """``n_chains`` persistent chains (per temperature), ``k`` sweeps per update.

    Args:
        n_chains: chains at ``beta = 1`` (and as many per other temperature).
        k: sweeps (rounds, with tempering) per update.
        generator: random source for every draw (its state is saved with the chains).
        betas: the tempering ladder (float64, starting at 1, decreasing), or None.
    """

    def __init__(self, n_chains: int, k: int, generator: torch.Generator, betas: Tensor | None = None):
        if n_chains < 1 or k < 1:
            raise ValueError(f"Invalid DBM chains: n_chains={n_chains}, k={k} (expected >= 1 each)")
        if betas is not None and (float(betas[0]) != 1.0 or bool((betas[1:] >= betas[:-1]).any())):
            raise ValueError("the tempering ladder must start at beta = 1 and decrease")
        self.n_chains, self.k, self.generator = n_chains, k, generator
        self.betas = betas
        self.states: States | None = None  # (R * n, n_l) per layer, replica-major
        self.rounds = 0
        self.accepted = self.proposed = None

    @property
    def replicas(self) -> int:
        return 1 if self.betas is None else len(self.betas)

    def _start(self, model: DBM, positive: States) -> None:
        """Chains start at rows of the first batch's data and mean-field posterior, rounded."""
        rows = torch.randint(len(positive[0]), (self.n_chains * self.replicas,), generator=self.generator,
                             device=self.generator.device).to(positive[0].device)
        self.start([x[rows].detach().round() for x in positive])

    def start(self, states: States) -> None:
        """Start the chains at ``states`` (``(replicas * n_chains, n_l)`` per layer, replica-major)."""
        if len(states[0]) != self.n_chains * self.replicas:
            raise ValueError(f"{len(states[0])} start states for {self.n_chains} chains x {self.replicas} "
                             "temperatures")
        self.states = list(states)
        if self.betas is not None:
            self.accepted = torch.zeros(self.replicas - 1, dtype=torch.float64)
            self.proposed = torch.zeros(self.replicas - 1, dtype=torch.float64)

    def _row_betas(self, like: Tensor) -> Tensor:
        return self.betas.to(like).repeat_interleave(self.n_chains)[:, None]

    @torch.no_grad()
    def step(self, model: DBM, positive: States) -> States:
        """Advance the chains; returns the ``beta = 1`` states ``(n_chains, n_l)`` per layer."""
        if self.states is None:
            self._start(model, positive)
        if self.betas is None:
            self.states = model.gibbs(self.states, self.k, self.generator)
        else:
            beta = self._row_betas(self.states[0])
            for _ in range(self.k):
                self.states = model.gibbs(self.states, 1, self.generator, beta)
                self._swap(model)
        return [x[: self.n_chains] for x in self.states]

    def _swap(self, model: DBM) -> None:
        r, n = self.replicas, self.n_chains
        energy = model.energy(self.states).view(r, n).double()
        betas = self.betas.to(energy)
        first = self.rounds % 2
        self.rounds += 1
        order = torch.arange(r * n, device=energy.device).view(r, n)
        for i in range(first, r - 1, 2):
            log_ratio = (betas[i] - betas[i + 1]) * (energy[i] - energy[i + 1])
            u = torch.rand(n, generator=self.generator, device=self.generator.device,
                           dtype=torch.float64).to(energy.device)
            swap = u < torch.exp(log_ratio.clamp(max=0))
            a, b = order[i].clone(), order[i + 1].clone()
            order[i] = torch.where(swap, b, a)
            order[i + 1] = torch.where(swap, a, b)
            self.accepted[i] += swap.double().mean().item()
            self.proposed[i] += 1
        index = order.view(-1)
        self.states = [x[index] for x in self.states]

    def epoch_metrics(self) -> dict[str, float]:
        """Mean and lowest swap rate between neighbouring temperatures since the last call."""
        if self.betas is None or self.proposed is None or not bool((self.proposed > 0).all()):
            return {}
        rates = self.accepted / self.proposed
        self.accepted.zero_()
        self.proposed.zero_()
        return {"pt_swap_rate_mean": rates.mean().item(), "pt_swap_rate_min": rates.min().item()}

    def state_dict(self) -> dict:
        return {"states": self.states, "generator": self.generator.get_state(), "rounds": self.rounds,
                "accepted": self.accepted, "proposed": self.proposed, "betas": self.betas}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("betas")
        if (saved is None) != (self.betas is None) or (
                saved is not None and not torch.equal(saved.to(self.betas), self.betas)):
            raise ValueError(f"the saved chains ran at inverse temperatures {_ladder(saved)}, this run "
                             f"asks for {_ladder(self.betas)}: train.method and train.pt must match the "
                             "checkpoint's")
        device = self.generator.device
        self.states = None if state["states"] is None else [x.to(device) for x in state["states"]]
        self.generator.set_state(state["generator"])
        self.rounds = state["rounds"]
        self.accepted, self.proposed = state["accepted"], state["proposed"]


def _ladder(betas: Tensor | None) -> str:
    if betas is None:
        return "[1] (no tempering)"
    return "[" + ", ".join(f"{b:.3g}" for b in betas.tolist()) + "]"


@torch.no_grad()
def draw_dbm_samples(model: DBM, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
                     min_beta: float = 0.5) -> tuple[Tensor, Tensor]:
    """``n`` chains of ``steps`` sweeps from the biases' base rates (tempered with
    ``temperatures >= 2`` replicas down to ``min_beta``). Returns the visible states and
    ``p(v | h_1)`` at the last state, each ``(n, n_0)``."""
    if steps < 1:
        raise ValueError(f"Invalid number of Gibbs sweeps: {steps} (expected >= 1)")
    betas = temperature_ladder(temperatures, min_beta) if temperatures >= 2 else None
    chains = DBMChains(n, steps, generator, betas)
    start = model.base_states(n * chains.replicas, generator)
    chains.start(start)
    states = chains.step(model, start)
    return states[0], model.visible_mean(states)
