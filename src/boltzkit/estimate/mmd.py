"""Sample statistics that need no trained classifier: kernel MMD and mean pairwise distance.

They compare a model's samples with data in the data's own space. Pixel-space distances
are a coarse measure of image quality (a classifier's features, as in FID, see which
digit a sample is), but they are cheap, exact functions of the samples, and they see mode
collapse: a generator that makes one image has no spread and a large MMD.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def median_bandwidth(x: Tensor) -> float:
    """The median heuristic ``sigma^2 = median_{i<j} |x_i - x_j|^2`` (Gretton et al., 2012,
    section 8) of ``x`` ``(N, D)``, ``N >= 2``; 1 where every pair coincides."""
    if len(x) < 2:
        raise ValueError(f"the median heuristic needs at least 2 examples, got {len(x)}")
    squared = torch.cdist(x.double(), x.double()).pow(2)
    pairs = squared[torch.triu_indices(len(x), len(x), 1, device=x.device).unbind()]
    median = float(pairs.median())
    return median if median > 0 else 1.0


def mmd_squared(x: Tensor, y: Tensor, bandwidth: float) -> float:
    """The unbiased estimate of the squared maximum mean discrepancy between the
    distributions of ``x`` ``(M, D)`` and ``y`` ``(N, D)`` (Gretton et al., 2012, eq. 3),
    with the Gaussian kernel ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``, ``sigma^2 =
    bandwidth``:

        MMD_u^2 = sum_{i != j} k(x_i, x_j) / (M (M - 1)) + sum_{i != j} k(y_i, y_j) / (N (N - 1))
                  - 2 sum_{i, j} k(x_i, y_j) / (M N).

    0 in expectation when the distributions are equal (so it can be slightly negative),
    at most 2. Computed in float64; ``M, N >= 2``.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 examples on each side, got {len(x)} and "
                         f"{len(y)}")
    if not 0 < bandwidth < math.inf:
        raise ValueError(f"Invalid kernel bandwidth: {bandwidth} (expected a finite sigma^2 > 0)")
    x, y = x.double(), y.double()

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth))

    def within(a: Tensor) -> Tensor:  # the mean over pairs i != j
        gram = kernel(a, a)
        return (gram.sum() - gram.diagonal().sum()) / (len(a) * (len(a) - 1))

    return float(within(x) + within(y) - 2 * kernel(x, y).mean())


def mean_pairwise_distance(x: Tensor) -> float:
    """``mean_{i != j} |x_i - x_j|`` of ``x`` ``(N, D)``, ``N >= 2``, in float64."""
    if len(x) < 2:
        raise ValueError(f"a pairwise distance needs at least 2 examples, got {len(x)}")
    distances = torch.cdist(x.double(), x.double())
    # cdist's matrix-product path can leave rounding on the diagonal: leave it out exactly
    return float((distances.sum() - distances.diagonal().sum()) / (len(x) * (len(x) - 1)))
