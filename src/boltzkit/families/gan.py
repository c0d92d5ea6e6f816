"""Generative adversarial networks (``model.type: gan``): MLP or DCGAN networks; the
non-saturating, hinge or WGAN-GP loss; spectral normalisation; two optimizers with their
own rates and schedules (two time-scale updates, Heusel et al., 2017); a moving average of
the generator; sample grids after every epoch; mode collapse and divergence reported.
With ``model.labels: true`` it is class-conditional (a generator fed ``[z, onehot(y)]``, a
projection discriminator): ``boltzkit sample --label`` draws a chosen class, and plain
samples draw the class from the training set's frequencies.

The generator trains with ``train.optimizer`` / ``train.schedule``, the discriminator with
``model.discriminator_optimizer`` / ``model.discriminator_schedule``. Each batch updates
the discriminator; every ``d_steps``-th batch also updates the generator (from fresh
noise) and the moving average. The trainer's ``loss`` is the discriminator's loss.

Headline metric, ``val_mmd``: the squared kernel MMD, in pixel space, between samples of
fixed noise and held-out data (Gaussian kernel, median-heuristic bandwidth of the
training monitor set, fixed for the run so epochs compare). It needs no classifier, is 0
in expectation for a perfect generator and grows with both bad samples and lost modes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from ..data import Dataset
from ..errors import ConfigError
from ..estimate.mmd import mean_pairwise_distance, median_bandwidth, mmd_squared
from ..models.gan import GAN, dcgan_start, discriminator_sizes
from ..objectives.adversarial import DiscriminatorLoss, GeneratorLoss
from ..optim.schedules import REACTIVE
from ..sections import OptimizerConfig, ScheduleConfig
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .monitoring import monitor_sets
from .registry import register
from .steps import GradientStep, Stage, TrainStep
from .task import LabelledBatches, Task

METRICS = {
    "d_loss": None,  # the players' losses trade off: neither is a quantity to optimise
    "g_loss": None,
    "d_real_accuracy": None,
    "d_fake_accuracy": None,
    "d_lr": None,
    "diversity": None,  # 1 is the data's spread; above 1 is noise, below collapse
    "mode_collapse": None,  # 1 when the samples' spread has collapsed for PINNED_EPOCHS epochs
    "divergence": None,  # 1 when the discriminator has won outright for PINNED_EPOCHS epochs
    **split_metrics(mmd="minimize"),
}

PINNED_ACCURACY = 0.99
"""A discriminator right this often on both real and generated examples, over a whole
epoch, leaves the generator (almost) no gradient to learn from."""
PINNED_EPOCHS = 3
"""Epochs in a row of pinned accuracy (or of collapsed diversity) before a verdict is
reported: one such epoch can be a transient the generator recovers from, and an
untrained generator's samples start with little spread."""
MIN_DIVERSITY = 0.5
"""Samples whose mean pairwise distance is below this share of the data's have collapsed
onto few modes (healthy generators on digits stay within 0.8 to 1.2 of the data)."""


