"""A family's training task: what the trainer needs to know about a family, given data.

A task builds the model, cuts batches, declares the stages and their train steps,
computes the per-epoch metrics, gives the learning-rate range test a loss to watch and
draws the run's figures. The training loop (``boltzkit.train.fit``) is the same for
every family.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .. import onednn
from ..data import Dataset
from ..errors import ConfigError, DataError
from ..objectives.base import Objective
from ..optim.optimizers import clip_gradients, make_optimizer
from ..optim.schedules import REACTIVE, make_schedule
from ..precision import bfloat16_shortfall
from ..seeding import make_generator
from .steps import GradientStep, Stage

if TYPE_CHECKING:
    from .contract import Family


PRODUCT_DEFAULTS = {"product_dtype": "float32", "product_kernel": "auto"}
"""The ``train`` keys that choose how a closed-form update multiplies, with their defaults."""
PRODUCT_ANYWHERE = {"product_dtype": {"float32"}, "product_kernel": {"auto", "torch"}}
"""The values of those keys that every family accepts (they ask for nothing special)."""
PRODUCT_FAMILIES = {
    "product_dtype": "the closed-form gradient of model.type rbm or dbn (train.gradient closed_form or auto)",
    "product_kernel": "the closed-form gradient of model.type rbm, dbn or dbm (train.gradient closed_form or "
                      "auto), or dense layers (nn.Linear, in any mlp, autoencoder, vae or gan, "
                      "convolutional ones included)"}
"""What the other values need, for the error that refuses them elsewhere."""


def without_closed_form(train_config, **update):
    """``train_config`` for a stage whose objective has no closed form (DBN up-down, DBM
    greedy pretraining): autograd and the default products, since ``train.gradient`` and
    the product keys are meant for the run's other stages and must not stop it here;
    ``update`` sets further keys."""
    return train_config.model_copy(update={"gradient": "autograd", **PRODUCT_DEFAULTS, **update})


def set_products(objective: Objective, model: nn.Module, train_config, closed_form: bool, family: str,
                 device: torch.device) -> None:
    """Give ``objective`` the ``train.product_dtype`` and ``train.product_kernel`` of
    ``train_config`` (``auto``: oneDNN where the objective honours the key and
    :func:`boltzkit.onednn.resolve` picks it for ``device``, else torch). The closed form
    honours the keys of the objective's
    :meth:`~boltzkit.objectives.base.Objective.product_keys`; an autograd step honours the
    kernel where ``model`` has ``nn.Linear`` layers (:class:`boltzkit.onednn.LinearLayers`).
    A :class:`ConfigError` naming the key where a value that not every family accepts
    cannot apply (not honoured here; oneDNN off the CPU or missing), and a warning where
    ``device`` lacks bfloat16 hardware."""
    if closed_form:
        keys = objective.product_keys(model)
    else:
        keys = frozenset({"product_kernel"}) if onednn.has_linear_layers(model) else frozenset()
    for key, anywhere in PRODUCT_ANYWHERE.items():
        value = getattr(train_config, key)
        if value not in anywhere and key not in keys:
            raise ConfigError(f"config key 'train.{key}': {value} needs {PRODUCT_FAMILIES[key]}; "
                              f"model.type {family!r} here has none; accepted here: "
                              f"{', '.join(sorted(anywhere))}")
    dtype, kernel = train_config.product_dtype, train_config.product_kernel
    if dtype != "float32":
        shortfall = bfloat16_shortfall(device)
        if shortfall is not None:
            warnings.warn(f"train.product_dtype: {dtype}: {shortfall}", stacklevel=2)
        objective.product_dtype = getattr(torch, dtype)
    if "product_kernel" not in keys:
        kernel = "torch"  # auto, or torch: nothing here could multiply in oneDNN
    objective.product_kernel = onednn.resolve(kernel, device, "train.product_kernel")


class Task:
    """The base task; a family subclasses it and sets ``family``.

    Args:
        config: the validated run config (``model`` is the family's section).
        data: the loaded data set.
        device: where the model and batches live.
    """

    family: Family
    summary_keys: tuple[str, ...] = ("loss", "seconds")
    """Metrics shown in the per-epoch progress line."""
    proxy_name = "loss"
    """What :meth:`proxy_loss` measures (the range test's axis label)."""
    range_test_iterations = 100
    range_test_caveat: str = ""
    """Where the range test is known to mislead for this family: ``lr-find`` prints it and
    reports its confidence as low, whatever the curve looks like."""

    def __init__(self, config, data: Dataset, device: torch.device):
        self.config, self.data, self.device = config, data, device
        self.train_x = data.train.to(device)
        # resolved once, here: a setting the device cannot run fails before training (and
        # before --overwrite deletes a run), not at the first evaluation
        self.eval_kernel = onednn.resolve(config.eval.product_kernel, device, "eval.product_kernel")
        """``eval.product_kernel`` for this task's device (:func:`boltzkit.onednn.resolve`):
        who multiplies in AIS and mean field during evaluation."""

    # ---------------------------------------------------------------- model and data

    @property
    def data_info(self) -> dict[str, Any]:
        """What rebuilding the model needs besides the config (saved beside the weights);
        with ``data.standardize`` also the removed ``feature_mean`` and ``feature_std``, which
        figures, samples and sample quality need to map features back to data units."""
        info = {"n_features": self.data.n_features,
                "image_shape": list(self.data.image_shape) if self.data.image_shape else None}
        if self.data.feature_mean is not None:
            info["feature_mean"] = self.data.feature_mean.tolist()
            info["feature_std"] = self.data.feature_std.tolist()
        return info

    def build_model(self) -> nn.Module:
        generator = make_generator(self.config.seed, "model.init")
        return self.family.build(self.config.model, self.data_info, generator).to(self.device)

    def n_examples(self) -> int:
        return len(self.train_x)

    def steps_per_epoch(self) -> int:
        return math.ceil(self.n_examples() / self.config.train.batch_size)

    def batch(self, rows: Tensor, data_rng: torch.Generator) -> Any:
        """The training batch of the examples ``rows``, binarized afresh from ``data_rng``
        with ``data.binarize: dynamic``."""
        # index_select: 3x faster than advanced indexing for whole rows, same result
        return self.data.binarize_batch(self.train_x.index_select(0, rows.to(self.train_x.device)), data_rng)

    # ---------------------------------------------------------------- training

    def build_objective(self) -> Objective:
        raise NotImplementedError(f"{type(self).__name__} has no objective: override stages()")

    def stages(self, model: nn.Module) -> list[Stage]:
        """The run's stages; default: one stage of ``train.epochs`` with a :meth:`gradient_step`."""
        epochs = self.config.train.epochs
        return [Stage("train", epochs, lambda: self.gradient_step(model, self.build_objective(), epochs))]

    def gradient_step(self, model: nn.Module, objective: Objective, epochs: int,
                      train_config=None, updates: int | None = None) -> GradientStep:
        """``objective`` with the optimizer, schedule and clipping of ``train_config``
        (default: the run's ``train`` section), the schedule spanning ``epochs`` (a per-step
        schedule: ``updates``, default ``epochs`` x steps per epoch, for a step that does
        not update on every batch)."""
        cfg = train_config or self.config.train
        schedule_params = cfg.schedule.params()
        if cfg.schedule.name in REACTIVE:  # it watches a metric: one this family logs, per epoch
            metric = schedule_params.get("metric", "val_loss")
            if not self.family.logs(metric) or cfg.schedule.unit != "epoch":
                examples = sorted(m for m in self.family.metrics if self.family.direction(m))[:4]
                raise ConfigError(
                    f"config key 'train.schedule': {cfg.schedule.name} watches {metric!r} after each "
                    f"epoch; it needs unit: epoch and a metric that model.type {self.family.name!r} "
                    f"logs, e.g. {', '.join(examples)}")
        optimizer = make_optimizer(model, cfg.optimizer)
        total = epochs if cfg.schedule.unit == "epoch" else updates or epochs * self.steps_per_epoch()
        schedule = make_schedule(optimizer, cfg.schedule.name, total, cfg.schedule.unit,
                                 direction=self.family.direction, **schedule_params)
        closed_form = cfg.gradient == "closed_form" or (cfg.gradient == "auto" and
                                                         objective.has_closed_form(model))
        if closed_form and not objective.has_closed_form(model):
            raise ConfigError(f"config key 'train.gradient': closed_form is not available for this "
                              f"model.type {self.family.name!r} model; use autograd or auto")
        set_products(objective, model, cfg, closed_form, self.family.name, self.device)
        return GradientStep(objective, optimizer, schedule, partial(clip_gradients, train_config=cfg),
                            closed_form, log_grad_norms=self.config.train.log_grad_norms)

    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Metrics after ``epoch`` (1-based) on fixed monitoring subsets."""
        return {}

    # ---------------------------------------------------------------- range test

    def proxy_loss(self, model: nn.Module, batch: Any) -> Tensor:
        """The loss the learning-rate range test records for ``batch``."""
        raise NotImplementedError

    def probe(self, n: int) -> Any:
        """A fixed batch of ``n`` held-out examples (validation, else training data)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- outputs

    def write_figures(self, out: Path, model: nn.Module, history: list[dict]) -> None:
        """The family's figures (``family.figures``) into the folder ``out``."""
        from .. import plots

        plots.save_curves(history, out / "curves.png", {"loss": ["loss"], "learning rate": ["lr"]},
                          title=out.name)

    def epoch_figures(self, out: Path, model: nn.Module, epoch: int) -> None:
        """Figures drawn into the run folder ``out`` after every epoch (default: none)."""

    def split(self, name: str) -> Tensor:
        """The features of split ``name`` (a :class:`DataError` if the data set has none)."""
        try:
            return self.data.split(name)
        except ValueError as err:
            raise DataError(f"{err}; choose another --split") from None

    def evaluate(self, model: nn.Module, split: str, *, seed: int = 0, progress: bool = False,
                 **options: Any) -> tuple[dict[str, Any], str]:
        """``boltzkit evaluate``: results (JSON-ready) and a table, for families whose
        ``capabilities.evaluate`` is set."""
        raise NotImplementedError(f"model.type {self.family.name!r} has no evaluation")


class LabelledBatches:
    """A task mixin for ``model.labels: true`` (listed before the task base class): the
    batches are rows ``[x, onehot(y)]`` ``(B, D + C)``, and ``data_info`` carries
    ``n_classes`` (the largest label of any split, plus one). The subclass calls
    :meth:`use_labels` in its ``__init__``, after the base class's."""

    labels = False

    def use_labels(self, enabled: bool) -> None:
        """Read the training labels (a :class:`DataError` naming ``model.labels`` without)."""
        self.labels = enabled
        if enabled:
            self.train_y = self.data.require_labels("model.labels").to(self.device)
            self.n_classes = self.data.n_classes

    def label_frequencies(self) -> Tensor:
        """The training labels' class frequencies ``(C,)``, float64."""
        return torch.bincount(self.train_y, minlength=self.n_classes).double().div(len(self.train_y))

    @property
    def data_info(self) -> dict[str, Any]:
        info = super().data_info
        if self.labels:
            info["n_classes"] = self.n_classes
        return info

    def batch(self, rows: Tensor, data_rng: torch.Generator) -> Tensor:
        x = super().batch(rows, data_rng)
        if not self.labels:
            return x
        return torch.cat([x, torch.nn.functional.one_hot(self.train_y[rows], self.n_classes).to(x)], dim=1)


def check_pretrained_unchanged(recorded: Mapping[str, Any], digest: str | None, path: str) -> None:
    """Raise :class:`DataError` when the digest of the pretrained model at ``path`` (now)
    differs from ``recorded["pretrained_sha256"]`` (saved with the run's weights; absent:
    nothing to check). A model whose inputs a pretrained model computes (an augmented
    classifier reads ``[x, q(h_2 | x)]``) would otherwise change its predictions without a
    word when that run is retrained."""
    expected = recorded.get("pretrained_sha256")
    if expected is None or digest == expected:
        return
    raise DataError(f"{path}: this pretrained model has changed since the run that reads it was trained "
                    f"(weights SHA-256 {str(digest)[:12]}..., recorded {expected[:12]}...); restore that "
                    "run or train again from it")
