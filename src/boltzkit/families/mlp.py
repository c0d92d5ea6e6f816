"""Multilayer perceptron classifiers (``model.type: mlp``) with the classic fast-training
knobs (initialisation, activation, batch normalisation, dropout) and a first layer that
can start from a trained RBM or stack (``pretrained``); from a two-layer DBM, optionally
with the mean-field posterior of its top layer as an extra input (``pretrained_input``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor, nn

from ..data import Dataset
from ..errors import ConfigError, DataError
from ..models.mlp import MLP
from ..objectives.supervised import CrossEntropy
from .contract import Capabilities, Family, ModelSection
from .registry import get_family, register
from .task import Task, check_pretrained_unchanged

if TYPE_CHECKING:
    from ..train.run_dir import TrainedRun


class MLPSection(ModelSection):
    type: Literal["mlp"] = "mlp"
    hidden_layers: list[int] = Field(default_factory=lambda: [256])
    activation: Literal["relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid"] = "relu"
    init: Literal["he", "glorot", "lecun", "normal", "small"] = "he"
    """``normal`` (N(0, 1)) and ``small`` (U(-0.05, 0.05)) are the naive schemes, for comparison."""
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    input_dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout probability on the input features (Srivastava et al. 2014 used 0.2 on MNIST's
    pixels, with ``dropout: 0.5`` on the hidden units)."""
    pretrained: str | None = None
    """A run directory (of a family that can seed an MLP, e.g. an RBM) whose weights
    initialise the first layer."""
    freeze_pretrained: bool = False
    pretrained_input: Literal["plain", "augmented"] = "plain"
    """``augmented``: the classifier of Salakhutdinov & Hinton (2009): the inputs are ``[x,
    q(h_2 | x)]``, the pretrained DBM's mean-field posterior of its top layer appended once
    to every example; the saved MLP then expects such inputs (:func:`input_features`)."""

    @model_validator(mode="after")
    def _augmented_needs_a_source(self) -> MLPSection:
        if self.pretrained_input == "augmented" and not self.pretrained:
            raise ValueError("model.pretrained_input: augmented needs model.pretrained (the run "
                             "directory of a DBM with two hidden layers); accepted without it: plain")
        return self

    @field_validator("hidden_layers")
    @classmethod
    def _positive_widths(cls, value: list[int]) -> list[int]:
        if any(width < 1 for width in value):
            raise ValueError(f"hidden layer widths must be >= 1, got {value}")
        return value


def build_mlp(section: MLPSection, data_info: Mapping[str, Any], generator: torch.Generator) -> MLP:
    return MLP(data_info["n_features"], section.hidden_layers, data_info["n_classes"],
               section.activation, section.init, section.batch_norm, section.dropout, generator,
               input_dropout=section.input_dropout)


