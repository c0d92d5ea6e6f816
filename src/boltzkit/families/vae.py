"""Variational autoencoders (``model.type: vae``): Gaussian encoder, Bernoulli or Gaussian
decoder, fully connected or convolutional; trained on the ELBO or the k-sample
importance-weighted bound by the reparametrisation trick; evaluated by the ELBO and
IWAE_5000 (test NLL in nats); samples, reconstructions and, for two latent dimensions,
a map of the latent space."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from ..data import Dataset
from ..errors import ConfigError
from ..estimate.evaluate import binary_view
from ..estimate.variational import ACTIVE_THRESHOLD, evaluate_vae, format_vae_report
from ..models.vae import VAE, gaussian_kl_to_standard
from ..objectives.variational import VariationalBound
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .monitoring import monitor_sets
from .registry import register
from .task import Task

EVAL_K = 5000
"""Importance samples of ``boltzkit evaluate`` (Burda et al., 2016 report -IWAE_5000)."""
MAP_STEPS = 15
"""The latent map's grid: ``MAP_STEPS x MAP_STEPS`` quantiles of the prior."""


class VAESection(ModelSection):
    type: Literal["vae"] = "vae"
    latent: int = Field(16, ge=1, le=4096)
    """Latent dimensions (2 also draws latent_map.png)."""
    hidden_layers: list[int] = Field(default_factory=lambda: [200, 200])
    """mlp: encoder widths (the decoder mirrors them); conv: channels of the stride-2
    convolutions."""
    architecture: Literal["mlp", "conv"] = "mlp"
    decoder: Literal["bernoulli", "gaussian"] = "bernoulli"
    """bernoulli: binary data (data.binarize: dynamic by default); gaussian: real values."""
    learn_variance: bool = True
    """Gaussian decoder: learn one standard deviation per feature (else fixed at 1)."""
    min_std: float = Field(0.01, gt=0, le=100)
    """Gaussian decoder: floor of a learned standard deviation."""
    activation: Literal["relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid"] = "tanh"
    objective: Literal["elbo", "iwae"] = "elbo"
    k: int = Field(1, ge=1, le=10_000)
    """Samples of z per example and update: elbo averages k single-sample bounds, iwae is
    the k-sample importance-weighted bound (Burda et al., 2016)."""
    monitor_k: int = Field(32, ge=0, le=10_000)
    """Samples of the per-epoch val_iwae_bound on the validation subset (0: not logged)."""

    @field_validator("hidden_layers")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if any(width < 1 or width > 1_000_000 for width in value):
            raise ValueError(f"hidden layer widths must be from 1 to 1,000,000, got {value}")
        return value

    @model_validator(mode="after")
    def _conv_has_layers(self) -> VAESection:
        if self.architecture == "conv" and not self.hidden_layers:
            raise ValueError("model.architecture conv needs at least one entry in model.hidden_layers "
                             "(channels of each convolution), got []")
        return self


def build_vae(section: VAESection, data_info: Mapping[str, Any], generator: torch.Generator) -> VAE:
    return VAE(data_info["n_features"], section.latent, section.hidden_layers, section.architecture,
               section.decoder, section.activation, data_info.get("image_shape"), section.learn_variance,
               section.min_std, generator)


def sample_vae(model: VAE, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
               min_beta: float = 0.5) -> tuple[Tensor, Tensor]:
    """Ancestral samples ``z ~ N(0, I)``, ``x ~ p(x | z)`` and their means ``E[x | z]``,
    each ``(n, D)``; exact, so ``steps`` is not used and tempering does not apply."""
    if temperatures >= 2:
        raise ValueError("a VAE samples exactly (z from the prior, then x given z): parallel "
                         "tempering does not apply; drop --pt")
    return model.sample(n, generator)


