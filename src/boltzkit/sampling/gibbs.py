"""Block Gibbs sampling for RBMs: free-running chains, chains restarted at the data (CD)
and persistent chains (PCD)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.rbm import RBM
from .negative import NegativeSampler


@torch.no_grad()
def gibbs_hvh(model: RBM, h: Tensor, steps: int, generator: torch.Generator | None) -> Tensor:
    """Run ``steps`` transitions ``h -> v -> h`` and return the last hidden sample."""
    for _ in range(steps):
        h = model.sample_hidden(model.sample_visible(h, generator), generator)
    return h


@torch.no_grad()
def sample_chains(
    model: RBM, v0: Tensor, steps: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Run Gibbs chains from visible states ``v0`` (``(N, D)``) for ``steps`` sweeps.

    Returns ``(v, v_mean)``: the last visible sample and ``E[v | h]`` for the last hidden
    sample (the usual, less noisy picture of a chain's state).
    """
    if steps < 1:
        raise ValueError(f"Invalid number of Gibbs steps: {steps} (expected >= 1)")
    h = model.sample_hidden(v0, generator)
    h = gibbs_hvh(model, h, steps - 1, generator)
    v_mean = model.visible_mean(h)
    v = model.visible.sample(model.visible_input(h), generator)
    return v, v_mean


class ContrastiveChains(NegativeSampler):
    """CD-k's negative phase (Hinton, 2002): ``k`` Gibbs sweeps started at the data batch.

    Args:
        steps: Gibbs sweeps per update (``k >= 1``).
        generator: random source, owned by this object and saved in its state.
    """

    uses_data_input = True

    def __init__(self, steps: int, generator: torch.Generator):
        self.steps = _check_steps(steps)
        self.generator = generator

    @torch.no_grad()
    def negatives(self, model: RBM, v_data: Tensor, data_input: Tensor | None) -> Tensor:
        h = model.hidden.sample(data_input, self.generator)
        h = gibbs_hvh(model, h, self.steps - 1, self.generator)
        return model.sample_visible(h, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class PersistentChains(NegativeSampler):
    """Persistent Gibbs chains (Tieleman, 2008) that live across parameter updates.

    The state is the hidden sample of each chain, ``(n_chains, H)``: a step draws
    ``v ~ p(v | h)`` and the caller, who needs ``v W`` for the free energy anyway,
    hands it back through :meth:`advance` to draw the next ``h``. That saves one
    matrix product per update compared with keeping visible states.

    Args:
        n_chains: number of chains.
        generator: random source, owned by this object and saved in its state.
        steps: Gibbs sweeps per update when used as a negative phase (PCD-k).
    """

    uses_model_input = True

    def __init__(self, n_chains: int, generator: torch.Generator, steps: int = 1):
        if n_chains < 1:
            raise ValueError(f"Invalid number of chains: {n_chains} (expected >= 1)")
        self.n_chains = n_chains
        self.generator = generator
        self.steps = _check_steps(steps)
        self.hidden: Tensor | None = None

    def negatives(self, model: RBM, v_data: Tensor, data_input: Tensor | None) -> Tensor:
        """PCD-k: chains started at the first batch, advanced ``steps`` sweeps per update."""
        if self.hidden is None:
            self.start(model, v_data)
        return self.visible_sample(model, self.steps)

    def observe(self, model: RBM, model_input: Tensor) -> None:
        self.advance(model, model_input)

    def start(self, model: RBM, data: Tensor) -> None:
        """Start the chains at ``h ~ p(h | v)`` for training vectors drawn with replacement."""
        rows = torch.randint(len(data), (self.n_chains,), generator=self.generator,
                             device=self.generator.device)
        self.hidden = model.sample_hidden(data[rows.to(data.device)], self.generator).detach()

    @torch.no_grad()
    def visible_sample(self, model: RBM, steps: int) -> Tensor:
        """Advance ``steps - 1`` full sweeps, then return ``v ~ p(v | h)`` (``(n_chains, D)``)."""
        assert self.hidden is not None, "call start() first"
        h = gibbs_hvh(model, self.hidden, steps - 1, self.generator)
        return model.sample_visible(h, self.generator)

    @torch.no_grad()
    def advance(self, model: RBM, hidden_input: Tensor) -> None:
        """Finish the sweep: ``h ~ p(h | v)`` from ``hidden_input = v W`` of the last sample."""
        self.hidden = model.hidden.sample(hidden_input.detach(), self.generator)

    def state_dict(self) -> dict:
        return {"hidden": self.hidden, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        hidden = state["hidden"]
        if hidden is not None and hidden.shape[0] != self.n_chains:
            raise ValueError(
                f"Saved chains have {hidden.shape[0]} rows, expected n_chains={self.n_chains}"
            )
        self.hidden = None if hidden is None else hidden.to(self.generator.device)
        self.generator.set_state(state["generator"])


def _check_steps(steps: int) -> int:
    if steps < 1:
        raise ValueError(f"Invalid number of Gibbs steps k: {steps} (expected >= 1)")
    return steps
