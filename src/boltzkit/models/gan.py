"""Generative adversarial networks (Goodfellow et al., 2014): networks and losses.

A generator ``G`` maps noise ``z ~ N(0, I_L)`` (``L = latent``) to an example
``x = G(z)`` in ``[0, 1]^D`` (a sigmoid output, the range of the data); a discriminator
(or critic) ``D`` maps an example to one real number, a logit. Both come in two shapes:

- ``mlp``: fully connected blocks, ``Linear -> [BatchNorm] -> ReLU`` in the generator and
  ``Linear -> LeakyReLU(0.2)`` in the discriminator;
- ``dcgan`` (Radford, Metz & Chintala, 2016) for ``H x W`` grey images: the generator
  projects ``z`` to ``C_0`` maps of ``H/2^K x W/2^K`` and doubles the size ``K`` times with
  4x4 transposed convolutions of stride 2 (``K = len(channels)``, so ``H`` and ``W`` must
  be multiples of ``2^K``: 28 -> 7 and 8 -> 2 with two layers); the discriminator halves it
  with 4x4 convolutions of stride 2 and ends in a linear logit. Weights start from
  ``N(0, 0.02)`` as in that paper.

The discriminator has no batch normalisation (a WGAN-GP critic must not: the penalty is
per example), so a real and a fake batch go through it together. Its optional
minibatch-standard-deviation feature (Karras et al., 2018, section 3) is computed over
groups of ``G`` consecutive examples, so a group holds only real or only generated ones
when each half of the batch is a multiple of ``G``. Spectral normalisation
(Miyato et al., 2018) divides each discriminator weight by its largest singular value,
estimated by one power iteration per training forward pass.

A class-conditional GAN (``classes = C > 0``) generates from ``(z, y)``: the generator's
input is ``[z, onehot(y)]`` (Mirza & Osindero, 2014), and the discriminator reads rows
``[x, onehot(y)]`` ``(B, D + C)`` and adds a projection of the class onto its last features,
``D(x, y) = w^T phi(x) + b + e_y^T phi(x)`` (Miyato & Koyama, 2018). Unconditional samples
draw ``y`` from the class prior (the training set's class frequencies), so they follow
``p(x) = sum_y p(y) p(x | y)``.

The losses take logits ``d_r = D(x)`` of real examples ``(B,)`` and ``d_f = D(G(z))`` of
generated ones ``(B',)`` and average over the batch:

============== ============================================= ===========================
loss           discriminator                                 generator
============== ============================================= ===========================
non_saturating ``softplus(-d_r) + softplus(d_f)``            ``softplus(-d_f)``
               ``= -log sigma(d_r) - log(1 - sigma(d_f))``   ``= -log sigma(d_f)``
hinge          ``relu(1 - d_r) + relu(1 + d_f)``             ``-d_f``
wgan_gp        ``d_f - d_r + lambda (|grad D(x_hat)| - 1)^2`` ``-d_f``
============== ============================================= ===========================

(non-saturating: Goodfellow et al., 2014, section 3; hinge: Lim & Ye, 2017, and Miyato et
al., 2018; WGAN-GP: Gulrajani et al., 2017, algorithm 1, with ``x_hat`` on the segment
between a real and a generated example.)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from .conv import conv_sizes
from .mlp import init_linear

ARCHITECTURES = ("mlp", "dcgan")
LOSSES = ("non_saturating", "hinge", "wgan_gp")
DCGAN_STD = 0.02
"""Standard deviation of the initial weights of DCGAN layers (Radford et al., 2016)."""
POWER_ITERATIONS_AT_START = 15
"""Power iterations that set spectral normalisation's first singular-vector estimates."""
EMA_BN_BATCHES, EMA_BN_BATCH_SIZE = 4, 256
"""Noise batches that re-estimate the moving average's batch-norm statistics: 1,024
activations per unit put the estimated means within a few hundredths of a unit's spread."""


