"""Parallel tempering for RBMs (Swendsen & Wang, 1986; for RBM training Desjardins et al.,
2010, and Cho, Raiko & Ilin, 2010).

``M`` replicas of ``N`` chains run at inverse temperatures ``1 = beta_0 > ... > beta_{M-1}``,
each a block Gibbs sampler of ``p_beta(v, h) ~ exp(-beta E(v, h))``. Hot replicas move
freely; after every sweep, neighbouring replicas propose to exchange their states, with
the Metropolis acceptance ``min(1, exp((beta_m - beta_{m+1}) (E(x_m) - E(x_{m+1}))))``,
so well-mixed states travel down to ``beta = 1``. Even and odd neighbour pairs alternate.
The chains at ``beta = 1`` are samples of the model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.rbm import RBM
from .negative import NegativeSampler


def temperature_ladder(count: int, min_beta: float, kind: str = "geometric") -> Tensor:
    """``count`` inverse temperatures from 1 down to ``min_beta`` (float64).

    ``geometric`` spaces them evenly in ``log beta`` (equal ratios), the usual choice since
    the swap rate depends on ``beta_m / beta_{m+1}``; ``linear`` spaces them evenly.
    """
    if count < 2:
        raise ValueError(f"Invalid number of temperatures: {count} (expected >= 2)")
    if not 0 < min_beta < 1:
        raise ValueError(f"Invalid min_beta: {min_beta} (expected 0 < min_beta < 1)")
    steps = torch.arange(count, dtype=torch.float64) / (count - 1)
    if kind == "geometric":
        return min_beta**steps
    if kind == "linear":
        return 1 - (1 - min_beta) * steps
    raise ValueError(f"unknown ladder {kind!r}; accepted: geometric, linear")


class ParallelTempering(NegativeSampler):
    """Persistent replicas at several temperatures, with neighbour swaps.

    Args:
        betas: inverse temperatures, decreasing from 1 (``(M,)``).
        n_chains: chains per temperature.
        generator: random source, owned by this object and saved in its state.
        rounds: sweep-and-swap rounds per update when used as a negative phase (PT-k).
    """

    def __init__(self, betas: Tensor, n_chains: int, generator: torch.Generator, rounds: int = 1):
        if rounds < 1:
            raise ValueError(f"Invalid number of Gibbs steps k: {rounds} (expected >= 1)")
        self.rounds = rounds
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas[0] != 1 or not bool((betas[1:] < betas[:-1]).all()) or betas[-1] <= 0:
            raise ValueError("inverse temperatures must decrease strictly from 1 and stay > 0")
        if n_chains < 1:
            raise ValueError(f"Invalid number of chains: {n_chains} (expected >= 1)")
        self.betas = betas
        self.n_chains = n_chains
        self.generator = generator
        self.visible: Tensor | None = None  # (M, N, D)
        self.hidden: Tensor | None = None  # (M, N, H)
        self.parity = 0
        self.attempts = torch.zeros(len(betas) - 1, dtype=torch.float64)
        self.accepts = torch.zeros(len(betas) - 1, dtype=torch.float64)

    def _beta(self, like: Tensor) -> Tensor:
        return self.betas.to(device=like.device, dtype=like.dtype)[:, None, None]

    @torch.no_grad()
    def start(self, model: RBM, data: Tensor) -> None:
        """Every replica starts at training vectors drawn with replacement."""
        rows = torch.randint(len(data), (self.n_chains,), generator=self.generator,
                             device=self.generator.device).to(data.device)
        v = data[rows].to(model.weight.dtype).expand(len(self.betas), -1, -1).contiguous()
        self.visible = v
        self.hidden = model.hidden.sample(model.hidden_input(v), self.generator, self._beta(v))

    @torch.no_grad()
    def sweep(self, model: RBM) -> None:
        """One tempered Gibbs sweep ``h -> v -> h`` in every replica."""
        beta = self._beta(self.visible)
        self.visible = model.visible.sample(model.visible_input(self.hidden), self.generator, beta)
        self.hidden = model.hidden.sample(model.hidden_input(self.visible), self.generator, beta)

    @torch.no_grad()
    def swap(self, model: RBM) -> None:
        """Propose exchanges between replica pairs ``(m, m+1)`` of the current parity."""
        m = torch.arange(self.parity, len(self.betas) - 1, 2)
        self.parity = 1 - self.parity
        if len(m) == 0:
            return
        energy = model.energy(self.visible, self.hidden).to(torch.float64)  # (M, N)
        betas = self.betas.to(energy.device)
        log_ratio = (betas[m] - betas[m + 1])[:, None] * (energy[m] - energy[m + 1])
        u = torch.rand(log_ratio.shape, generator=self.generator, device=self.generator.device,
                       dtype=torch.float64).to(energy.device)
        accept = torch.log(u) < log_ratio  # (pairs, N)
        for state in (self.visible, self.hidden):
            low, high = state[m].clone(), state[m + 1].clone()
            keep = accept[:, :, None]
            state[m] = torch.where(keep, high, low)
            state[m + 1] = torch.where(keep, low, high)
        self.attempts[m] += accept.shape[1]
        self.accepts[m] += accept.sum(dim=1).to(torch.float64).cpu()

    def step(self, model: RBM, sweeps: int = 1) -> Tensor:
        """``sweeps`` rounds of sweep + swap; returns the ``beta = 1`` visible chains."""
        for _ in range(sweeps):
            self.sweep(model)
            self.swap(model)
        return self.visible[0]

    def negatives(self, model: RBM, v_data: Tensor, data_input: Tensor | None) -> Tensor:
        """PT-k: the ``beta = 1`` replicas after ``rounds`` rounds (started at the first batch)."""
        if self.visible is None:
            self.start(model, v_data)
        return self.step(model, self.rounds)

    def epoch_metrics(self) -> dict[str, float]:
        """Swap acceptance over the epoch: mean and lowest over neighbour pairs."""
        rates = self.acceptance_rates(reset=True)
        return {"pt_swap_rate_mean": rates.mean().item(), "pt_swap_rate_min": rates.min().item()}

    def acceptance_rates(self, reset: bool = False) -> Tensor:
        """Fraction of accepted swaps per neighbour pair since the last reset (``(M-1,)``)."""
        rates = self.accepts / self.attempts.clamp_min(1)
        if reset:
            self.attempts.zero_()
            self.accepts.zero_()
        return rates

    def state_dict(self) -> dict:
        return {"visible": self.visible, "hidden": self.hidden, "parity": self.parity,
                "attempts": self.attempts, "accepts": self.accepts, "betas": self.betas,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if not torch.equal(state["betas"].cpu().to(torch.float64), self.betas):
            raise ValueError("saved tempering ladder differs from the configured one")
        device = self.generator.device
        self.visible = None if state["visible"] is None else state["visible"].to(device)
        self.hidden = None if state["hidden"] is None else state["hidden"].to(device)
        self.parity = int(state["parity"])
        self.attempts = state["attempts"].detach().cpu().clone()  # counters live on the CPU
        self.accepts = state["accepts"].detach().cpu().clone()
        self.generator.set_state(state["generator"])
