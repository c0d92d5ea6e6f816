"""The deterministic networks of a variational autoencoder: fully connected or
convolutional maps from data to the encoder's outputs and from latents to the decoder's.

Every weight is drawn from an explicit ``torch.Generator`` with a variance-preserving
scale ``gain^2 / fan_in`` (He et al., 2015; the activation's gain as in
:func:`boltzkit.models.mlp.init_linear`); biases start at 0. For a transposed
convolution of stride ``s`` each output sees about ``in_channels * kernel^2 / s^2``
inputs, which is the fan-in used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .conv import conv_sizes, output_padding
from .mlp import ACTIVATIONS, init_linear

KERNEL = 3
STRIDE = 2


def _init_conv(layer: nn.Conv2d | nn.ConvTranspose2d, nonlinearity: str,
               generator: torch.Generator | None) -> None:
    """He-style initialisation of a (transposed) convolution; bias = 0."""
    kernel = layer.kernel_size[0] * layer.kernel_size[1]
    if isinstance(layer, nn.ConvTranspose2d):
        fan_in = layer.in_channels * kernel / (layer.stride[0] * layer.stride[1])
    else:
        fan_in = layer.in_channels * kernel
    gain = nn.init.calculate_gain(nonlinearity, 0.01) if nonlinearity == "leaky_relu" else (
        nn.init.calculate_gain(nonlinearity))
    with torch.no_grad():
        layer.weight.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


def _activation(name: str) -> tuple[type[nn.Module], str]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; accepted: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def mlp_net(n_in: int, hidden: Sequence[int], n_out: int, activation: str,
            generator: torch.Generator | None) -> nn.Sequential:
    """``n_in -> hidden[0] -> ... -> n_out``: ``Linear, activation`` blocks and a linear
    output layer (``(..., n_in) -> (..., n_out)``; any leading dimensions)."""
    make_activation, nonlinearity = _activation(activation)
    layers: list[nn.Module] = []
    width = n_in
    for size in hidden:
        linear = nn.Linear(width, size)
        init_linear(linear, "he", nonlinearity, generator)
        layers += [linear, make_activation()]
        width = size
    output = nn.Linear(width, n_out)
    init_linear(output, "glorot", "linear", generator)
    return nn.Sequential(*layers, output)


class ConvEncoder(nn.Module):
    """``(..., H*W) -> (..., n_out)``: images through stride-2 convolutions with
    ``channels[i]`` feature maps each (size halved per layer), flattened, then a linear
    layer."""

    def __init__(self, image_shape: tuple[int, int], channels: Sequence[int], n_out: int,
                 activation: str, generator: torch.Generator | None):
        super().__init__()
        make_activation, nonlinearity = _activation(activation)
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        previous = 1
        for size in channels:
            conv = nn.Conv2d(previous, size, KERNEL, stride=STRIDE, padding=1)
            _init_conv(conv, nonlinearity, generator)
            layers += [conv, make_activation()]
            previous = size
        self.convs = nn.Sequential(*layers)
        height, width = conv_sizes(image_shape, len(channels), KERNEL, padding=1)[-1]
        self.output = nn.Linear(previous * height * width, n_out)
        init_linear(self.output, "glorot", "linear", generator)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        maps = self.convs(x.reshape(-1, 1, *self.image_shape))
        return self.output(maps.flatten(1)).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """``(..., L) -> (..., H*W)``: a linear layer to the smallest feature maps, then
    stride-2 transposed convolutions back up through ``channels`` in reverse order to one
    map of the image's size (``output_padding`` picks the exact size, odd or even); the
    last layer is linear (logits or means) and, instead of one bias for the whole map,
    adds a bias per pixel (``pixel_bias``, ``(H*W,)``), which can start at the data's
    base rates."""

    def __init__(self, n_latent: int, channels: Sequence[int], image_shape: tuple[int, int],
                 activation: str, generator: torch.Generator | None):
        super().__init__()
        make_activation, nonlinearity = _activation(activation)
        sizes = [tuple(image_shape), *conv_sizes(image_shape, len(channels), KERNEL, padding=1)]
        self.first_shape = (channels[-1], *sizes[-1])
        self.input = nn.Linear(n_latent, math.prod(self.first_shape))
        init_linear(self.input, "he", nonlinearity, generator)
        self.input_activation = make_activation()
        layers: list[nn.Module] = []
        widths = [*channels[::-1], 1]
        for index, (previous, size) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            padding = output_padding(sizes[-2 - index], sizes[-1 - index], KERNEL, padding=1)
            last = index == len(channels) - 1
            deconv = nn.ConvTranspose2d(previous, size, KERNEL, stride=STRIDE, padding=1,
                                        output_padding=padding, bias=not last)
            _init_conv(deconv, "linear" if last else nonlinearity, generator)
            layers += [deconv] if last else [deconv, make_activation()]
        self.deconvs = nn.Sequential(*layers)
        self.pixel_bias = nn.Parameter(torch.zeros(math.prod(image_shape)))

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        maps = self.input_activation(self.input(z.reshape(-1, z.shape[-1])))
        images = self.deconvs(maps.reshape(-1, *self.first_shape))
        return (images.flatten(1) + self.pixel_bias).reshape(*lead, -1)
