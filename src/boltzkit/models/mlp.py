"""A multilayer perceptron classifier with the classic fast-training knobs.

Each hidden block is ``Linear -> [BatchNorm] -> activation -> [Dropout]``; the output
layer gives logits. ``input_dropout`` drops input features before the first block
(Srivastava et al., 2014, used 20 % on MNIST's pixels). Initialisations (biases start at 0):

- ``he`` (He et al., 2015): ``W ~ N(0, gain^2 / fan_in)`` with the activation's gain
  (``2`` for ReLU, so ``Var W = 2 / fan_in``);
- ``glorot`` (Glorot & Bengio, 2010): ``W ~ N(0, 2 / (fan_in + fan_out))``;
- ``lecun`` (LeCun et al., 1998): ``W ~ N(0, 1 / fan_in)``, the one SELU needs;
- ``normal`` and ``small``: the naive choices the others replaced, kept to show why
  (``benchmarks/speedups.py``): ``W ~ N(0, 1)`` and ``W ~ U(-0.05, 0.05)``, whatever the
  layer's size.

SELU blocks use alpha-dropout so that dropout keeps the self-normalising property.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {
    "relu": (nn.ReLU, "relu"),
    "leaky_relu": (lambda: nn.LeakyReLU(0.01), "leaky_relu"),
    "elu": (nn.ELU, "relu"),  # ELU has no gain of its own in torch; ReLU's is the usual choice
    "selu": (nn.SELU, "linear"),
    "gelu": (nn.GELU, "relu"),
    "tanh": (nn.Tanh, "tanh"),
    "sigmoid": (nn.Sigmoid, "sigmoid"),  # what an RBM's hidden units compute: use it with pretrained layers
}
INITS = ("he", "glorot", "lecun", "normal", "small")


def init_linear(layer: nn.Linear, scheme: str, nonlinearity: str,
                generator: torch.Generator | None) -> None:
    """Initialise ``layer.weight`` by ``scheme`` (``he``, ``glorot``, ``lecun``); bias = 0
    (where the layer has one).

    ``generator`` draws the weights; ``None`` draws them from PyTorch's global generator.
    """
    fan_out, fan_in = layer.weight.shape
    gain = nn.init.calculate_gain(nonlinearity, 0.01) if nonlinearity == "leaky_relu" else (
        nn.init.calculate_gain(nonlinearity))
    if scheme == "he":
        std = gain / math.sqrt(fan_in)
    elif scheme == "glorot":  # the original, without an activation gain
        std = math.sqrt(2.0 / (fan_in + fan_out))
    elif scheme == "lecun":
        std = 1.0 / math.sqrt(fan_in)
    elif scheme == "normal":
        std = 1.0
    elif scheme == "small":
        with torch.no_grad():
            layer.weight.uniform_(-0.05, 0.05, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
        return
    else:
        raise ValueError(f"unknown initialisation {scheme!r}; accepted: {', '.join(INITS)}")
    with torch.no_grad():
        layer.weight.normal_(0.0, std, generator=generator)
        if layer.bias is not None:
            layer.bias.zero_()


class MLP(nn.Module):
    """``n_inputs -> hidden[0] -> ... -> n_classes`` logits.

    Args:
        n_inputs: input features ``D``.
        hidden: widths of the hidden layers.
        n_classes: number of classes (output logits).
        activation: one of :data:`ACTIVATIONS`.
        init: ``he``, ``glorot``, ``lecun``, or the naive ``normal`` / ``small``.
        batch_norm: add ``BatchNorm1d`` after each hidden linear layer.
        dropout: dropout probability after each hidden activation.
        input_dropout: dropout probability on the inputs, before the first layer.
        generator: random source for the initial weights. ``None`` draws them from
            PyTorch's global generator, as ``nn.Linear`` does: reproducible only under
            ``torch.manual_seed``. The library always passes one (from the run's seed).
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int],
        n_classes: int,
        activation: str = "relu",
        init: str = "he",
        batch_norm: bool = False,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(ACTIVATIONS)}")
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"Invalid {name}: {p} (expected 0 <= {name} < 1)")
        make_activation, nonlinearity = ACTIVATIONS[activation]
        dropout_layer = nn.AlphaDropout if activation == "selu" else nn.Dropout
        # Identity when off: no module draws random numbers, so runs without it are unchanged
        self.input_dropout = dropout_layer(input_dropout) if input_dropout > 0 else nn.Identity()
        blocks: list[nn.Module] = []
        width = n_inputs
        for size in hidden:
            linear = nn.Linear(width, size)
            init_linear(linear, init, nonlinearity, generator)
            block = [linear]
            if batch_norm:
                block.append(nn.BatchNorm1d(size))
            block.append(make_activation())
            if dropout > 0:
                block.append(dropout_layer(dropout))
            blocks.append(nn.Sequential(*block))
            width = size
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Linear(width, n_classes)
        init_linear(self.output, "glorot", "linear", generator)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, ``(B, D) -> (B, n_classes)``."""
        x = self.input_dropout(x)
        for block in self.hidden:
            x = block(x)
        return self.output(x)

    def first_linear(self) -> nn.Linear:
        return self.hidden[0][0] if len(self.hidden) else self.output

    def load_pretrained_layers(self, layers: Sequence[tuple[Tensor, Tensor]], freeze: bool = False) -> None:
        """Set the first ``len(layers)`` hidden layers from pretrained ``(weight, bias)`` pairs,
        ``weight`` ``(H_l, H_{l-1})`` and ``bias`` ``(H_l,)`` (an RBM's ``W^T`` and hidden
        biases, or each layer of a stack); ``freeze`` stops their training."""
        if len(layers) > max(len(self.hidden), 1):
            raise ValueError(f"{len(layers)} pretrained layers but the MLP has {len(self.hidden)} "
                             "hidden layers (model.hidden_layers needs at least as many)")
        linears = [block[0] for block in self.hidden] or [self.output]
        for depth, ((weight, bias), layer) in enumerate(zip(layers, linears, strict=False), 1):
            if tuple(weight.shape) != tuple(layer.weight.shape):
                raise ValueError(
                    f"pretrained layer {depth} has weights of shape {tuple(weight.shape)} but hidden "
                    f"layer {depth} needs {tuple(layer.weight.shape)} (width x inputs)"
                )
            with torch.no_grad():
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)
            layer.weight.requires_grad_(not freeze)
            layer.bias.requires_grad_(not freeze)
