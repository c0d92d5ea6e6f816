"""Shuffled mini-batches, one permutation per epoch, resumable from the middle of one."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


class EpochBatches:
    """Row indices of the training set in mini-batches of ``batch_size``, drawn epoch by
    epoch as ``randperm(n, generator=generator)``; the last batch of an epoch may be
    smaller. The current permutation and position are the state, so a run saved in the
    middle of an epoch continues with exactly the batches it would have seen.

    Args:
        n: training examples.
        batch_size: rows per batch.
        generator: the shuffling generator (owned by the caller, saved by the caller).
        device: where the permutation lives (the generator's device).
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        if n < 1 or batch_size < 1:
            raise ValueError(f"Invalid batching: {n} examples in batches of {batch_size}")
        self.n, self.batch_size, self.generator, self.device = n, batch_size, generator, device
        self.per_epoch = math.ceil(n / batch_size)
        self.order: Tensor | None = None
        self.position = 0  # batches of the current epoch already used

    def epoch(self) -> Iterator[Tensor]:
        """The rest of the current epoch's batches (a new permutation if none is under way).
        ``position`` counts a batch as used as soon as it is handed out, so state saved while
        the caller works on a batch resumes after it."""
        if self.order is None:
            self.order = torch.randperm(self.n, generator=self.generator, device=self.device)
        while self.position < self.per_epoch:
            start = self.position * self.batch_size
            rows = self.order[start : start + self.batch_size]
            self.position += 1
            yield rows
        self.order, self.position = None, 0

    def endless(self) -> Iterator[Tensor]:
        """Batches epoch after epoch, without end (the learning-rate range test)."""
        while True:
            yield from self.epoch()

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "position": self.position, "n": self.n, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state["n"], state["batch_size"])
        if saved != (self.n, self.batch_size):
            raise ValueError(f"the saved position is in {saved[0]} training examples in batches of "
                             f"{saved[1]}; this run has {self.n} in batches of {self.batch_size} (resume "
                             "with the same data and train.batch_size, or start a new run)")
        order = state["order"]
        self.order = None if order is None else order.to(self.device)
        self.position = int(state["position"])
