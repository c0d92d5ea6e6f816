"""Map sizes of stride-2 convolution stacks (models/conv.py) against torch's layers."""

import pytest
import torch
from torch import nn

from boltzkit.models.conv import conv_sizes, output_padding


@pytest.mark.parametrize("kernel, padding", [(3, 1), (4, 1), (5, 2)])
@pytest.mark.parametrize("shape", [(28, 28), (8, 8), (7, 9), (5, 6)])
def test_sizes_match_torch_and_the_transposed_convolution_rebuilds_each_input(shape, kernel, padding):
    x = torch.zeros(1, 1, *shape)
    sizes = conv_sizes(shape, 2, kernel, padding)
    targets = [tuple(shape), *sizes[:-1]]
    for size, target in zip(sizes, targets, strict=True):
        x = nn.Conv2d(1, 1, kernel, stride=2, padding=padding)(x)
        assert tuple(x.shape[-2:]) == size
        back = nn.ConvTranspose2d(1, 1, kernel, stride=2, padding=padding,
                                  output_padding=output_padding(target, size, kernel, padding))
        assert tuple(back(x).shape[-2:]) == target


def test_vanishing_maps_and_unreachable_sides_are_refused():
    with pytest.raises(ValueError, match="3 stride-2 convolutions shrink 4x4 images to nothing; use fewer"):
        conv_sizes((4, 4), 3, kernel=4, padding=1)
    with pytest.raises(ValueError, match="a kernel of 3 does not fit 9x9 inputs"):
        output_padding((9, 9), (3, 3), kernel=3, padding=1)
