"""Autoencoders (``model.type: autoencoder``): dense or small convolutional; plain,
denoising (masking or Gaussian corruption) or sparse (KL to a target activation);
Bernoulli (cross-entropy) or Gaussian (squared error) reconstruction; trained whole or
greedily layer by layer (``stacked``), after which a run seeds an MLP classifier
(``model.pretrained``) as an RBM stack does."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn

from ..data import Dataset
from ..errors import ConfigError
from ..models.autoencoder import Autoencoder, corrupt
from ..models.mlp import ACTIVATIONS
from ..objectives.reconstruction import Reconstruction
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .registry import register
from .steps import Stage, TrainStep
from .task import Task

Activation = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]  (the MLP's: seeded layers match)


class AutoencoderSection(ModelSection):
    type: Literal["autoencoder"] = "autoencoder"
    architecture: Literal["mlp", "conv"] = "mlp"
    hidden_layers: list[int] = Field(default_factory=lambda: [256])
    """Widths of the encoder's layers (``architecture: mlp``)."""
    channels: list[int] = Field(default_factory=lambda: [16, 32])
    """Channels of the encoder's stride-2 convolutions (``architecture: conv``)."""
    kernel_size: int = Field(3, ge=1, le=15)
    activation: Activation = "sigmoid"
    """The hidden units' activation; an MLP seeded from this run must use the same."""
    tied: bool = True
    """Decoders reuse the encoder's weights (transposed), as in Vincent et al. (2010)."""
    reconstruction: Literal["bernoulli", "gaussian"] = "bernoulli"
    """``bernoulli``: cross-entropy, data in [0, 1]; ``gaussian``: squared error."""
    corruption: Literal["none", "masking", "gaussian"] = "none"
    corruption_level: float = Field(0.25, ge=0, le=100)
    """masking: the probability of zeroing each input; gaussian: the noise's std."""
    sparsity_target: float = Field(0.05, gt=0, lt=1)
    """rho, the mean activation the KL penalty pulls each hidden unit toward."""
    sparsity_weight: float = Field(0.0, ge=0, le=1e4)
    """beta, the weight of the KL sparsity penalty (0: off; needs sigmoid units)."""
    stacked: bool = False
    """Greedy pretraining: one stage of train.epochs per layer, each layer a one-hidden-
    layer autoencoder of the codes below (then joint_epochs of the whole stack)."""
    joint_epochs: int = Field(0, ge=0, le=1_000_000)

    @field_validator("hidden_layers", "channels")
    @classmethod
    def _positive_widths(cls, value: list[int]) -> list[int]:
        if not value or any(width < 1 for width in value):
            raise ValueError(f"expected at least one layer, each >= 1, got {value}")
        return value

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"expected an odd kernel size (it keeps the image centred), got {value}")
        return value

    @field_validator("corruption_level")
    @classmethod
    def _level_suits_corruption(cls, value: float, info: ValidationInfo) -> float:
        if info.data.get("corruption") == "masking" and value >= 1:
            raise ValueError(f"masking zeroes each input with probability corruption_level; "
                             f"accepted: 0 <= corruption_level < 1, got {value}")
        return value

    @field_validator("sparsity_weight")
    @classmethod
    def _sparsity_needs_sigmoid(cls, value: float, info: ValidationInfo) -> float:
        activation = info.data.get("activation")
        if value > 0 and activation != "sigmoid":
            raise ValueError(f"the KL sparsity penalty needs sigmoid units (a mean activation in "
                             f"(0, 1)); got sparsity_weight {value} with activation {activation!r}: "
                             "set model.activation=sigmoid or model.sparsity_weight=0")
        return value

    @field_validator("joint_epochs")
    @classmethod
    def _joint_needs_stack(cls, value: int, info: ValidationInfo) -> int:
        if value > 0 and not info.data.get("stacked"):
            raise ValueError(f"joint_epochs ({value}) fine-tunes a greedily trained stack; "
                             "set model.stacked=true, or train.epochs for a whole-network run")
        return value

    def widths(self) -> list[int]:
        """The encoder's layer widths (mlp) or channels (conv)."""
        return self.hidden_layers if self.architecture == "mlp" else self.channels


