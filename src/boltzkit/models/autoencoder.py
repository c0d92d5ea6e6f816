"""Autoencoders: dense or small convolutional encoders, their decoders, corruption and losses.

A depth-``L`` autoencoder maps an input ``x = h_0`` through encoder layers

    a_l = enc_l(h_{l-1}),   h_l = act(a_l),                    l = 1 .. L

and back through the decoder, each ``dec_l`` the transpose of ``enc_l``:

    g_L = h_L,   g_{l-1} = act(dec_l(g_l))  (l > 1),   r = dec_1(g_1)

``enc_l`` is affine: dense, ``h W_l^T + b_l``, or a stride-2 convolution. With tied
weights ``dec_l`` uses ``W_l`` itself (``g W_l + c_l``, a transposed convolution with the
same kernel); untied, it has its own weight ``V_l``. The output pre-activation ``r`` gives
the reconstruction ``x_hat = sigmoid(r)`` for Bernoulli units (the loss is the
cross-entropy of ``x`` under ``x_hat``) or ``x_hat = r`` for Gaussian units (half the
squared error: the negative log-likelihood of a unit-variance Gaussian, up to a
constant).

A denoising autoencoder (Vincent et al., "Stacked denoising autoencoders", JMLR 2010)
encodes a corrupted ``x~`` and is scored on reconstructing the clean ``x``; a sparse one
adds ``beta sum_j KL(rho || rho_hat_j)`` on the mean activations of its hidden units
(Ng, "Sparse autoencoder", CS294A lecture notes, 2011). Layer ``l`` alone, fed the codes
``h_{l-1}`` of the layers below, is the one-hidden-layer autoencoder that greedy stacked
pretraining fits (:meth:`Autoencoder.layer_forward`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv import conv_sizes, output_padding
from .mlp import ACTIVATIONS, init_linear

ARCHITECTURES = ("mlp", "conv")
RECONSTRUCTIONS = ("bernoulli", "gaussian")
CORRUPTIONS = ("none", "masking", "gaussian")


# ---------------------------------------------------------------- corruption and losses


def check_corruption(kind: str, level: float) -> None:
    """``ValueError`` unless ``kind`` is known and ``level`` suits it (masking: a
    probability below 1; Gaussian: a standard deviation >= 0)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; accepted: {', '.join(CORRUPTIONS)}")
    if not math.isfinite(level) or level < 0 or (kind == "masking" and level >= 1):
        accepted = "0 <= level < 1" if kind == "masking" else "0 <= level (a standard deviation)"
        raise ValueError(f"Invalid {kind} corruption level: {level} (expected {accepted})")