class ClassifierTask(Task):
    """Classifiers trained by cross-entropy on labelled data."""

    summary_keys = ("loss", "val_loss", "val_accuracy", "seconds")

    def __init__(self, config, data: Dataset, device: torch.device):
        self._source = None  # the run of model.pretrained, loaded once
        self.raw_features = data.n_features  # before any augmentation: what the filters show
        self._pretrained_digest: str | None = None  # set by _augmented: the DBM's weights
        if config.model.pretrained_input == "augmented":
            data = self._augmented(config, data, device)
        super().__init__(config, data, device)
        if data.train_labels is None:
            raise DataError(
                f"{data.source or data.name}: model.type {config.model.type!r} needs labels and this "
                "data set has none (csv: set data.label_column; npz: add y or y_train)"
            )
        self.train_y = data.train_labels.to(device)
        n = config.train.metrics_examples
        self.monitor = {
            "train": (self.train_x[:n], self.train_y[:n]),
            # the whole validation set, unless monitoring is off (metrics_examples: 0)
            "val": (data.validation[: len(data.validation) if n else 0].to(device),
                    data.validation_labels[: len(data.validation) if n else 0].to(device)),
        }

    def _pretrained_source(self, config, device: torch.device):
        """The run of ``model.pretrained``, loaded once."""
        if self._source is None:
            self._source = load_pretrained_source(config.model.pretrained, device)
        return self._source

    def _augmented(self, config, data: Dataset, device: torch.device) -> Dataset:
        """``data`` with every split's features ``x`` replaced by ``[x, q(h_2 | x)]``, computed
        once: the inputs stay fixed during fine-tuning, as in Salakhutdinov & Hinton (2009)."""
        if data.dynamic:
            raise ConfigError("config key 'data.binarize': dynamic resamples the images every batch, and "
                              "model.pretrained_input: augmented computes each image's extra input once; "
                              "accepted with it: none, threshold, stochastic")
        if data.feature_mean is not None:
            raise ConfigError("config key 'data.standardize': true with model.pretrained_input: augmented; "
                              "the DBM reads features in [0, 1]; accepted with it: false")
        source = self._pretrained_source(config, device)
        model = source.model
        if not hasattr(model, "input_features"):
            raise DataError(f"{config.model.pretrained}: model.pretrained_input 'augmented' needs a "
                            f"pretrained run whose model computes extra input features (a DBM with two "
                            f"hidden layers); it holds a model.type {source.config.model.type!r}, for which "
                            "the accepted value is 'plain'")
        if source.n_features != data.n_features:
            raise DataError(f"{config.model.pretrained}: its model reads {source.n_features} features and "
                            f"the data have {data.n_features}")
        try:
            splits = {name: augment(model, getattr(data, name))
                      for name in ("train", "validation", "test") if getattr(data, name) is not None}
        except ValueError as err:
            raise DataError(f"{config.model.pretrained}: {err}") from None
        self._pretrained_digest = weights_digest(model)  # of the model that computed the inputs
        return dataclasses.replace(data, **splits)

    @property
    def data_info(self) -> dict[str, Any]:
        """Adds ``n_classes`` and, for ``pretrained_input: augmented``, the SHA-256 of the
        DBM that computed the extra inputs (``pretrained_sha256``): a later evaluation
        refuses a DBM that has changed since (:func:`~.task.check_pretrained_unchanged`)."""
        labels = [self.data.train_labels, self.data.validation_labels, self.data.test_labels]
        n_classes = int(max(int(t.max()) for t in labels if t is not None and len(t))) + 1
        info = {**super().data_info, "n_classes": n_classes}
        if self._pretrained_digest is not None:
            info["pretrained_sha256"] = self._pretrained_digest
        return info

    def build_model(self) -> nn.Module:
        model = super().build_model()
        cfg = self.config.model
        if cfg.pretrained:
            source = self._pretrained_source(self.config, self.device)
            if not get_family(source.config.model.type).capabilities.seeds_mlp:
                raise DataError(f"{cfg.pretrained}: model.pretrained must be a run of a family that can "
                                f"seed an MLP (an RBM or a stack); it holds a model.type "
                                f"{source.config.model.type!r}")
            # a source that names its units' activation (an autoencoder) seeds only the same one
            activation = getattr(source.model, "activation", None)
            if isinstance(activation, str) and activation != cfg.activation:
                raise DataError(f"{cfg.pretrained}: its encoder computes {activation} units, and "
                                f"model.activation is {cfg.activation!r}; seeded layers must compute "
                                f"the same function: set model.activation={activation}")
            try:
                affines = (source.model.augmented_affines() if cfg.pretrained_input == "augmented"
                           else source.model.hidden_affines())
                layers = [(weight.T, bias) for weight, bias in affines]
                model.load_pretrained_layers(layers, freeze=cfg.freeze_pretrained)
            except ValueError as err:
                raise DataError(f"{cfg.pretrained}: {err}") from None
        return model

    def build_objective(self) -> CrossEntropy:
        return CrossEntropy()

    def batch(self, rows: Tensor, data_rng: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.train_x[rows], self.train_y[rows]

    def proxy_loss(self, model: nn.Module, batch) -> Tensor:
        return CrossEntropy().loss(model, batch)

    def probe(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` validation examples, else training examples (whatever the monitoring)."""
        data = self.data
        if len(data.validation):
            return data.validation[:n].to(self.device), data.validation_labels[:n].to(self.device)
        return self.train_x[:n], self.train_y[:n]

    @torch.no_grad()
    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        metrics = {}
        for name, (x, y) in self.monitor.items():
            if len(x) == 0:
                continue
            loss, accuracy = classification_metrics(model, x, y)
            metrics["train_loss_eval" if name == "train" else "val_loss"] = loss
            metrics[f"{name}_accuracy"] = accuracy
        return metrics

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, *, seed: int = 0,
                 progress: bool = False) -> tuple[dict[str, Any], str]:
        """Cross-entropy and accuracy on ``split``."""
        labels = {"train": self.data.train_labels, "validation": self.data.validation_labels,
                  "test": self.data.test_labels}[split]
        x = self.split(split)
        if labels is None:
            raise DataError(f"evaluate: the {split} split of {self.data.source or self.data.name} has no "
                            "labels, and a classifier is evaluated against them; choose another --split")
        model.eval()
        loss, accuracy = classification_metrics(model, x.to(self.device), labels.to(self.device))
        results = {"examples": len(x), "loss": loss, "accuracy": accuracy,
                   "accuracy_stderr": (accuracy * (1 - accuracy) / len(x)) ** 0.5}
        report = (f"{split} split, {len(x)} examples\ncross-entropy  {loss:.4f} nats\n"
                  f"accuracy       {accuracy:.4f} (+- {results['accuracy_stderr']:.4f} s.e.)")
        return results, report

    def write_figures(self, out: Path, model: nn.Module, history: list[dict]) -> None:
        from .. import plots

        plots.save_curves(history, out / "curves.png", {
            "loss": ["loss", "train_loss_eval", "val_loss"],
            "accuracy": ["train_accuracy", "val_accuracy"],
            "learning rate": ["lr"],
        }, title=out.name)
        if self.data.image_shape is not None:
            # the image's columns only (an augmented input appends the DBM's posterior)
            weight = model.first_linear().weight.detach()[:, : self.raw_features]
            plots.save_filters(weight.cpu().numpy(), self.data.image_shape,
                               out / "filters.png", title="first-layer weights")


def classification_metrics(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in chunks of 4096."""
    logits = torch.cat([model(chunk) for chunk in x.split(4096)])
    return F.cross_entropy(logits, y).item(), (logits.argmax(dim=1) == y).float().mean().item()


def load_pretrained_source(path: str, device: torch.device):
    """The :class:`~boltzkit.train.run_dir.TrainedRun` of ``model.pretrained`` on ``device``."""
    # a run of another family: read through the run-directory layer (an arrow upward,
    # taken only at build time and only for this option)
    from ..train.run_dir import load_run_model

    source = load_run_model(path, device)
    source.model.eval()
    return source


@torch.no_grad()
def augment(model: nn.Module, x: Tensor, chunk: int = 4096) -> Tensor:
    """``[x, model.input_features(x)]``, ``(N, D + E)``, on ``x``'s device, in chunks of
    ``chunk`` rows (a row's features do not depend on its chunk)."""
    where = next(model.parameters()).device
    extra = torch.cat([model.input_features(part.to(where)).to(x) for part in x.split(chunk)])
    return torch.cat([x, extra], dim=1)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of ``model``'s state dict (names, dtypes, shapes and bytes)."""
    from ..train.checkpoint import checksum  # the run-directory layer, as load_pretrained_source

    return checksum(model.state_dict())


def input_features(run: TrainedRun | str | Path, x: Tensor) -> Tensor:
    """The inputs that the MLP of ``run`` (a run directory or a loaded ``TrainedRun``) reads
    for features ``x`` ``(N, D)``: ``x`` itself, or ``[x, q(h_2 | x)]`` ``(N, D + n_2)`` when the run
    was trained with ``model.pretrained_input: augmented`` (its pretrained DBM, read from
    ``model.pretrained``, must still be there).

    >>> run = boltzkit.load("runs/classifier")
    >>> logits = run.model(input_features(run, x))
    """
    if not hasattr(run, "config"):
        from ..train.run_dir import load_run_model

        run = load_run_model(run)
    section = run.config.model
    if section.type != "mlp" or section.pretrained_input == "plain":
        return x
    source = load_pretrained_source(section.pretrained, x.device).model
    check_pretrained_unchanged(run.data_info, weights_digest(source), section.pretrained)
    return augment(source, x)


MLP_FAMILY = register(Family(
    name="mlp",
    description="multilayer perceptron classifier (optionally seeded by a trained RBM)",
    section=MLPSection,
    build=build_mlp,
    task=ClassifierTask,
    metrics={"val_loss": "minimize", "train_loss_eval": "minimize", "train_accuracy": "maximize",
             "val_accuracy": "maximize"},
    capabilities=Capabilities(evaluate=True),
    figures=("curves.png", "filters.png"),
    presets=("mlp-digits",),
    default_metric="val_accuracy",
    # binarized digits cost an MLP accuracy (0.833 against 0.947 with grey values)
    data_defaults={"binarize": "none"},
))
