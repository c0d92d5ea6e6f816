"""Fixed monitoring subsets: the examples a family's per-epoch metrics are computed on."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import Dataset
from ..estimate.evaluate import binary_view
from ..seeding import make_generator


def monitor_sets(
    data: Dataset, n: int, seed: int, device: torch.device, binarize: bool = True
) -> tuple[Tensor, Tensor]:
    """Fixed subsets of train and validation data for the per-epoch metrics; for Bernoulli
    visible units binarized once (seeded) where they are not binary: likelihoods are
    defined on binary vectors."""
    generator = make_generator(seed, "metrics.subsets")
    subsets = (data.train[:n], data.validation[:n])
    if binarize:
        subsets = tuple(binary_view(t, generator) for t in subsets)
    return subsets[0].to(device), subsets[1].to(device)