def build_autoencoder(section: AutoencoderSection, data_info: Mapping[str, Any],
                      generator: torch.Generator) -> Autoencoder:
    shape = data_info.get("image_shape")
    if section.architecture == "conv" and not shape:
        raise ConfigError(f"config key 'model.architecture': conv needs image-shaped data, and these "
                          f"{data_info['n_features']} features have no image shape; set "
                          "data.image_shape: [height, width] or use architecture: mlp")
    return Autoencoder(data_info["n_features"], section.widths(), section.architecture,
                       section.activation, section.reconstruction, section.tied, shape,
                       section.kernel_size, generator)


CURVE_GROUPS = {
    "reconstruction loss (per example, clean inputs)": ["train_reconstruction_loss",
                                                        "val_reconstruction_loss"],
    "training loss (corrupted inputs, with penalty)": ["loss"],
    "learning rate": ["lr"],
}


class AutoencoderTask(Task):
    """Autoencoders trained on the reconstruction loss, whole or layer by layer."""

    summary_keys = ("loss", "train_reconstruction_loss", "val_reconstruction_loss", "seconds")
    proxy_name = "reconstruction loss (fixed corruption)"

    def __init__(self, config, data: Dataset, device: torch.device):
        super().__init__(config, data, device)
        n = config.train.metrics_examples
        self.monitor = {"train": self.train_x[:n], "val": data.validation[:n].to(device)}
        # the range test's proxy corrupts its probe the same way at every call
        self._proxy = self.objective(1 if config.model.stacked else None, "lr-find.proxy-corruption")
        self._proxy_state = self._proxy.generator.get_state()

    def objective(self, depth: int | None, purpose: str) -> Reconstruction:
        """The loss of layer ``depth`` (None: the whole network), its corruption drawn
        from a generator of its own ``purpose``."""
        cfg = self.config.model
        return Reconstruction(cfg.corruption, cfg.corruption_level,
                              make_generator(self.config.seed, purpose, self.device),
                              cfg.sparsity_target, cfg.sparsity_weight, depth)

    def stages(self, model: Autoencoder) -> list[Stage]:
        cfg = self.config.model
        epochs = self.config.train.epochs

        def step(depth: int | None, stage_epochs: int, purpose: str) -> TrainStep:
            for index, layer in enumerate(model.layers, 1):  # a greedy stage fits its layer alone
                layer.requires_grad_(depth is None or index == depth)
            return self.gradient_step(model, self.objective(depth, purpose), stage_epochs)

        if not cfg.stacked:
            return [Stage("train", epochs, lambda: step(None, epochs, "train.corruption"))]
        stages = [Stage(f"layer{depth}", epochs,
                        lambda depth=depth: step(depth, epochs, f"train.corruption.layer{depth}"),
                        prepare=self._codes_below(model, depth))
                  for depth in range(1, model.depth + 1)]
        if cfg.joint_epochs:
            stages.append(Stage("joint", cfg.joint_epochs,
                                lambda: step(None, cfg.joint_epochs, "train.corruption.joint")))
        return stages

    @staticmethod
    def _codes_below(model: Autoencoder, depth: int):
        """Layer ``depth``'s training input: the codes of the (trained, fixed) layers below."""
        if depth == 1:
            return None

        def prepare(batch: Tensor) -> Tensor:
            with torch.no_grad():
                return model.encode(batch, depth - 1)

        return prepare

    @torch.no_grad()
    def reconstruction_metrics(self, model: Autoencoder, depth: int) -> dict[str, float]:
        """Mean reconstruction loss of clean monitoring inputs through layers 1..``depth``."""
        return {f"{name}_reconstruction_loss": mean_loss(model, x, depth)
                for name, x in self.monitor.items() if len(x)}

    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Through the layers trained by the end of ``epoch`` (1-based, over the run): in a
        greedy stack, those up to the current stage's layer."""
        depth = model.depth
        if self.config.model.stacked:
            depth = min(depth, math.ceil(epoch / self.config.train.epochs))
        return self.reconstruction_metrics(model, depth)

    # ---------------------------------------------------------------- range test

    def proxy_loss(self, model: nn.Module, batch: Tensor) -> Tensor:
        """The first stage's loss on ``batch``, with the same corruption at every call."""
        self._proxy.generator.set_state(self._proxy_state)
        return self._proxy.loss(model, batch)

    def probe(self, n: int) -> Tensor:
        """``n`` validation examples, else training examples (whatever the monitoring)."""
        return (self.data.validation[:n].to(self.device) if len(self.data.validation)
                else self.train_x[:n])

    # ---------------------------------------------------------------- outputs

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, *, seed: int = 0,
                 progress: bool = False) -> tuple[dict[str, Any], str]:
        """The clean reconstruction loss per example on ``split``, with its standard error."""
        model.eval()
        losses = per_example_loss(model, self.split(split).to(self.device), model.depth)
        n = len(losses)
        mean = losses.mean().item()
        stderr = losses.std().item() / n**0.5 if n > 1 else float("nan")
        unit = "nats (cross-entropy)" if model.reconstruction == "bernoulli" else "(half squared error)"
        results = {"examples": n, "reconstruction": model.reconstruction, "reconstruction_loss": mean,
                   "reconstruction_loss_stderr": stderr}
        report = (f"{split} split, {n} examples\nreconstruction loss  {mean:.4f} +- {stderr:.4f} s.e. "
                  f"per example, {unit}")
        return results, report

    @torch.no_grad()
    def write_figures(self, out: Path, model: nn.Module, history: list[dict], n: int = 20) -> None:
        """``reconstructions.png`` (inputs, corrupted inputs, reconstructions), ``filters.png``
        (the first layer's weights) and ``curves.png``."""
        from .. import plots

        model.eval()
        x = self.probe(n)
        cfg = self.config.model
        rows = [("inputs", x)]
        if cfg.corruption != "none" and cfg.corruption_level > 0:
            noisy = corrupt(x, cfg.corruption, cfg.corruption_level,
                            make_generator(self.config.seed, "figures", self.device))
            rows.append((f"{cfg.corruption} corruption {cfg.corruption_level:g}", noisy))
            x = noisy
        rows.append(("reconstructions", model(x)))
        plots.save_reconstructions(
            [(label, plots.to_pixels(t.float().cpu(), self.data.feature_mean, self.data.feature_std).numpy())
             for label, t in rows], self.data.image_shape, out / "reconstructions.png", title=out.name)
        filters = model.first_filters().float().cpu().numpy()
        shape = self.data.image_shape if cfg.architecture == "mlp" else (cfg.kernel_size,) * 2
        plots.save_filters(filters, shape, out / "filters.png", title="first-layer weights",
                           what="units" if cfg.architecture == "mlp" else "channels")
        plots.save_curves(history, out / "curves.png", CURVE_GROUPS, title=out.name)


