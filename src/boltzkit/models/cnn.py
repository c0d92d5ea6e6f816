"""A small convolutional classifier for one-channel images (MNIST's 28x28, the 8x8 digits).

It is the judge of sample quality (:mod:`boltzkit.estimate.sample_quality`): its hidden
dense layer gives the features of a Frechet distance and its class probabilities the
coverage and Inception-style score, the role Inception v3 plays for natural images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SmallCNN(nn.Module):
    """``(B, H*W)`` images in [0, 1] -> ``(B, n_classes)`` logits.

    Layers: ``x -> reshape (B, 1, H, W) -> [conv 3x3 (c1), ReLU, max-pool 2]
    -> [conv 3x3 (c2), ReLU, max-pool 2] -> flatten (B, c2 * floor(H/4) * floor(W/4))
    -> phi = ReLU(Linear -> n_features) -> logits = Linear(phi)``. ``phi`` is
    :meth:`features`, the penultimate activations.

    Args:
        image_shape: ``(H, W)``, each at least 4 (two 2x2 poolings).
        n_classes: number of classes ``K``.
        channels: ``(c1, c2)``, the channels of the two convolutions.
        n_features: width of the feature layer ``phi``.
        generator: random source of the initial weights (He-uniform, biases 0).
    """

    def __init__(self, image_shape: Sequence[int], n_classes: int = 10,
                 channels: Sequence[int] = (16, 32), n_features: int = 128,
                 generator: torch.Generator | None = None):
        super().__init__()
        height, width = (int(s) for s in image_shape)
        if min(height, width) < 4:
            raise ValueError(f"SmallCNN needs images of at least 4x4 pixels, got {height}x{width}")
        if n_classes < 2 or n_features < 1 or len(channels) != 2 or min(channels) < 1:
            raise ValueError(f"Invalid SmallCNN sizes: n_classes={n_classes} (>= 2), channels="
                             f"{tuple(channels)} (two, >= 1), n_features={n_features} (>= 1)")
        self.image_shape = (height, width)
        c1, c2 = (int(c) for c in channels)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.hidden = nn.Linear(c2 * (height // 4) * (width // 4), n_features)
        self.output = nn.Linear(n_features, n_classes)
        for layer in (self.conv1, self.conv2, self.hidden, self.output):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)  # torch's default
            nn.init.zeros_(layer.bias)

    @property
    def num_features(self) -> int:
        """Width of :meth:`features` (the name torchmetrics' FID reads from its extractor)."""
        return self.hidden.out_features

    @property
    def n_classes(self) -> int:
        return self.output.out_features

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``phi(x)``, ``(B, H*W) -> (B, n_features)``."""
        h = x.reshape(len(x), 1, *self.image_shape)
        h = nn.functional.max_pool2d(torch.relu(self.conv1(h)), 2)
        h = nn.functional.max_pool2d(torch.relu(self.conv2(h)), 2)
        return torch.relu(self.hidden(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, H*W) -> (B, n_classes)``; ``softmax`` of them is ``p(y | x)``."""
        return self.output(self.features(x))