class GANSection(ModelSection):
    type: Literal["gan"] = "gan"
    architecture: Literal["mlp", "dcgan"] = "mlp"
    """``dcgan`` needs image-shaped data whose sides are multiples of 2^len(generator_layers)."""
    latent: int = Field(64, ge=1, le=100_000)
    """Size of the generator's Gaussian noise."""
    generator_layers: list[int] = Field(default_factory=lambda: [256, 512])
    """Hidden widths (mlp) or channel counts from the coarsest maps to the finest (dcgan)."""
    discriminator_layers: list[int] = Field(default_factory=lambda: [512, 256])
    """Hidden widths (mlp) or channel counts from the finest maps to the coarsest (dcgan)."""
    batch_norm: bool = True
    """Batch normalisation in the generator (the discriminator never has it)."""
    loss: Literal["non_saturating", "hinge", "wgan_gp"] = "non_saturating"
    gp_weight: float = Field(10.0, ge=0, le=1e4)
    """WGAN-GP's penalty weight lambda (Gulrajani et al., 2017: 10); other losses ignore it."""
    spectral_norm: bool = False
    """Spectral normalisation of every discriminator weight (Miyato et al., 2018)."""
    minibatch_std: int = Field(0, ge=0, le=4096)
    """Group size G of a minibatch-standard-deviation feature in the discriminator (Karras et
    al., 2018), which helps against dropped modes; 0: none. Keep train.batch_size a
    multiple of G so that no group mixes real and generated examples."""
    labels: bool = False
    """Class-conditional (needs labelled data): the generator reads the class beside the
    noise and the discriminator projects it onto its features (Miyato & Koyama, 2018);
    samples draw the class from the training frequencies, or a chosen one
    (boltzkit sample --label)."""
    d_steps: int = Field(1, ge=1, le=100)
    """Discriminator updates per generator update (WGAN-GP's paper: 5)."""
    ema: float = Field(0.999, ge=0, lt=1)
    """Decay of the generator weights' moving average, which samples and metrics use (0: off)."""
    discriminator_optimizer: OptimizerConfig = Field(
        default_factory=lambda: OptimizerConfig(name="adam", lr=2e-4, betas=[0.5, 0.999]))
    """The discriminator's own optimizer (the generator's is train.optimizer)."""
    discriminator_schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    """The discriminator's own schedule (the generator's is train.schedule)."""

    @field_validator("generator_layers", "discriminator_layers")
    @classmethod
    def _positive_sizes(cls, value: list[int]) -> list[int]:
        if any(size < 1 for size in value):
            raise ValueError(f"layer sizes must be >= 1, got {value}")
        return value

    @field_validator("discriminator_schedule")
    @classmethod
    def _watched_metric(cls, value: ScheduleConfig) -> ScheduleConfig:
        if value.name in REACTIVE:
            metric = value.params().get("metric", "val_loss")
            if METRICS.get(metric) is None or value.unit != "epoch":
                raise ValueError(f"{value.name} watches {metric!r} after each epoch; it needs unit: epoch "
                                 f"and a metric that model.type 'gan' logs with a direction: "
                                 f"{', '.join(m for m, d in METRICS.items() if d)}")
        return value

    @field_validator("minibatch_std")
    @classmethod
    def _group_size(cls, value: int) -> int:
        if value == 1:
            raise ValueError("minibatch_std is a group size: 0 (off) or at least 2, got 1")
        return value

    @model_validator(mode="after")
    def _dcgan_layers(self) -> GANSection:
        for key in ("generator_layers", "discriminator_layers"):
            if self.architecture == "dcgan" and not getattr(self, key):
                raise ValueError(f"architecture dcgan needs at least one entry in {key}")
        return self


def build_gan(section: GANSection, data_info: Mapping[str, Any], generator: torch.Generator) -> GAN:
    shape = data_info.get("image_shape")
    return GAN(data_info["n_features"], section.latent, section.architecture, section.generator_layers,
               section.discriminator_layers, tuple(shape) if shape else None, section.batch_norm,
               section.spectral_norm, section.ema, generator, section.minibatch_std,
               data_info["n_classes"] if section.labels else 0)


def check_architecture(section: GANSection, data: Dataset) -> None:
    """A :class:`ConfigError` naming the key when ``dcgan`` does not fit the images."""
    if section.architecture != "dcgan":
        return
    shape = data.image_shape
    if shape is None:
        raise ConfigError(f"config key 'model.architecture': dcgan needs image-shaped data and "
                          f"{data.source or data.name} has none (set data.image_shape: [height, width]); "
                          "accepted for it: mlp")
    for key, check in (("generator_layers", dcgan_start), ("discriminator_layers", discriminator_sizes)):
        try:
            check(shape, len(getattr(section, key)))
        except ValueError as err:
            raise ConfigError(f"config key 'model.{key}': {err}") from None


