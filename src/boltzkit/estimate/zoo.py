"""Enumerable RBMs for checking likelihood estimators against exact values.

A mix of what trips estimators up: random weights of growing scale (from near-uniform
to sharply multimodal), models with a few strong "prototype" hidden units (isolated
modes far from the data's base rate), and models trained briefly by CD-1 on synthetic
prototype data. Every model has at most ``max_hidden`` hidden units, so
:func:`~boltzkit.estimate.exact.exact_log_partition` enumerates it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..models.rbm import RBM
from ..objectives.free_energy_gap import FreeEnergyGap
from ..sampling.gibbs import ContrastiveChains
from ..seeding import make_generator


def prototype_data(n_visible: int, n: int, prototypes: int, flip: float, seed: int) -> Tensor:
    """``n`` binary vectors: random prototypes with a fraction ``flip`` of bits flipped."""
    g = make_generator(seed, "zoo.data")
    centres = (torch.rand(prototypes, n_visible, generator=g) < 0.3).float()
    rows = centres[torch.randint(prototypes, (n,), generator=g)]
    noise = (torch.rand(n, n_visible, generator=g) < flip).float()
    return (rows + noise) % 2


def _random(n_visible: int, n_hidden: int, scale: float, seed: int) -> RBM:
    g = make_generator(seed, "zoo.random")
    model = RBM(n_visible, n_hidden)
    with torch.no_grad():
        model.weight.copy_(torch.randn(n_visible, n_hidden, generator=g) * scale / n_visible**0.5)
        model.visible.bias.copy_(torch.randn(n_visible, generator=g) * 0.5 - 1.0)
        model.hidden.bias.copy_(torch.randn(n_hidden, generator=g) * 0.5)
    return model


def _prototypes(n_visible: int, n_hidden: int, strength: float, seed: int) -> tuple[RBM, Tensor]:
    """Each hidden unit strongly tied to a random prototype: sharp, isolated modes; the
    data lie at the modes (as a trained model's data do), with 5 % of the bits flipped."""
    g = make_generator(seed, "zoo.prototypes")
    model = RBM(n_visible, n_hidden)
    signs = torch.where(torch.rand(n_visible, n_hidden, generator=g) < 0.3, 1.0, -1.0)
    with torch.no_grad():
        model.weight.copy_(signs * strength)
        model.visible.bias.fill_(-0.5 * strength)
        model.hidden.bias.copy_(-(signs.clamp_min(0).sum(0)) * strength * 0.5)
    patterns = (signs.T > 0).float()  # (H, D): the visible pattern each hidden unit favours
    rows = patterns[torch.randint(n_hidden, (1000,), generator=g)]
    data = (rows + (torch.rand(rows.shape, generator=g) < 0.05).float()) % 2
    return model, data


def _trained(n_visible: int, n_hidden: int, steps: int, lr: float, seed: int) -> tuple[RBM, Tensor]:
    data = prototype_data(n_visible, 2000, prototypes=8, flip=0.05, seed=seed)
    model = RBM(n_visible, n_hidden, generator=make_generator(seed, "zoo.init"))
    model.init_from_data(data.mean(0))
    objective = FreeEnergyGap(ContrastiveChains(1, make_generator(seed, "zoo.cd")))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = make_generator(seed, "zoo.order")
    for _ in range(steps):
        batch = data[torch.randint(len(data), (50,), generator=order)]
        optimizer.zero_grad()
        objective.loss(model, batch).backward()
        optimizer.step()
    return model, data


def estimator_zoo(n_visible: int = 100, max_hidden: int = 14,
                  seed: int = 0) -> Iterator[tuple[str, RBM, Tensor]]:
    """``(name, model, training data)`` for 21 enumerable RBMs (``n_visible`` visible units)."""
    h = max_hidden
    for i, scale in enumerate((0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0)):
        model = _random(n_visible, h - i % 3, scale, seed + i)
        yield f"random, scale {scale:g}", model, prototype_data(n_visible, 1000, 4, 0.1, seed + i)
    for i, strength in enumerate((1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0)):
        model, data = _prototypes(n_visible, h - i % 4, strength, seed + 10 + i)
        yield f"prototypes, strength {strength:g}", model, data
    for i, (steps, lr) in enumerate(((100, 0.05), (300, 0.05), (1000, 0.05), (300, 0.2), (1000, 0.2),
                                     (2000, 0.1), (3000, 0.3))):
        model, data = _trained(n_visible, h - i % 3, steps, lr, seed + 20 + i)
        yield f"CD-1, {steps} steps at lr {lr:g}", model, data