# ---------------------------------------------------------------------------- sizes


def dcgan_start(image_shape: Sequence[int], upsamplings: int) -> tuple[int, int]:
    """The ``(h, w)`` a DCGAN generator starts from: ``(H / 2^K, W / 2^K)``.

    Raises ValueError when ``H`` or ``W`` is not a multiple of ``2^K``.
    """
    height, width = image_shape
    factor = 2**upsamplings
    if upsamplings < 1 or height % factor or width % factor:
        raise ValueError(f"{upsamplings} upsampling layers need image sides that are multiples of "
                         f"{factor}; the images are {height}x{width}")
    return height // factor, width // factor


def discriminator_sizes(image_shape: Sequence[int], downsamplings: int) -> list[tuple[int, int]]:
    """The map sizes after each of the discriminator's 4x4, stride-2, padding-1
    convolutions: ``s -> floor((s + 2 - 4) / 2) + 1`` (28 -> 14 -> 7, 8 -> 4 -> 2).

    Raises ValueError when a map would vanish.
    """
    return conv_sizes(image_shape, downsamplings, kernel=4, padding=1)


# ---------------------------------------------------------------------------- networks


def _init_dcgan(layer: nn.Module, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        layer.weight.normal_(0.0, DCGAN_STD, generator=generator)
        layer.bias.zero_()


def _dense_blocks(width: int, widths: Sequence[int], activation, nonlinearity: str, batch_norm: bool,
                  generator: torch.Generator | None) -> tuple[nn.Sequential, int]:
    """``Linear -> [BatchNorm] -> activation`` per entry of ``widths`` from ``width`` inputs,
    He-initialised for ``nonlinearity``; returns the blocks and the last width."""
    blocks: list[nn.Module] = []
    for size in widths:
        linear = nn.Linear(width, size)
        init_linear(linear, "he", nonlinearity, generator)
        blocks += [linear, *([nn.BatchNorm1d(size)] if batch_norm else []), activation()]
        width = size
    return nn.Sequential(*blocks), width


class MLPGenerator(nn.Module):
    """``z (B, L) -> x (B, D)``: hidden blocks ``Linear -> [BatchNorm] -> ReLU``, then
    ``sigmoid(Linear)``."""

    def __init__(self, latent: int, widths: Sequence[int], n_features: int, batch_norm: bool,
                 generator: torch.Generator | None):
        super().__init__()
        self.hidden, width = _dense_blocks(latent, widths, nn.ReLU, "relu", batch_norm, generator)
        self.output = nn.Linear(width, n_features)
        init_linear(self.output, "glorot", "linear", generator)

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.output(self.hidden(z)))