def per_example_loss(model: Autoencoder, x: Tensor, depth: int) -> Tensor:
    """Clean reconstruction loss of each row of ``x`` through layers 1..``depth``, in chunks."""
    return torch.cat([model.reconstruction_loss(chunk, depth) for chunk in x.split(4096)])


def mean_loss(model: Autoencoder, x: Tensor, depth: int) -> float:
    return per_example_loss(model, x, depth).mean().item()


AUTOENCODER_FAMILY = register(Family(
    name="autoencoder",
    description="autoencoder: dense or convolutional, denoising or sparse, stacked (seeds an MLP)",
    section=AutoencoderSection,
    build=build_autoencoder,
    task=AutoencoderTask,
    metrics=split_metrics(reconstruction_loss="minimize"),
    # not generative: nothing to sample from (no prior over codes); seeds an MLP when dense
    capabilities=Capabilities(evaluate=True, seeds_mlp=True),
    unit_interval=lambda section: section.reconstruction == "bernoulli",
    figures=("reconstructions.png", "filters.png", "curves.png"),
    presets=("ae-digits", "sda-mnist"),
    default_metric="val_reconstruction_loss",
    # Vincent et al. train on grey levels with the cross-entropy; binarizing loses detail
    data_defaults={"binarize": "none"},
))