class CollapseDetector:
    """Two verdicts per epoch, from the epoch's metrics:

    - ``divergence``: the discriminator was right on at least :data:`PINNED_ACCURACY` of
      both real and generated training examples for :data:`PINNED_EPOCHS` epochs in a row;
    - ``mode_collapse``: the samples' ``diversity`` was below :data:`MIN_DIVERSITY` for
      :data:`PINNED_EPOCHS` epochs in a row.

    Returns a warning for each verdict that holds; the streaks survive a restart."""

    def __init__(self) -> None:
        self.epochs = 0
        self.pinned = 0
        self.collapsed = 0

    def update(self, metrics: dict[str, float]) -> list[str]:
        self.epochs += 1
        warnings = []
        real, fake = metrics.get("d_real_accuracy"), metrics.get("d_fake_accuracy")
        pinned = real is not None and fake is not None and min(real, fake) >= PINNED_ACCURACY
        self.pinned = self.pinned + 1 if pinned else 0
        metrics["divergence"] = float(self.pinned >= PINNED_EPOCHS)
        if metrics["divergence"]:
            warnings.append(
                f"epoch {self.epochs}: the discriminator has been right on {real:.1%} of real and "
                f"{fake:.1%} of generated examples for {self.pinned} epochs: the generator gets almost "
                "no gradient (divergence, unless it recovers). Try model.spectral_norm: true, "
                "model.loss: hinge or wgan_gp, or a lower model.discriminator_optimizer.lr")
        if "diversity" in metrics:
            self.collapsed = self.collapsed + 1 if metrics["diversity"] < MIN_DIVERSITY else 0
            metrics["mode_collapse"] = float(self.collapsed >= PINNED_EPOCHS)
            if metrics["mode_collapse"]:
                warnings.append(
                    f"epoch {self.epochs}: mode collapse: the samples' mean pairwise distance has been "
                    f"below {MIN_DIVERSITY} of the data's for {self.collapsed} epochs (now "
                    f"{metrics['diversity']:.2f}): the generator makes few distinct examples (early in "
                    "training this can pass). Try "
                    "model.loss: wgan_gp, model.spectral_norm: true or a lower train.optimizer.lr")
        return warnings

    def state_dict(self) -> dict[str, int]:
        return {"epochs": self.epochs, "pinned": self.pinned, "collapsed": self.collapsed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epochs, self.pinned = int(state["epochs"]), int(state["pinned"])
        self.collapsed = int(state["collapsed"])


class AdversarialStep(TrainStep):
    """One discriminator update per batch, a generator update (and a step of the moving
    average) every ``d_steps`` batches. Each update is a :class:`GradientStep` with its own
    optimizer, schedule and clipping over its own network; each network's gradients are
    cleared after its update, so the other update neither clips nor logs them.

    After each epoch it reports both players' statistics, the discriminator's rate
    (``d_lr``), what ``measure(model)`` finds in the samples, and the
    :class:`CollapseDetector`'s verdicts, whose warnings go to ``warn``.

    A non-finite loss raises :class:`NonFiniteLoss` before its own network changes; a
    generator's comes after the same batch's discriminator update (its loss is taken
    through the updated discriminator, so it cannot be checked first). The trainer ends
    the run there (train.backoff needs a single optimizer), so nothing trains on from
    that half-updated state.
    """

    def __init__(self, model: GAN, discriminator: GradientStep, generator: GradientStep, d_steps: int,
                 measure: Callable[[GAN], dict[str, float]], warn: Callable[[str], None]):
        self.model, self.discriminator, self.generator = model, discriminator, generator
        self.d_steps, self.measure, self.warn = d_steps, measure, warn
        self.updates = 0
        self.detector = CollapseDetector()

    def __call__(self, model: nn.Module, batch: Tensor) -> float:
        value = self.discriminator(model, batch)
        self.discriminator.optimizer.zero_grad(set_to_none=True)
        self.updates += 1
        if self.updates % self.d_steps == 0:
            self.generator(model, batch)
            self.generator.optimizer.zero_grad(set_to_none=True)
            model.update_ema()
        return value

    @property
    def lr(self) -> float:
        return self.generator.lr

    def end_epoch(self, metrics: Mapping[str, float]) -> None:
        self.discriminator.end_epoch(metrics)
        self.generator.end_epoch(metrics)

    def epoch_metrics(self) -> dict[str, float]:
        metrics = {**self.discriminator.epoch_metrics(), **self.generator.epoch_metrics(),
                   "d_lr": self.discriminator.lr, **self.measure(self.model)}
        for warning in self.detector.update(metrics):
            self.warn(warning)
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "discriminator": self.discriminator.state_dict(),
                "generator": self.generator.state_dict(), "detector": self.detector.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.generator.load_state_dict(state["generator"])
        self.detector.load_state_dict(state["detector"])


CURVE_GROUPS = {
    "losses": ["d_loss", "g_loss"],
    "discriminator accuracy": ["d_real_accuracy", "d_fake_accuracy"],
    "MMD^2 to data (pixels)": ["train_mmd", "val_mmd"],
    "diversity (samples / data)": ["diversity"],
    "learning rates": ["lr", "d_lr"],
}
FIGURE_SAMPLES = 100
EPOCH_SAMPLES = 64


@torch.no_grad()
def draw(model: GAN, n: int, generator: torch.Generator, label: int | None = None) -> Tensor:
    """``n`` samples in eval mode (batch norm with its running statistics; those of the
    moving average first re-estimated for its weights, from fixed noise, so a draw depends
    on the weights only), all of class ``label`` where given; the model's mode is restored."""
    device = next(model.generator.parameters()).device
    model.refresh_ema_batch_norm(make_generator(0, "gan.ema.batch_norm", device))
    was_training = model.training
    model.eval()
    try:
        return model.sample(n, generator, label)
    finally:
        model.train(was_training)


class GANTask(LabelledBatches, Task):
    """Adversarial training on examples in [0, 1]; with ``model.labels`` each batch row is
    ``[x, onehot(y)]``."""

    summary_keys = ("loss", "g_loss", "d_real_accuracy", "d_fake_accuracy", "diversity", "val_mmd", "seconds")

    def __init__(self, config, data: Dataset, device: torch.device):
        check_architecture(config.model, data)
        group = config.model.minibatch_std
        if group and config.train.batch_size % group:
            raise ConfigError(f"config key 'train.batch_size': {config.train.batch_size} is not a multiple "
                              f"of model.minibatch_std={group}, so a group of the discriminator's minibatch "
                              "statistic would mix real and generated examples; accepted: a multiple of it")
        super().__init__(config, data, device)
        self.use_labels(config.model.labels)
        # with data.binarize: dynamic the generator learns binary images: compare its samples
        # with training images binarized once (seeded), like the validation ones
        train, val = monitor_sets(data, config.train.metrics_examples, config.seed, device, data.dynamic)
        self.monitor = {"train": train, "val": val}
        self.bandwidth = median_bandwidth(self.monitor["train"]) if len(self.monitor["train"]) >= 2 else 1.0

    def build_model(self) -> GAN:
        """With labels, the class prior is the training labels' frequencies."""
        model = super().build_model()
        if self.labels:
            model.set_class_prior(self.label_frequencies().to(model.class_prior))
        return model

    def stages(self, model: GAN) -> list[Stage]:
        cfg, section = self.config.train, self.config.model
        epochs = cfg.epochs

        def build() -> TrainStep:
            d_config = cfg.model_copy(update={"optimizer": section.discriminator_optimizer,
                                              "schedule": section.discriminator_schedule})
            d_noise = make_generator(self.config.seed, "train.noise.discriminator", self.device)
            g_noise = make_generator(self.config.seed, "train.noise.generator", self.device)
            discriminator = self.gradient_step(
                model.discriminator, DiscriminatorLoss(section.loss, section.gp_weight, d_noise), epochs,
                d_config)
            generator_updates = max(1, epochs * self.steps_per_epoch() // section.d_steps)
            generator = self.gradient_step(model.generator, GeneratorLoss(section.loss, g_noise), epochs,
                                           updates=generator_updates)
            return AdversarialStep(model, discriminator, generator, section.d_steps, self.measure, self.warn)

        return [Stage("train", epochs, build)]

    def warn(self, message: str) -> None:
        print(f"GAN warning, {message}", file=sys.stderr)

    @torch.no_grad()
    def measure(self, model: GAN) -> dict[str, float]:
        """On samples of fixed noise (as many as monitoring examples): ``diversity``, their
        mean pairwise distance over the training monitor set's, and the MMD^2 to the
        training and validation monitor sets."""
        metrics: dict[str, float] = {}
        for split, real in self.monitor.items():
            if len(real) < 2:
                continue
            samples = draw(model, len(real), make_generator(self.config.seed, "metrics.noise", self.device))
            metrics[f"{split}_mmd"] = mmd_squared(samples, real, self.bandwidth)
            if split == "train":
                metrics["diversity"] = mean_pairwise_distance(samples) / max(mean_pairwise_distance(real),
                                                                             1e-12)
        return metrics

    def epoch_figures(self, out: Path, model: GAN, epoch: int) -> None:
        """``samples/epoch_NNN.png``: the same noise every epoch, so the grids show progress."""
        from .. import plots

        (out / "samples").mkdir(exist_ok=True)
        samples = draw(model, EPOCH_SAMPLES, make_generator(self.config.seed, "figures.epochs", self.device))
        plots.save_image_grid(samples.cpu().numpy(), self.data.image_shape,
                              out / "samples" / f"epoch_{epoch:03d}.png",
                              title=f"epoch {epoch}: {self._which(model)}, fixed noise")

    def write_figures(self, out: Path, model: GAN, history: list[dict]) -> None:
        """``samples.png``, ``curves.png`` and with labels ``samples_by_label.png`` (one row
        per class)."""
        from .. import plots

        generator = make_generator(self.config.seed, "figures", self.device)
        samples = draw(model, FIGURE_SAMPLES, generator)
        plots.save_samples(model, samples, samples, out / "samples.png",
                           f"{FIGURE_SAMPLES} samples of the {self._which(model)}", self.data.image_shape,
                           means_label="G(z)")
        if model.classes:
            per_class = max(1, FIGURE_SAMPLES // model.classes)
            rows = torch.cat([draw(model, per_class, generator, label) for label in range(model.classes)])
            plots.save_image_grid(rows.cpu().numpy(), self.data.image_shape, out / "samples_by_label.png",
                                  f"one row per class 0..{model.classes - 1}: the {self._which(model)}",
                                  columns=per_class)
        plots.save_curves(history, out / "curves.png", CURVE_GROUPS, title=out.name)

    @staticmethod
    def _which(model: GAN) -> str:
        return "generator's moving average" if model.ema is not None else "generator"


def sample_gan(model: GAN, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
               min_beta: float = 0.5, label: int | None = None) -> tuple[Tensor, Tensor]:
    """``n`` examples ``(n, D)`` in one pass of the generator (its moving average where
    there is one), in eval mode, all of class ``label`` where given (a class-conditional
    GAN); returned twice (states and means are the same). ``steps`` does not apply;
    tempering (``temperatures >= 2``, as for every family) is refused."""
    if temperatures >= 2:
        raise ValueError("a GAN draws its samples in one pass of the generator: parallel tempering does "
                         "not apply; drop --pt")
    samples = draw(model, n, generator, label)
    return samples, samples


GAN_FAMILY = register(Family(
    name="gan",
    description="generative adversarial network (MLP or DCGAN; non-saturating, hinge or WGAN-GP)",
    section=GANSection,
    build=build_gan,
    task=GANTask,
    metrics=METRICS,
    capabilities=Capabilities(sample=True, lr_find=False, sample_labels=True, one_pass=True),
    unit_interval=lambda section: True,  # the generator's sigmoid output lies in [0, 1]
    figures=("samples.png", "curves.png"),
    presets=("gan-digits", "gan-mnist", "cgan-mnist"),
    sample=sample_gan,
    default_metric="val_mmd",
    data_defaults={"binarize": "none"},  # it learns grey levels
))