class MinibatchStd(nn.Module):
    """Appends the minibatch standard deviation (Karras et al., 2018, section 3) as one
    more feature: ``(B, C, ...) -> (B, C + 1, ...)``.

    The examples are split into groups of ``G`` consecutive rows (a last, shorter group
    takes the rest); for group ``g`` the statistic is
    ``s_g = mean_f sqrt(var_{b in g}(x_{b,f}) + 1e-8)``, the population variance over the
    group's examples averaged over every feature ``f`` (channels and positions), and each
    example of the group gets ``s_g`` as its extra channel (constant over positions). A
    discriminator that sees it can tell a batch of near-identical samples from real data,
    so a generator that drops modes is penalised (the point: wider class coverage).
    """

    def __init__(self, group: int):
        super().__init__()
        if group < 2:
            raise ValueError(f"Invalid minibatch-std group size: {group} (expected >= 2)")
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        n, full = len(x), len(x) // self.group * self.group
        stats = []
        for rows, size in ((x[:full], self.group), (x[full:], n - full)):
            if size:
                grouped = rows.reshape(len(rows) // size, size, -1)
                # written out: torch's var over a short middle dimension is ~30x slower on CPU
                centred = grouped - grouped.mean(dim=1, keepdim=True)
                spread = (centred.square().mean(dim=1) + 1e-8).sqrt().mean(dim=1)
                stats.append(spread.repeat_interleave(size))
        extra = torch.cat(stats).view(n, 1, *([1] * (x.dim() - 2))).expand(n, 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)

    def extra_repr(self) -> str:
        return f"group={self.group}"


class MLPDiscriminator(nn.Module):
    """``x (B, D) -> logit (B,)``: hidden blocks ``Linear -> LeakyReLU(0.2)``, then a
    linear logit ``features(x) @ w + b``. With ``minibatch_std = G > 0`` a
    :class:`MinibatchStd` feature enters the last hidden block (or the logit, with no
    hidden blocks)."""

    def __init__(self, n_features: int, widths: Sequence[int], generator: torch.Generator | None,
                 minibatch_std: int = 0):
        super().__init__()
        def blocks(width: int, sizes: Sequence[int]) -> tuple[nn.Sequential, int]:
            return _dense_blocks(width, sizes, lambda: nn.LeakyReLU(0.2), "leaky_relu", False, generator)

        self.hidden, width = blocks(n_features, widths[:-1] if minibatch_std else widths)
        if minibatch_std:
            tail, width = blocks(width + 1, widths[-1:])
            self.hidden = nn.Sequential(*self.hidden, MinibatchStd(minibatch_std), *tail)
        self.output = nn.Linear(width, 1)
        init_linear(self.output, "glorot", "linear", generator)

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activities ``(B, H)`` (the logit is linear in them)."""
        return self.hidden(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.features(x)).squeeze(1)


class ConvGenerator(nn.Module):
    """DCGAN generator, ``z (B, L) -> x (B, H*W)``: ``Linear`` to ``(C_0, H/2^K, W/2^K)``,
    ``[BatchNorm] -> ReLU``, then ``ConvTranspose(4, stride 2) -> [BatchNorm] -> ReLU`` to
    each next channel count, and a last ``ConvTranspose`` to one channel and a sigmoid."""

    def __init__(self, latent: int, channels: Sequence[int], image_shape: Sequence[int], batch_norm: bool,
                 generator: torch.Generator | None):
        super().__init__()
        self.start = (channels[0], *dcgan_start(image_shape, len(channels)))
        self.project = nn.Linear(latent, math.prod(self.start))
        _init_dcgan(self.project, generator)

        def norm(c: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(c)] if batch_norm else []

        blocks: list[nn.Module] = [*norm(channels[0]), nn.ReLU()]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            up = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
            _init_dcgan(up, generator)
            blocks += [up, *norm(c_out), nn.ReLU()]
        last = nn.ConvTranspose2d(channels[-1], 1, 4, stride=2, padding=1)
        _init_dcgan(last, generator)
        self.blocks = nn.Sequential(*blocks, last)

    def forward(self, z: Tensor) -> Tensor:
        maps = self.project(z).view(len(z), *self.start)
        return torch.sigmoid(self.blocks(maps)).flatten(1)


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator, ``x (B, H*W) -> logit (B,)``: ``Conv(4, stride 2) ->
    LeakyReLU(0.2)`` per channel count, then a linear logit. With ``minibatch_std = G > 0``
    a :class:`MinibatchStd` channel enters the last convolution."""

    def __init__(self, channels: Sequence[int], image_shape: Sequence[int],
                 generator: torch.Generator | None, minibatch_std: int = 0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        blocks: list[nn.Module] = []
        inputs = [1, *channels[:-1]]
        for i, (c_in, c_out) in enumerate(zip(inputs, channels, strict=True)):
            last = i == len(channels) - 1
            if last and minibatch_std:
                blocks.append(MinibatchStd(minibatch_std))
            conv = nn.Conv2d(c_in + int(last and minibatch_std > 0), c_out, 4, stride=2, padding=1)
            _init_dcgan(conv, generator)
            blocks += [conv, nn.LeakyReLU(0.2)]
        self.hidden = nn.Sequential(*blocks)
        height, width = discriminator_sizes(image_shape, len(channels))[-1]
        self.output = nn.Linear(channels[-1] * height * width, 1)
        _init_dcgan(self.output, generator)

    def features(self, x: Tensor) -> Tensor:
        return self.hidden(x.view(len(x), 1, *self.image_shape)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.features(x)).squeeze(1)


class ProjectionDiscriminator(nn.Module):
    """A class-conditional discriminator, ``[x, onehot(y)] (B, D + C) -> logit (B,)``:
    ``base(x) + e_y^T phi(x)`` with ``phi = base.features`` ``(B, F)`` and the class
    embeddings ``e`` the columns of a bias-free ``Linear(C, F)`` (so spectral
    normalisation, which applies to every linear layer, covers them as in Miyato & Koyama,
    2018). Initialised like the base's logit layer: ``N(0, 0.02)`` (dcgan) or Glorot (mlp).
    """

    def __init__(self, base: MLPDiscriminator | ConvDiscriminator, n_features: int, classes: int,
                 generator: torch.Generator | None):
        super().__init__()
        self.base, self.n_features = base, n_features
        self.embed = nn.Linear(classes, base.output.in_features, bias=False)
        if isinstance(base, ConvDiscriminator):
            with torch.no_grad():
                self.embed.weight.normal_(0.0, DCGAN_STD, generator=generator)
        else:
            init_linear(self.embed, "glorot", "linear", generator)

    def features(self, x: Tensor) -> Tensor:
        """``phi(x)`` ``(B, F)`` of images ``x`` ``(B, D)`` (no class)."""
        return self.base.features(x)

    def forward(self, rows: Tensor) -> Tensor:
        x, one_hot = rows[:, : self.n_features], rows[:, self.n_features:]
        features = self.base.features(x)
        return self.base.output(features).squeeze(1) + (self.embed(one_hot) * features).sum(dim=1)


def apply_spectral_norm(module: nn.Module, generator: torch.Generator | None) -> None:
    """Spectrally normalise every linear and convolution weight of ``module``.

    torch draws the power method's starting vectors from the global CPU generator (inside
    a forked RNG state here, so the caller's stream does not move); they are drawn again
    from ``generator`` and refined by :data:`POWER_ITERATIONS_AT_START` iterations, as torch
    does at construction. The weights must be on the CPU (as :class:`GAN` builds them).
    """
    layers = [m for m in module.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    for layer in layers:
        with torch.random.fork_rng(devices=[]):  # torch's own draw must not move the global CPU RNG
            nn.utils.parametrizations.spectral_norm(layer)
        norm = layer.parametrizations.weight[0]
        with torch.no_grad():
            for name in ("_u", "_v"):
                vector = getattr(norm, name)
                vector.copy_(F.normalize(torch.randn(vector.shape, generator=generator, dtype=vector.dtype),
                                         dim=0))
            was_training = norm.training
            norm.train()
            for _ in range(POWER_ITERATIONS_AT_START):  # a training-mode access runs one iteration
                _ = layer.weight
            norm.train(was_training)


# ---------------------------------------------------------------------------- the pair


def ema_decay(decay: float, updates: Tensor) -> Tensor:
    """The moving average's decay after ``updates`` earlier updates,
    ``min(decay, (1 + n) / (10 + n))``: short at first, so that the average is not held
    at the untrained weights for ``1 / (1 - decay)`` updates (the warm-up of TensorFlow's
    ``ExponentialMovingAverage`` with ``num_updates``)."""
    return torch.clamp((1 + updates.double()) / (10 + updates.double()), max=decay)


def ema_update(decay: float):
    """``multi_avg_fn`` of :class:`~torch.optim.swa_utils.AveragedModel`:
    ``theta_ema <- d_n theta_ema + (1 - d_n) theta`` with ``d_n = ema_decay(decay, n)``."""

    @torch.no_grad()
    def update(averages: list[Tensor], currents: list[Tensor], updates: Tensor) -> None:
        weight = 1 - ema_decay(decay, updates)
        for average, current in zip(averages, currents, strict=True):
            average.lerp_(current, weight.to(average.dtype))

    return update



class GAN(nn.Module):
    """A generator, a discriminator and (with ``ema > 0``) an exponential moving average
    of the generator's weights, ``theta_ema <- d_n theta_ema + (1 - d_n) theta`` after the
    generator's ``n``-th update, ``d_n = min(ema, (1 + n) / (10 + n))`` (:func:`ema_decay`;
    ``torch.optim.swa_utils.AveragedModel``, whose first update copies the weights). The
    average's batch-norm running statistics belong to other weights (torch copies the live
    generator's): :meth:`refresh_ema_batch_norm` re-estimates them for the averaged weights,
    and samples in eval mode need it first.

    Args:
        n_features: ``D``, the size of an example.
        latent: ``L``, the size of the noise.
        architecture: ``mlp`` or ``dcgan``.
        generator_layers: hidden widths (``mlp``) or channel counts from the coarsest
            maps to the finest (``dcgan``).
        discriminator_layers: hidden widths (``mlp``) or channel counts from the finest
            maps to the coarsest (``dcgan``).
        image_shape: ``(H, W)`` with ``H * W = D``; required by ``dcgan``.
        batch_norm: batch normalisation in the generator.
        spectral_norm: spectral normalisation of every discriminator weight.
        minibatch_std: the group size ``G`` (>= 2, checked by :class:`MinibatchStd`) of a
            minibatch-std feature in the discriminator (0: none).
        ema: the moving average's decay, in ``[0, 1)`` (0: none).
        generator: random source of the initial weights (``None``: the global one).
        classes: ``C``, the number of classes of a class-conditional GAN (0: unconditional).
            Its ``class_prior`` buffer ``(C,)`` (uniform until :meth:`set_class_prior`)
            is what unconditional samples draw the class from.
    """

    def __init__(self, n_features: int, latent: int = 64, architecture: str = "mlp",
                 generator_layers: Sequence[int] = (256,), discriminator_layers: Sequence[int] = (256,),
                 image_shape: Sequence[int] | None = None, batch_norm: bool = True,
                 spectral_norm: bool = False, ema: float = 0.0, generator: torch.Generator | None = None,
                 minibatch_std: int = 0, classes: int = 0):
        super().__init__()
        if n_features < 1 or latent < 1:
            raise ValueError(f"Invalid number of features: {n_features} or latent size: {latent} (both >= 1)")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; accepted: {', '.join(ARCHITECTURES)}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"Invalid ema decay: {ema} (expected 0 <= ema < 1; 0 turns it off)")
        if classes < 0 or classes == 1:
            raise ValueError(f"Invalid number of classes: {classes} (expected 0, unconditional, or >= 2)")
        if any(w < 1 for w in [*generator_layers, *discriminator_layers]):
            raise ValueError(f"layer sizes must be >= 1, got {list(generator_layers)} and "
                             f"{list(discriminator_layers)}")
        self.latent, self.n_features, self.classes = latent, n_features, classes
        if classes:  # only then: the state of an unconditional GAN stays what it was
            self.register_buffer("class_prior", torch.full((classes,), 1.0 / classes))
        # torch's layer constructors draw a default init from the global CPU generator; with a
        # ``generator`` every weight is drawn again from it, and the caller's stream stays put
        isolated = torch.random.fork_rng(devices=[]) if generator is not None else contextlib.nullcontext()
        with isolated:
            self._build(n_features, latent + classes, architecture, generator_layers, discriminator_layers,
                        image_shape, batch_norm, spectral_norm, generator, minibatch_std)
        self.ema: AveragedModel | None = None
        if ema > 0:
            self.ema = AveragedModel(self.generator, multi_avg_fn=ema_update(ema), use_buffers=False)
            self.ema.requires_grad_(False)  # an average, not a trained parameter

    def _build(self, n_features: int, inputs: int, architecture: str, generator_layers: Sequence[int],
               discriminator_layers: Sequence[int], image_shape: Sequence[int] | None, batch_norm: bool,
               spectral_norm: bool, generator: torch.Generator | None, minibatch_std: int) -> None:
        if architecture == "dcgan":
            if image_shape is None or math.prod(image_shape) != n_features:
                raise ValueError(f"the dcgan architecture needs an image shape (H, W) with H * W = "
                                 f"{n_features} features, got {image_shape}")
            if not generator_layers or not discriminator_layers:
                raise ValueError("the dcgan architecture needs at least one generator and one "
                                 "discriminator layer")
            self.generator = ConvGenerator(inputs, generator_layers, image_shape, batch_norm, generator)
            self.discriminator = ConvDiscriminator(discriminator_layers, image_shape, generator,
                                                   minibatch_std)
        else:
            self.generator = MLPGenerator(inputs, generator_layers, n_features, batch_norm, generator)
            self.discriminator = MLPDiscriminator(n_features, discriminator_layers, generator, minibatch_std)
        if self.classes:
            self.discriminator = ProjectionDiscriminator(self.discriminator, n_features, self.classes,
                                                         generator)
        if spectral_norm:
            apply_spectral_norm(self.discriminator, generator)

    def noise(self, n: int, generator: torch.Generator, one_hot: Tensor | None = None) -> Tensor:
        """The generator's input ``(n, L + C)``: ``z ~ N(0, I_L)``, followed (with classes) by
        the classes ``one_hot`` ``(n, C)``, or where it is ``None`` by classes drawn from
        ``class_prior``; on the model's device and in its dtype."""
        weight = next(self.generator.parameters())
        z = torch.randn(n, self.latent, generator=generator, device=weight.device, dtype=weight.dtype)
        if not self.classes:
            return z
        if one_hot is None:
            labels = torch.multinomial(self.class_prior.to(weight), n, replacement=True, generator=generator)
            one_hot = self.one_hot(labels)
        return torch.cat([z, one_hot.to(z)], dim=1)

    def one_hot(self, labels: Tensor) -> Tensor:
        """``onehot(labels)`` ``(n, C)`` in the model's dtype, for class numbers ``(n,)``."""
        return F.one_hot(labels.long(), self.classes).to(self.class_prior.dtype)

    def set_class_prior(self, frequencies: Tensor) -> None:
        """The class prior ``(C,)``, e.g. the training labels' frequencies (normalised here)."""
        if frequencies.shape != self.class_prior.shape or (frequencies < 0).any() or frequencies.sum() <= 0:
            raise ValueError(f"a class prior needs {self.classes} non-negative weights with a positive sum, "
                             f"got {frequencies.tolist()}")
        self.class_prior.copy_(frequencies / frequencies.sum())

    def conditions(self, rows: Tensor) -> Tensor:
        """The class columns of discriminator rows ``[x, onehot(y)]`` ``(B, C)`` (``(B, 0)``
        without classes)."""
        return rows[:, self.n_features:]

    def fake_rows(self, noise: Tensor) -> Tensor:
        """Discriminator rows of generated examples, ``[G(noise), onehot(y)]`` ``(B, D + C)``,
        with each example's own class (no columns added without classes)."""
        return torch.cat([self.generator(noise), noise[:, self.latent:]], dim=1)

    def sampler(self) -> nn.Module:
        """The network samples come from: the moving average if there is one, else ``G``."""
        return self.ema.module if self.ema is not None else self.generator

    def forward(self, z: Tensor) -> Tensor:
        """``G(z)``, ``(B, L) -> (B, D)``, in ``[0, 1]``."""
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, label: int | None = None) -> Tensor:
        """``n`` examples ``(n, D)`` from :meth:`sampler` (in the model's current mode), all of
        class ``label`` where given (a class-conditional GAN only)."""
        one_hot = None
        if label is not None:
            if not 0 <= label < self.classes:
                raise ValueError(f"label {label} is not a class of this GAN (it has {self.classes}; "
                                 f"accepted: 0 to {self.classes - 1})" if self.classes else
                                 "this GAN was trained without classes: it cannot draw a chosen label")
            one_hot = self.one_hot(torch.full((n,), label, device=self.class_prior.device))
        return self.sampler()(self.noise(n, generator, one_hot))

    @torch.no_grad()
    def refresh_ema_batch_norm(self, generator: torch.Generator, batches: int = EMA_BN_BATCHES,
                               batch_size: int = EMA_BN_BATCH_SIZE) -> None:
        """Re-estimate the running mean and variance of every batch norm of the moving
        average from its own activations: the statistics are reset, then ``batches``
        batches of ``batch_size`` noise vectors (from ``generator``) go through it in
        training mode with ``momentum=None``, so each statistic is the plain average of the
        batches' means and unbiased variances (what ``torch.optim.swa_utils.update_bn`` does
        with a data loader). Nothing to do without a moving average or batch norm."""
        if self.ema is None:
            return
        network = self.ema.module
        norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta, was_training = [m.momentum for m in norms], network.training
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
        network.train()
        try:
            for _ in range(batches):
                network(self.noise(batch_size, generator))
        finally:
            for norm, momentum in zip(norms, momenta, strict=True):
                norm.momentum = momentum
            network.train(was_training)

    @torch.no_grad()
    def update_ema(self) -> None:
        """One step of the moving average towards the generator's current weights."""
        if self.ema is not None:
            self.ema.update_parameters(self.generator)


# ---------------------------------------------------------------------------- losses


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's loss (see the module's table) from logits ``real`` ``(B,)`` and
    ``fake`` ``(B',)``, without WGAN-GP's penalty (:func:`gradient_penalty`)."""
    if kind == "non_saturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan_gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; accepted: {', '.join(LOSSES)}")


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """The generator's loss from the logits ``fake`` ``(B',)`` of its examples:
    ``-log sigma(d_f)`` (non-saturating) or ``-d_f`` (hinge, WGAN-GP), averaged."""
    if kind == "non_saturating":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan_gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; accepted: {', '.join(LOSSES)}")


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator,
                     conditions: Tensor | None = None) -> Tensor:
    """WGAN-GP's ``mean_b (|grad_x D(x_hat_b)|_2 - 1)^2`` with
    ``x_hat_b = eps_b x_b + (1 - eps_b) x~_b``, ``eps_b ~ U(0, 1)`` drawn from ``generator``;
    ``real`` and ``fake`` are ``(B, D)``. With ``conditions`` ``(B, C)`` (a class-conditional
    discriminator) the discriminator reads ``[x_hat_b, c_b]`` and the gradient is in ``x``
    only. Differentiable in the discriminator's weights (the input gradient keeps its graph)."""
    eps = torch.rand(len(real), 1, generator=generator, device=real.device, dtype=real.dtype)
    between = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    rows = between if conditions is None else torch.cat([between, conditions], dim=1)
    (grad,) = torch.autograd.grad(discriminator(rows).sum(), between, create_graph=True)
    return ((torch.linalg.vector_norm(grad, dim=1) - 1.0) ** 2).mean()


def decision_threshold(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """Where the discriminator's call ``real`` / ``fake`` switches: logit 0 for the
    non-saturating and hinge losses; a WGAN critic's values are defined up to a shift, so
    the midpoint of the batch's mean real and mean fake values."""
    if kind == "wgan_gp":
        return (real.mean() + fake.mean()) / 2
    return real.new_zeros(())
