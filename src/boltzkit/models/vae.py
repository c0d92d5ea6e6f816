"""A variational autoencoder (Kingma & Welling, 2014) and its importance-weighted bound
(Burda, Grosse & Salakhutdinov, 2016), with one layer of Gaussian latents.

Generative model and approximate posterior, for data ``x`` (``D`` features) and latents
``z`` (``L`` dimensions):

    p(z) = N(0, I),
    p(x | z) = prod_i Bernoulli(x_i; sigmoid(f_i(z)))            (decoder: bernoulli)
             = prod_i N(x_i; f_i(z), s_i^2)                        (decoder: gaussian)
    q(z | x) = N(z; mu(x), diag(sigma(x)^2)),

``f`` the decoder network, ``(mu, log sigma)`` the encoder's outputs, ``s_i`` a learned
standard deviation per feature (``s = min_std + softplus(r)``, one ``r_i`` per feature,
shared by every ``z``) or, with ``learn_variance=False``, ``s = 1``.

With the reparametrisation ``z_j = mu(x) + sigma(x) * eps_j``, ``eps_j ~ N(0, I)``, the
log importance weights are

    log w_j = log p(x | z_j) + log p(z_j) - log q(z_j | x),
    log q(z_j | x) = -1/2 |eps_j|^2 - sum_l log sigma_l(x) - L/2 log(2 pi),

and the bounds on ``log p(x)``

    ELBO        = E_q[log p(x | z)] - KL(q(z | x) || p(z))   (KL in closed form below)
    IWAE_k      = E[ log (1/k) sum_j w_j ]                    (logsumexp over j)

with ``ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1} <= log p(x)`` (Burda et al., Theorem 1).
All functions take the noise ``eps`` explicitly or draw it from a given generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vae_nets import ConvDecoder, ConvEncoder, mlp_net

ARCHITECTURES = ("mlp", "conv")
DECODERS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_density(z: Tensor) -> Tensor:
    """``log N(z; 0, I) = -1/2 |z|^2 - L/2 log 2 pi`` over the last dimension, ``(..., L) -> (...)``."""
    return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * LOG_2PI)


def gaussian_kl_to_standard(mean: Tensor, log_std: Tensor) -> Tensor:
    """``KL(N(mean, diag std^2) || N(0, I)) = 1/2 sum_l (mean_l^2 + std_l^2 - 1 - 2 log std_l)``,
    ``(..., L) -> (...)``."""
    return 0.5 * (mean.pow(2) + torch.exp(2 * log_std) - 1 - 2 * log_std).sum(-1)


class VAE(nn.Module):
    """Gaussian encoder, Bernoulli or Gaussian decoder, MLP or convolutional networks.

    Args:
        n_features: data features ``D``.
        latent: latent dimensions ``L``.
        hidden: widths of the hidden layers (``mlp``: the encoder's, the decoder mirrors
            them) or channels of the stride-2 convolutions (``conv``).
        architecture: ``mlp`` or ``conv`` (needs ``image_shape``).
        decoder: ``bernoulli`` (binary data, ``f`` gives logits) or ``gaussian`` (real
            data, ``f`` gives means).
        activation: a name of :data:`boltzkit.models.mlp.ACTIVATIONS`.
        image_shape: ``(H, W)`` with ``H * W = D`` (``conv`` only).
        learn_variance: Gaussian decoder: learn one standard deviation per feature
            (floored at ``min_std``); else it is fixed at 1.
        min_std: the floor of a learned standard deviation (without one, a feature that is
            reconstructed exactly drives its density to infinity).
        generator: random source for the initial weights.
    """

    def __init__(
        self,
        n_features: int,
        latent: int,
        hidden: Sequence[int] = (200, 200),
        architecture: str = "mlp",
        decoder: str = "bernoulli",
        activation: str = "tanh",
        image_shape: Sequence[int] | None = None,
        learn_variance: bool = True,
        min_std: float = 0.01,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_features < 1 or latent < 1:
            raise ValueError(f"Invalid sizes: {n_features} features, {latent} latent dimensions "
                             "(expected >= 1 each)")
        if any(width < 1 for width in hidden):
            raise ValueError(f"Invalid hidden layer widths: {list(hidden)} (expected >= 1 each)")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; accepted: {', '.join(ARCHITECTURES)}")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; accepted: {', '.join(DECODERS)}")
        if not min_std > 0:
            raise ValueError(f"Invalid min_std: {min_std} (expected > 0)")
        self.n_features, self.latent = n_features, latent
        self.architecture, self.decoder_name = architecture, decoder
        self.min_std = float(min_std)
        if architecture == "conv":
            if image_shape is None or len(image_shape) != 2 or math.prod(image_shape) != n_features:
                raise ValueError(f"the conv architecture needs an image shape (height, width) with "
                                 f"height * width = {n_features} features, got {image_shape}")
            if not hidden:
                raise ValueError("the conv architecture needs at least one convolution (hidden channels)")
            shape = (int(image_shape[0]), int(image_shape[1]))
            self.encoder = ConvEncoder(shape, hidden, 2 * latent, activation, generator)
            self.decoder = ConvDecoder(latent, hidden, shape, activation, generator)
        else:
            self.encoder = mlp_net(n_features, hidden, 2 * latent, activation, generator)
            self.decoder = mlp_net(latent, list(hidden)[::-1], n_features, activation, generator)
        if decoder == "gaussian" and learn_variance:
            # softplus(r) + min_std = 1 at the start
            start = math.log(math.expm1(max(1.0 - self.min_std, 1e-3)))
            self.decoder_std_raw = nn.Parameter(torch.full((n_features,), start))
        else:
            self.register_parameter("decoder_std_raw", None)

    # ------------------------------------------------------------------ the two networks

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``q(z | x)``'s mean and log standard deviation, ``(B, D) -> (B, L), (B, L)``."""
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z: Tensor) -> Tensor:
        """``f(z)``: logits (Bernoulli) or means (Gaussian), ``(..., L) -> (..., D)``."""
        return self.decoder(z)

    def output_bias(self) -> Tensor:
        """The decoder's per-feature output bias ``(D,)`` (what :meth:`init_from_data` sets)."""
        return self.decoder.pixel_bias if self.architecture == "conv" else self.decoder[-1].bias

    def decoder_std(self) -> Tensor | None:
        """Gaussian decoder: ``s = min_std + softplus(r)``, ``(D,)`` (None: fixed at 1)."""
        if self.decoder_std_raw is None:
            return None
        return self.min_std + F.softplus(self.decoder_std_raw)

    def mean_of(self, decoded: Tensor) -> Tensor:
        """``E[x | z]`` from :meth:`decode`'s output: ``sigmoid(f)`` or ``f``."""
        return torch.sigmoid(decoded) if self.decoder_name == "bernoulli" else decoded

    def log_likelihood(self, x: Tensor, decoded: Tensor) -> Tensor:
        """``log p(x | z)`` summed over features, ``x`` ``(B, D)``, ``decoded = f(z)``
        ``(..., B, D)`` -> ``(..., B)``.

        Bernoulli: ``sum_i x_i f_i - softplus(f_i)`` (log-sigmoid form, stable for any logit);
        Gaussian: ``sum_i -1/2 ((x_i - f_i) / s_i)^2 - log s_i - 1/2 log 2 pi``.
        """
        if self.decoder_name == "bernoulli":
            return -F.binary_cross_entropy_with_logits(decoded, x.expand_as(decoded),
                                                       reduction="none").sum(-1)
        std = self.decoder_std()
        if std is None:
            return -0.5 * ((x - decoded).pow(2).sum(-1) + self.n_features * LOG_2PI)
        log_density = -(0.5 * ((x - decoded) / std).pow(2) + torch.log(std)).sum(-1)
        return log_density - 0.5 * self.n_features * LOG_2PI

    # ------------------------------------------------------------------ bounds

    def draw_noise(self, batch: int, k: int, generator: torch.Generator | None) -> Tensor:
        """``eps ~ N(0, I)``, ``(k, batch, L)``, from ``generator`` on the model's device."""
        reference = self.output_bias()
        return torch.randn(k, batch, self.latent, generator=generator, device=reference.device,
                           dtype=reference.dtype)

    def _noise(self, x: Tensor, k: int, generator: torch.Generator | None, noise: Tensor | None) -> Tensor:
        if noise is None:
            return self.draw_noise(len(x), k, generator)
        if noise.dim() != 3 or noise.shape[1:] != (len(x), self.latent):
            raise ValueError(f"noise must have shape (k, {len(x)}, {self.latent}), got {tuple(noise.shape)}")
        return noise

    def log_weights(self, x: Tensor, noise: Tensor) -> Tensor:
        """``log w_j = log p(x | z_j) + log p(z_j) - log q(z_j | x)`` with
        ``z_j = mu(x) + sigma(x) * eps_j``; ``x`` ``(B, D)``, ``noise = eps`` ``(k, B, L)``
        -> ``(k, B)``."""
        mean, log_std = self.encode(x)
        z = mean + torch.exp(log_std) * noise
        log_q = -0.5 * (noise.pow(2).sum(-1) + self.latent * LOG_2PI) - log_std.sum(-1)
        return self.log_likelihood(x, self.decode(z)) + standard_normal_log_density(z) - log_q

    def elbo(self, x: Tensor, generator: torch.Generator | None = None, *, k: int = 1,
             noise: Tensor | None = None, analytic_kl: bool = True) -> Tensor:
        """The evidence lower bound per example, ``(B, D) -> (B,)``, estimated with ``k``
        samples of ``z`` (``noise`` ``(k, B, L)``, else drawn from ``generator``):

            analytic_kl:  (1/k) sum_j log p(x | z_j) - KL(q(z | x) || p(z))
            otherwise:    (1/k) sum_j log w_j

        Both are unbiased; the closed-form KL removes the KL term's sampling noise."""
        eps = self._noise(x, k, generator, noise)
        if not analytic_kl:
            return self.log_weights(x, eps).mean(0)
        mean, log_std = self.encode(x)
        z = mean + torch.exp(log_std) * eps
        return self.log_likelihood(x, self.decode(z)).mean(0) - gaussian_kl_to_standard(mean, log_std)

    def iwae_bound(self, x: Tensor, k: int, generator: torch.Generator | None = None, *,
                   noise: Tensor | None = None) -> Tensor:
        """The importance-weighted bound per example, ``log (1/k) sum_j w_j``, ``(B, D) -> (B,)``
        in float64 (the log-sum-exp over ``j`` is accumulated in float64): for ``k = 1`` the
        single-sample ELBO ``log w_1``; it rises with ``k`` towards ``log p(x)``."""
        log_w = self.log_weights(x, self._noise(x, k, generator, noise)).to(torch.float64)
        return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``z ~ N(0, I)``, then ``x ~ p(x | z)``: the draws and their means ``E[x | z]``,
        each ``(n, D)``."""
        reference = self.output_bias()
        z = torch.randn(n, self.latent, generator=generator, device=reference.device, dtype=reference.dtype)
        return self.sample_given(self.decode(z), generator)

    @torch.no_grad()
    def sample_given(self, decoded: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """``x ~ p(x | z)`` for ``decoded = f(z)``: the draws and their means."""
        mean = self.mean_of(decoded)
        if self.decoder_name == "bernoulli":
            return torch.bernoulli(mean, generator=generator), mean
        std = self.decoder_std()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * (1.0 if std is None else std), mean

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """``E[x | z = mu(x)]``: the decoder's mean at the posterior mean, ``(B, D) -> (B, D)``."""
        return self.mean_of(self.decode(self.encode(x)[0]))

    @torch.no_grad()
    def init_from_data(self, mean: Tensor) -> None:
        """Start the decoder's output at the data's base rates: bias = ``logit(mean)``
        (Bernoulli, clamped to [1e-3, 1 - 1e-3]) or ``mean`` (Gaussian), so the first
        updates do not spend themselves learning the average image."""
        target = torch.logit(mean.clamp(1e-3, 1 - 1e-3)) if self.decoder_name == "bernoulli" else mean
        self.output_bias().copy_(target.to(self.output_bias()))