CURVE_GROUPS = {
    "bound on log p(x) (nats)": ["train_elbo", "val_elbo", "val_iwae_bound"],
    "KL(q(z|x) || p(z)) (nats)": ["train_kl", "val_kl"],
    "active latent units": ["active_units"],
    "loss (negative training bound)": ["loss"],
    "learning rate": ["lr"],
}


class VAETask(Task):
    """VAEs trained by a :class:`~boltzkit.objectives.variational.VariationalBound`."""

    summary_keys = ("loss", "val_elbo", "val_iwae_bound", "active_units", "seconds")
    proxy_name = "negative ELBO"

    def __init__(self, config, data: Dataset, device: torch.device):
        if config.model.architecture == "conv" and data.image_shape is None:
            raise ConfigError(f"config key 'model.architecture': conv needs images, and the "
                              f"{data.n_features} features of {data.source or data.name} have no image "
                              "shape; set data.image_shape: [height, width] or use mlp")
        super().__init__(config, data, device)
        # likelihoods of a Bernoulli decoder are defined on binary vectors
        self.binary = config.model.decoder == "bernoulli"
        self.monitor_train, self.monitor_val = monitor_sets(
            data, config.train.metrics_examples, config.seed, device, self.binary)

    def build_model(self) -> VAE:
        model = super().build_model()
        model.init_from_data(self.data.train.mean(dim=0).to(self.device))
        return model

    def build_objective(self) -> VariationalBound:
        section = self.config.model
        return VariationalBound(section.objective, section.k,
                                make_generator(self.config.seed, "train.noise", self.device))

    def _noise(self, purpose: str) -> torch.Generator:
        """The same noise at every call: metrics of different epochs differ by the model only."""
        return make_generator(self.config.seed, purpose, self.device)

    @torch.no_grad()
    def epoch_metrics(self, model: VAE, epoch: int) -> dict[str, float]:
        """ELBO (one sample, closed-form KL) and KL on the monitoring subsets, the
        ``monitor_k``-sample IWAE bound on the validation subset, and the active latent
        units (``Cov_x(E_q[z_l | x]) > 0.01``) of the validation subset (else training)."""
        metrics: dict[str, float] = {}
        for name, x in (("train", self.monitor_train), ("val", self.monitor_val)):
            if len(x) == 0:
                continue
            mean, log_std = model.encode(x)
            metrics[f"{name}_elbo"] = model.elbo(x, self._noise("metrics.noise")).mean().item()
            metrics[f"{name}_kl"] = gaussian_kl_to_standard(mean, log_std).mean().item()
            if len(x) > 1:
                metrics["active_units"] = float((mean.var(0) > ACTIVE_THRESHOLD).sum())
        k = self.config.model.monitor_k
        if k and len(self.monitor_val):
            noise = self._noise("metrics.iwae")  # once: each chunk draws its own, fresh noise
            bound = torch.cat([model.iwae_bound(chunk, k, noise)
                               for chunk in self.monitor_val.split(max(1, 65536 // k))])
            metrics["val_iwae_bound"] = bound.mean().item()
        return metrics

    # ---------------------------------------------------------------- range test

    def proxy_loss(self, model: VAE, batch: Tensor) -> Tensor:
        """Negative ELBO of ``batch`` with the same noise at every call."""
        return -model.elbo(batch, self._noise("lr-find.proxy")).mean()

    def probe(self, n: int) -> Tensor:
        """The first ``n`` monitoring examples (validation, else training), binarized like
        the monitoring sets."""
        monitor = self.monitor_val if len(self.monitor_val) else self.monitor_train
        if len(monitor):
            return monitor[:n]
        train, val = monitor_sets(self.data, n, self.config.seed, self.device, self.binary)
        return val if len(val) else train

    # ---------------------------------------------------------------- outputs

    def evaluate(self, model: VAE, split: str, *, seed: int = 0, progress: bool = False,
                 k: int | None = None) -> tuple[dict[str, Any], str]:
        """The ELBO and the ``k``-sample importance-weighted bound (default 5000) on
        ``split``; binary data for a Bernoulli decoder (grey values binarized once, seeded).
        With ``data.standardize`` the densities are those of the raw data: the bounds
        include ``-sum_i log feature_std_i``."""
        values = self.split(split)
        if self.binary:
            values = binary_view(values, make_generator(seed, "evaluate.binarize"))
        std = self.data.feature_std
        log_jacobian = 0.0 if std is None else -torch.log(std.double()).sum().item()
        model.eval()
        results = evaluate_vae(model, values, k=k or EVAL_K, progress=progress, log_jacobian=log_jacobian,
                               generator=make_generator(seed, "evaluate", self.device))
        return results, format_vae_report(results, f"{split} split, {results['examples']} examples")

    @torch.no_grad()
    def write_figures(self, out: Path, model: VAE, history: list[dict]) -> None:
        """``samples.png``, ``reconstructions.png``, ``latent_map.png`` (two latent
        dimensions only) and ``curves.png``."""
        from .. import plots

        shape, mean, std = self.data.image_shape, self.data.feature_mean, self.data.feature_std
        generator = make_generator(self.config.seed, "figures", self.device)
        states, means = model.sample(100, generator)
        plots.save_samples(model, states, means, out / "samples.png",
                           "100 samples: z ~ N(0, I) through the decoder", shape, mean, std,
                           means_label="E[x|z]")
        examples = (self.monitor_val if len(self.monitor_val) else self.monitor_train)[:20]
        if len(examples):
            rows = [("held-out examples", examples),
                    ("E[x | z = mean of q(z|x)]", model.reconstruct(examples))]
            pixels = [(label, plots.to_pixels(t.cpu(), mean, std).numpy()) for label, t in rows]
            plots.save_reconstructions(pixels, shape, out / "reconstructions.png", title=out.name)
        if model.latent == 2:
            grid = plots.to_pixels(latent_grid_means(model, MAP_STEPS).cpu(), mean, std).numpy()
            plots.save_latent_map(grid, MAP_STEPS, shape, out / "latent_map.png",
                                  f"E[x|z] over a {MAP_STEPS} x {MAP_STEPS} grid of prior quantiles "
                                  "(z1 left to right, z2 top to bottom, from 5 % to 95 %)")
        plots.save_curves(history, out / "curves.png", CURVE_GROUPS, title=out.name)


@torch.no_grad()
def latent_grid_means(model: VAE, steps: int) -> Tensor:
    """``E[x | z]`` at ``z = (Phi^-1(u_c), Phi^-1(u_r))`` for ``u`` evenly spaced from 0.05 to
    0.95 (Kingma & Welling, 2014, figure 4), row-major: ``(steps^2, D)``."""
    reference = model.output_bias()
    quantiles = torch.special.ndtri(torch.linspace(0.05, 0.95, steps, dtype=torch.float64))
    z1, z2 = torch.meshgrid(quantiles, quantiles, indexing="xy")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], 1).to(reference)
    return model.mean_of(model.decode(z))


VAE_FAMILY = register(Family(
    name="vae",
    description="variational autoencoder (ELBO or IWAE; Bernoulli or Gaussian decoder; mlp or conv)",
    section=VAESection,
    build=build_vae,
    task=VAETask,
    metrics={**split_metrics(elbo="maximize", kl=None), "val_iwae_bound": "maximize",
             "active_units": None},
    capabilities=Capabilities(sample=True, evaluate=True, lr_find=True, one_pass=True),
    unit_interval=lambda section: section.decoder == "bernoulli",
    figures=("samples.png", "reconstructions.png", "latent_map.png", "curves.png"),
    presets=("vae-digits", "vae-mnist"),
    sample=sample_vae,
    default_metric="val_elbo",
    # a Bernoulli decoder's likelihood is defined on binary images; resampling them every
    # epoch is the usual MNIST protocol of the VAE literature (Burda et al., 2016)
    data_defaults={"binarize": "dynamic"},
))