def corrupt(x: Tensor, kind: str, level: float, generator: torch.Generator | None) -> Tensor:
    """The corrupted input ``x~``, same shape as ``x``.

    - ``masking``: each element is set to 0 independently with probability ``level``
      (Vincent et al. 2010 zero a fixed fraction per example; the two agree in
      expectation), ``x~ = x * m`` with ``m_i ~ Bernoulli(1 - level)``;
    - ``gaussian``: ``x~ = x + level * eps`` with ``eps ~ N(0, I)``;
    - ``none`` (or level 0): ``x`` itself, and nothing is drawn.

    ``generator`` lives on ``x``'s device; it is the only source of randomness.
    """
    check_corruption(kind, level)
    if kind == "none" or level == 0:
        return x
    if kind == "masking":
        keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= level
        return x * keep
    return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def bernoulli_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_i [x_i log sigmoid(r_i) + (1 - x_i) log(1 - sigmoid(r_i))]
    = sum_i softplus(r_i) - x_i r_i`` per example, computed from the logits ``r`` (no
    ``log`` of a rounded probability). ``(B, ...) , (B, ...) -> (B,)``; ``x`` in [0, 1]."""
    return (F.softplus(logits) - target * logits).flatten(1).sum(1)


def squared_error(mean: Tensor, target: Tensor) -> Tensor:
    """``1/2 sum_i (x_i - mean_i)^2`` per example, ``(B, ...) , (B, ...) -> (B,)``."""
    return 0.5 * (target - mean).flatten(1).pow(2).sum(1)


def kl_sparsity(pre_activation: Tensor, target: float) -> Tensor:
    """``sum_j KL(rho || rho_hat_j)`` over the hidden units of a batch of sigmoid units.

    ``rho_hat_j = mean_b sigmoid(a_bj)`` is unit ``j``'s mean activation over the batch
    and ``KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q))`` (Ng's
    sparse autoencoder notes). ``log rho_hat_j`` and ``log(1 - rho_hat_j)`` are taken as
    ``logsumexp_b logsigmoid(+-a_bj) - log B``, so a unit that is always off or on gives a
    large finite penalty, not ``inf``. ``pre_activation``: ``(B, ...)`` (every non-batch
    position is a unit); returns a scalar.
    """
    if not 0 < target < 1:
        raise ValueError(f"Invalid sparsity target: {target} (expected 0 < target < 1)")
    a = pre_activation.flatten(1)
    log_b = math.log(a.shape[0])
    log_q = torch.logsumexp(F.logsigmoid(a), 0) - log_b
    log_not_q = torch.logsumexp(F.logsigmoid(-a), 0) - log_b
    rho = target
    kl = rho * (math.log(rho) - log_q) + (1 - rho) * (math.log(1 - rho) - log_not_q)
    return kl.sum()


# ---------------------------------------------------------------- layers


def _glorot_(weight: Tensor, generator: torch.Generator | None) -> None:
    """``W ~ N(0, 2 / (fan_in + fan_out))`` for a dense or convolution kernel."""
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    fan_out, fan_in = weight.shape[0] * receptive, weight.shape[1] * receptive
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


class DenseLayer(nn.Module):
    """``enc(h) = h W^T + b`` with ``W`` ``(H_out, H_in)``; ``dec(g) = g V^T + c`` with
    ``V = W^T`` (tied) or its own ``(H_in, H_out)`` weight."""

    def __init__(self, n_in: int, n_out: int, tied: bool, generator: torch.Generator | None):
        super().__init__()
        self.encoder = nn.Linear(n_in, n_out)
        init_linear(self.encoder, "glorot", "linear", generator)
        self.decoder_weight = None if tied else nn.Parameter(torch.empty(n_in, n_out))
        if self.decoder_weight is not None:
            _glorot_(self.decoder_weight, generator)
        self.decoder_bias = nn.Parameter(torch.zeros(n_in))
        self.in_shape, self.out_shape = (n_in,), (n_out,)

    def encode(self, h: Tensor) -> Tensor:
        """``(B, H_in) -> (B, H_out)`` pre-activations."""
        return self.encoder(h)

    def decode(self, g: Tensor) -> Tensor:
        """``(B, H_out) -> (B, H_in)`` pre-activations."""
        weight = self.encoder.weight.T if self.decoder_weight is None else self.decoder_weight
        return F.linear(g, weight, self.decoder_bias)


class ConvLayer(nn.Module):
    """``enc``: a ``kernel x kernel`` convolution of stride 2 (padding ``kernel // 2``),
    ``(B, C_in, H, W) -> (B, C_out, ceil(H / 2), ceil(W / 2))``; ``dec``: the transposed
    convolution back to ``(B, C_in, H, W)``, with the same kernel (tied) or its own."""

    def __init__(self, in_shape: Sequence[int], n_out: int, kernel: int, tied: bool,
                 generator: torch.Generator | None):
        super().__init__()
        channels, height, width = in_shape
        self.encoder = nn.Conv2d(channels, n_out, kernel, stride=2, padding=kernel // 2)
        _glorot_(self.encoder.weight, generator)
        with torch.no_grad():
            self.encoder.bias.zero_()
        (out_hw,) = conv_sizes((height, width), 1, kernel, kernel // 2)
        # the transposed convolution's size is ambiguous by one; this picks the input's
        self.output_padding = output_padding((height, width), out_hw, kernel, kernel // 2)
        self.decoder_weight = None if tied else nn.Parameter(torch.empty_like(self.encoder.weight))
        if self.decoder_weight is not None:
            _glorot_(self.decoder_weight, generator)
        self.decoder_bias = nn.Parameter(torch.zeros(channels))
        self.in_shape, self.out_shape = tuple(in_shape), (n_out, *out_hw)

    def encode(self, h: Tensor) -> Tensor:
        return self.encoder(h)

    def decode(self, g: Tensor) -> Tensor:
        weight = self.encoder.weight if self.decoder_weight is None else self.decoder_weight
        return F.conv_transpose2d(g, weight, self.decoder_bias, stride=2, padding=self.encoder.padding,
                                  output_padding=self.output_padding)


# ---------------------------------------------------------------- the autoencoder


class Autoencoder(nn.Module):
    """A dense or convolutional autoencoder on flat inputs ``(B, D)``.

    Args:
        n_features: input features ``D``.
        hidden: widths of the encoder's layers (``mlp``) or their channels (``conv``).
        architecture: ``mlp`` or ``conv`` (needs ``image_shape``; one input channel).
        activation: the hidden units' activation, one of the MLP's
            (:data:`~boltzkit.models.mlp.ACTIVATIONS`), so that an MLP seeded from the
            encoder computes the same codes.
        reconstruction: ``bernoulli`` (cross-entropy, inputs in [0, 1]) or ``gaussian``
            (squared error).
        tied: decoders use the encoder's weights.
        image_shape: ``(height, width)`` of the inputs (``conv`` only).
        kernel_size: odd convolution kernel size (``conv`` only).
        generator: draws the initial weights (``W ~ N(0, 2 / (fan_in + fan_out))``,
            biases 0); ``None`` uses PyTorch's global generator.
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        architecture: str = "mlp",
        activation: str = "sigmoid",
        reconstruction: str = "bernoulli",
        tied: bool = True,
        image_shape: Sequence[int] | None = None,
        kernel_size: int = 3,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; accepted: {', '.join(ARCHITECTURES)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(ACTIVATIONS)}")
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction {reconstruction!r}; accepted: "
                             f"{', '.join(RECONSTRUCTIONS)}")
        if n_features < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"Invalid sizes: {n_features} features, hidden layers {list(hidden)} "
                             "(expected >= 1 feature and at least one layer, each >= 1)")
        self.architecture, self.activation, self.reconstruction = architecture, activation, reconstruction
        self.act = ACTIVATIONS[activation][0]()
        layers: list[nn.Module] = []
        if architecture == "mlp":
            self.input_shape: tuple[int, ...] = (n_features,)
            for n_in, n_out in zip([n_features, *hidden], hidden, strict=False):
                layers.append(DenseLayer(n_in, n_out, tied, generator))
        else:
            if image_shape is None or len(image_shape) != 2 or math.prod(image_shape) != n_features:
                raise ValueError(f"a convolutional autoencoder needs image_shape [height, width] with "
                                 f"height * width = {n_features} features, got {image_shape}")
            if kernel_size < 1 or kernel_size % 2 == 0:
                raise ValueError(f"Invalid kernel_size: {kernel_size} (expected an odd number >= 1)")
            self.input_shape = (1, *image_shape)
            shape: Sequence[int] = self.input_shape
            for channels in hidden:
                layers.append(ConvLayer(shape, channels, kernel_size, tied, generator))
                shape = layers[-1].out_shape
        self.layers = nn.ModuleList(layers)

    @property
    def depth(self) -> int:
        return len(self.layers)

    def _check_depth(self, depth: int) -> None:
        if not 1 <= depth <= self.depth:
            raise ValueError(f"Invalid depth: {depth} (the autoencoder has layers 1 to {self.depth})")

    def inputs(self, x: Tensor) -> Tensor:
        """``(B, D)`` -> the first layer's input shape ``(B, *input_shape)``."""
        return x.reshape(len(x), *self.input_shape)

    def encode(self, x: Tensor, depth: int | None = None) -> Tensor:
        """The codes ``h_depth`` (default: the last layer's) of inputs ``x`` ``(B, D)``, in
        the layer's shape (dense ``(B, H)``; conv ``(B, C, h, w)``); depth 0 gives ``x``
        in the first layer's input shape."""
        h = self.inputs(x)
        for layer in self.layers[: self.depth if depth is None else depth]:
            h = self.act(layer.encode(h))
        return h

    def decode(self, code: Tensor, depth: int | None = None) -> Tensor:
        """The output pre-activation ``r`` ``(B, D)`` (logits for Bernoulli units) from the
        codes ``h_depth`` of layer ``depth`` (default: the last)."""
        depth = self.depth if depth is None else depth
        self._check_depth(depth)
        g = code
        for index in range(depth - 1, 0, -1):
            g = self.act(self.layers[index].decode(g))
        return self.layers[0].decode(g).flatten(1)

    def forward_pre(self, x: Tensor, depth: int | None = None) -> tuple[list[Tensor], Tensor]:
        """``([a_1, ..., a_depth], r)``: every encoder pre-activation and the output
        pre-activation ``(B, D)`` of the autoencoder cut at ``depth`` (default: all layers)."""
        depth = self.depth if depth is None else depth
        self._check_depth(depth)
        h, pre = self.inputs(x), []
        for layer in self.layers[:depth]:
            pre.append(layer.encode(h))
            h = self.act(pre[-1])
        return pre, self.decode(h, depth)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction ``x_hat`` ``(B, D)``: ``sigmoid(r)`` (Bernoulli) or ``r``."""
        return self.output_mean(self.forward_pre(x)[1])

    def output_mean(self, r: Tensor) -> Tensor:
        return torch.sigmoid(r) if self.reconstruction == "bernoulli" else r

    def layer_forward(self, depth: int, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Layer ``depth`` as a one-hidden-layer autoencoder of its inputs ``h_{depth-1}``:
        ``(a, dec(act(a)))`` with ``a = enc(h_{depth-1})``. Inputs of layer 1 may be flat."""
        self._check_depth(depth)
        layer = self.layers[depth - 1]
        if depth == 1:
            inputs = self.inputs(inputs.flatten(1))
        pre = layer.encode(inputs)
        return pre, layer.decode(self.act(pre))

    def level_loss(self, depth: int, r: Tensor, target: Tensor) -> Tensor:
        """The reconstruction loss per example ``(B,)`` of the inputs of layer ``depth``
        from the pre-activation ``r`` of its decoder. Level 1 uses the model's
        ``reconstruction``; above it the targets are codes ``act(a)``, reconstructed as
        ``act(r)``: cross-entropy for sigmoid units (whose codes lie in (0, 1)), else
        half the squared error."""
        if depth == 1:
            target = target.flatten(1)
            r = r.flatten(1)
            if self.reconstruction == "bernoulli":
                return bernoulli_cross_entropy(r, target)
            return squared_error(r, target)
        if self.activation == "sigmoid":
            return bernoulli_cross_entropy(r, target)
        return squared_error(self.act(r), target)

    def reconstruction_loss(self, x: Tensor, depth: int | None = None) -> Tensor:
        """Per-example loss ``(B,)`` of reconstructing clean inputs ``x`` ``(B, D)``
        through layers ``1 .. depth`` and back (no corruption)."""
        return self.level_loss(1, self.forward_pre(x, depth)[1], x)

    def sparsity_penalty(self, pre_activations: Sequence[Tensor], target: float) -> Tensor:
        """``sum over the given layers of sum_j KL(rho || rho_hat_j)``
        (:func:`kl_sparsity`); defined for sigmoid units only, whose mean activation is
        a probability."""
        if self.activation != "sigmoid":
            raise ValueError(f"the KL sparsity penalty needs sigmoid hidden units (a mean activation "
                             f"in (0, 1)); this autoencoder's activation is {self.activation!r}")
        return torch.stack([kl_sparsity(a, target) for a in pre_activations]).sum()

    def hidden_affines(self) -> list[tuple[Tensor, Tensor]]:
        """``[(A_l, c_l)]``, ``A_l = W_l^T`` ``(H_{l-1}, H_l)`` and ``c_l = b_l``: an MLP whose
        layer ``l`` computes ``act(x A_l + c_l)`` with this model's activation reproduces
        the encoder's codes. Dense encoders only."""
        if self.architecture != "mlp":
            raise ValueError("a convolutional encoder cannot seed an MLP's dense layers; "
                             "train the autoencoder with model.architecture: mlp")
        return [(layer.encoder.weight.detach().T, layer.encoder.bias.detach()) for layer in self.layers]

    def first_filters(self) -> Tensor:
        """The first layer's incoming weights, one row per unit or channel:
        ``(H_1, D)`` dense, ``(C_1, k * k)`` conv."""
        return self.layers[0].encoder.weight.detach().flatten(1)
