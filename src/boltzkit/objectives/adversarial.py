"""The two sides of a GAN's game as objectives over the whole :class:`~boltzkit.models.gan.GAN`.

Each draws its own noise from its own generator (saved with its state, so a resumed run
draws the same noise) and records what it saw during the epoch: the discriminator's
loss and how often it told real from generated examples, the generator's loss. The
train step gives each objective an optimizer over its own network only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ..models.gan import GAN, LOSSES, decision_threshold, discriminator_loss, generator_loss, gradient_penalty
from .base import Objective


def check_kind(kind: str) -> None:
    """A ValueError at construction, not at the first batch, for a loss that is not one of
    :data:`~boltzkit.models.gan.LOSSES`."""
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; accepted: {', '.join(LOSSES)}")


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """``module``'s parameters take no gradient inside the block (the generator's update
    needs the gradient through the discriminator, not of its weights)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class _EpochMeans:
    """Per-batch values summed over an epoch, kept as a tensor (no device sync per batch)."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.sums: Tensor | None = None
        self.batches = 0

    def add(self, *values: Tensor) -> None:
        row = torch.stack([v.detach().double() for v in values])
        self.sums = row if self.sums is None else self.sums + row
        self.batches += 1

    def take(self) -> dict[str, float]:
        if self.sums is None:
            return {}
        means = (self.sums / self.batches).tolist()
        self.sums, self.batches = None, 0
        return dict(zip(self.names, means, strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums, "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.batches = state["sums"], int(state["batches"])


class _PlayerLoss(Objective):
    """What both players' losses share: a noise generator and epoch means, both saved."""

    generator: torch.Generator
    means: _EpochMeans

    def epoch_metrics(self) -> dict[str, float]:
        return self.means.take()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "means": self.means.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.means.load_state_dict(state["means"])


class DiscriminatorLoss(_PlayerLoss):
    """``loss(gan, real)``: the discriminator's loss ``kind`` on the batch ``real`` ``(B, D)``
    (a class-conditional GAN's: ``[x, onehot(y)]``, ``(B, D + C)``) against ``B`` examples of
    the generator, each of the same class as its real row (drawn without a graph: this
    update moves the discriminator only), plus ``gp_weight`` times WGAN-GP's gradient penalty with
    ``kind == "wgan_gp"``. Real and generated examples go through the discriminator as one
    batch. ``fakes`` holds the last generated batch.

    Logs ``d_loss``, ``d_real_accuracy`` and ``d_fake_accuracy`` (the share of real and of
    generated examples on the right side of :func:`~boltzkit.models.gan.decision_threshold`),
    epoch means of the training batches.
    """

    def __init__(self, kind: str, gp_weight: float, generator: torch.Generator):
        check_kind(kind)
        if not 0.0 <= gp_weight < math.inf:
            raise ValueError(f"Invalid gradient penalty weight: gp_weight={gp_weight} (expected a finite "
                             "value >= 0)")
        self.kind, self.gp_weight, self.generator = kind, gp_weight, generator
        self.fakes: Tensor | None = None
        self.means = _EpochMeans(("d_loss", "d_real_accuracy", "d_fake_accuracy"))

    def loss(self, model: GAN, batch: Tensor) -> Tensor:
        n = len(batch)
        classes = model.conditions(batch)
        with torch.no_grad():
            self.fakes = model.fake_rows(model.noise(n, self.generator, classes))
        logits = model.discriminator(torch.cat([batch, self.fakes]))
        real, fake = logits[:n], logits[n:]
        loss = discriminator_loss(self.kind, real, fake)
        if self.kind == "wgan_gp" and self.gp_weight > 0:
            d = model.n_features
            penalty = gradient_penalty(model.discriminator, batch[:, :d], self.fakes[:, :d], self.generator,
                                       classes if model.classes else None)
            loss = loss + self.gp_weight * penalty
        threshold = decision_threshold(self.kind, real.detach(), fake.detach())
        self.means.add(loss, (real > threshold).double().mean(), (fake <= threshold).double().mean())
        return loss


class GeneratorLoss(_PlayerLoss):
    """``loss(gan, batch)``: the generator's loss ``kind`` on ``len(batch)`` of its examples
    (the batch gives only the count, and a class-conditional GAN's also the classes, so
    they follow the data's frequencies), through a discriminator whose weights take no
    gradient. Logs ``g_loss``, the epoch mean."""

    def __init__(self, kind: str, generator: torch.Generator):
        check_kind(kind)
        self.kind, self.generator = kind, generator
        self.means = _EpochMeans(("g_loss",))

    def loss(self, model: GAN, batch: Tensor) -> Tensor:
        fakes = model.fake_rows(model.noise(len(batch), self.generator, model.conditions(batch)))
        with frozen(model.discriminator):
            loss = generator_loss(self.kind, model.discriminator(fakes))
        self.means.add(loss)
        return loss
