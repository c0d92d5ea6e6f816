"""What the trainer needs to know about each model family, behind one small interface.

A task builds the model and its objective, cuts batches, computes the per-epoch metrics,
gives the learning-rate range test a loss to watch and draws the run's figures. The
trainer loop itself is the same for every family.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import plots
from ..data import Dataset
from ..errors import ConfigError, DataError
from ..estimate.ais import base_rate_bias
from ..estimate.evaluate import binary_view
from ..estimate.exact_bm import bm_log_likelihood, bm_log_partition
from ..estimate.monitor import likelihood_metrics, rbm_metrics
from ..estimate.pseudo_likelihood import pseudo_log_likelihood
from ..sampling.tempering import temperature_ladder
from ..seeding import make_generator
from .build import build_model
from .figures import CURVE_GROUPS, write_run_figures
from .objectives import (
    BoltzmannMachineLearning,
    ContrastiveDivergence,
    ParallelTemperingObjective,
    PersistentContrastiveDivergence,
)
from .objectives_supervised import CrossEntropy
from .run_dir import RunDir


def needs_unit_interval(config) -> bool:
    """Whether the data must lie in [0, 1] (binary or categorical visible units)."""
    return config.model.type in ("rbm", "bm") and config.model.visible != "gaussian"


class Task:
    """Base class; see :class:`RBMTask` and :class:`ClassifierTask`."""

    summary_keys: tuple[str, ...] = ()
    proxy_name = "loss"
    range_test_iterations = 100

    def __init__(self, config, data: Dataset, device: torch.device):
        self.config, self.data, self.device = config, data, device
        self.train_x = data.train.to(device)

    @property
    def data_info(self) -> dict[str, Any]:
        return {"n_features": self.data.n_features,
                "image_shape": list(self.data.image_shape) if self.data.image_shape else None}

    def build_model(self) -> nn.Module:
        return build_model(self.config.model, self.data_info,
                           make_generator(self.config.seed, "model.init")).to(self.device)

    def n_examples(self) -> int:
        return len(self.train_x)

    def build_objective(self):
        raise NotImplementedError

    def batch(self, rows: Tensor, data_rng: torch.Generator):
        raise NotImplementedError

    def proxy_loss(self, model: nn.Module, batch) -> Tensor:
        """The loss the learning-rate range test records for ``batch``."""
        raise NotImplementedError

    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        raise NotImplementedError

    def probe(self, n: int):
        """A fixed batch of ``n`` held-out examples (validation, else training data)."""
        raise NotImplementedError

    def write_figures(self, run: RunDir, model: nn.Module, history: list[dict]) -> None:
        plots.save_curves(history, run.file("curves.png"), CURVE_GROUPS, title=run.path.name)


class GenerativeTask(Task):
    """Boltzmann machines: biases from the data, binarized batches, fixed monitoring sets."""

    def __init__(self, config, data: Dataset, device: torch.device):
        super().__init__(config, data, device)
        self.monitor_train, self.monitor_val = _monitor_sets(
            data, config.train.metrics_examples, config.seed, device,
            binarize=config.model.visible == "bernoulli")

    def build_model(self) -> nn.Module:
        model = super().build_model()
        model.init_from_data(self.data.train.mean(dim=0).to(self.device))
        return model

    def batch(self, rows: Tensor, data_rng: torch.Generator) -> Tensor:
        return self.data.binarize_batch(self.train_x[rows], data_rng)

    def probe(self, n: int) -> Tensor:
        return (self.monitor_val if len(self.monitor_val) else self.monitor_train)[:n]


class RBMTask(GenerativeTask):
    """Restricted Boltzmann machines trained by CD-k, PCD-k or PT-k."""

    summary_keys = ("loss", "train_recon_error", "val_pseudo_log_likelihood", "val_log_likelihood",
                    "val_ais_log_likelihood", "free_energy_gap", "seconds")
    proxy_name = "negative pseudo-log-likelihood"
    range_test_iterations = 300  # an RBM's proxy only moves after a few hundred updates

    def __init__(self, config, data: Dataset, device: torch.device):
        if config.model.visible == "categorical":
            _check_one_hot(data, config.model.categories)
        super().__init__(config, data, device)
        # quick AIS starts from the training data's base rate where the units are binary,
        # from the decoupled layers otherwise (see boltzkit.estimate.ais)
        binary = config.model.visible == "bernoulli" and config.model.hidden == "bernoulli"
        self.base_bias = (base_rate_bias(data.train, config.eval.quick_ais.pseudocount).to(device)
                          if binary else None)

    @property
    def data_info(self) -> dict[str, Any]:
        info = super().data_info
        if self.data.feature_mean is not None:
            info["feature_mean"] = self.data.feature_mean.tolist()
            info["feature_std"] = self.data.feature_std.tolist()
        return info

    def build_objective(self):
        cfg = self.config.train
        generator = make_generator(self.config.seed, "train.sampler", self.device)
        rate = self.config.model.offset_rate
        if cfg.method == "cd":
            return ContrastiveDivergence(cfg.k, generator, rate)
        if cfg.method == "pt":
            pt = cfg.pt
            betas = (torch.tensor(pt.betas, dtype=torch.float64) if pt.betas is not None
                     else temperature_ladder(pt.temperatures, pt.min_beta, pt.ladder))
            return ParallelTemperingObjective(cfg.k, betas, cfg.n_chains or cfg.batch_size, generator, rate)
        return PersistentContrastiveDivergence(cfg.k, cfg.n_chains or cfg.batch_size, generator, rate)

    def proxy_loss(self, model: nn.Module, batch: Tensor) -> Tensor:
        """Negative pseudo-log-likelihood per example (the CD surrogate's value is no loss to
        minimise). At most 64 units per example are drawn, the same ones every call, which
        makes the estimate unbiased, cheap on MNIST and free of call-to-call noise."""
        units = min(64, batch.shape[1])
        generator = torch.Generator(device=batch.device).manual_seed(0)
        return -pseudo_log_likelihood(model, batch, n_units=units, generator=generator).mean()

    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        metrics = rbm_metrics(model, self.monitor_train, self.monitor_val)
        evaluation = self.config.eval
        if evaluation.every and epoch % evaluation.every == 0:
            quick = evaluation.quick_ais
            metrics.update(likelihood_metrics(
                model, self.base_bias, self.monitor_train, self.monitor_val, quick.runs, quick.betas,
                evaluation.exact_max_units,
                make_generator(self.config.seed, f"eval.epoch{epoch}", self.device)))
        return metrics

    def write_figures(self, run: RunDir, model: nn.Module, history: list[dict]) -> None:
        write_run_figures(run, model, self.data, history,
                          make_generator(self.config.seed, "figures", self.device))


class ClassifierTask(Task):
    """Classifiers (``model.type: mlp``) trained by cross-entropy on labelled data."""

    summary_keys = ("loss", "val_loss", "val_accuracy", "seconds")

    def __init__(self, config, data: Dataset, device: torch.device):
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
            "val": (data.validation.to(device), data.validation_labels.to(device)),
        }

    @property
    def data_info(self) -> dict[str, Any]:
        labels = [self.data.train_labels, self.data.validation_labels, self.data.test_labels]
        n_classes = int(max(int(t.max()) for t in labels if t is not None and len(t))) + 1
        return {**super().data_info, "n_classes": n_classes}

    def build_model(self) -> nn.Module:
        model = super().build_model()
        cfg = self.config.model
        if cfg.pretrained:
            from .run_dir import load_run_model

            source = load_run_model(cfg.pretrained).model
            if not hasattr(source, "weight") or not hasattr(source, "hidden"):
                raise DataError(f"{cfg.pretrained}: model.pretrained must be an RBM run")
            try:
                weight, bias = source.hidden_affine()  # centering and Gaussian scaling folded in
                model.load_pretrained_layer(weight.T, bias, freeze=cfg.freeze_pretrained)
            except ValueError as err:
                raise DataError(f"{cfg.pretrained}: {err}") from None
        return model

    def build_objective(self):
        return CrossEntropy()

    def batch(self, rows: Tensor, data_rng: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.train_x[rows], self.train_y[rows]

    def proxy_loss(self, model: nn.Module, batch) -> Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def probe(self, n: int) -> tuple[Tensor, Tensor]:
        x, y = self.monitor["val"] if len(self.monitor["val"][0]) else self.monitor["train"]
        return x[:n], y[:n]

    @torch.no_grad()
    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        metrics = {}
        for name, (x, y) in self.monitor.items():
            if len(x) == 0:
                continue
            logits = torch.cat([model(chunk) for chunk in x.split(4096)])
            metrics[f"{name}_loss_eval" if name == "train" else "val_loss"] = F.cross_entropy(
                logits, y).item()
            metrics[f"{name}_accuracy"] = (logits.argmax(dim=1) == y).float().mean().item()
        return metrics

    def write_figures(self, run: RunDir, model: nn.Module, history: list[dict]) -> None:
        plots.save_curves(history, run.file("curves.png"), {
            "loss": ["loss", "train_loss_eval", "val_loss"],
            "accuracy": ["train_accuracy", "val_accuracy"],
            "learning rate": ["lr"],
        }, title=run.path.name)
        if self.data.image_shape is not None:
            weights = model.first_linear().weight.detach()[:100].cpu().numpy()
            plots.save_image_grid(weights, self.data.image_shape, run.file("filters.png"),
                                  normalize=True, title="first-layer weights")


class BoltzmannMachineTask(GenerativeTask):
    """General Boltzmann machines: exact log-likelihood per epoch when small enough."""

    summary_keys = ("loss", "val_log_likelihood", "seconds")

    def __init__(self, config, data: Dataset, device: torch.device):
        super().__init__(config, data, device)
        if config.model.visible != "bernoulli" or config.model.hidden != "bernoulli":
            raise ConfigError("model.type bm has binary units: model.visible and model.hidden "
                              "must be bernoulli")
        if config.train.method not in ("pcd", "cd"):
            raise ConfigError(f"model.type bm trains with persistent chains (train.method: pcd), "
                              f"got {config.train.method!r}")

    def build_objective(self):
        cfg = self.config.train
        return BoltzmannMachineLearning(cfg.k, cfg.n_chains or cfg.batch_size, cfg.positive,
                                        cfg.positive_steps,
                                        make_generator(self.config.seed, "train.sampler", self.device))

    def proxy_loss(self, model: nn.Module, batch: Tensor) -> Tensor:
        """Negative exact log-likelihood (small machines only)."""
        return -bm_log_likelihood(model, batch).mean()

    @torch.no_grad()
    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        limit = self.config.eval.exact_max_units
        if limit and model.n_units <= limit:
            log_z = bm_log_partition(model, limit)
            metrics["exact_log_z"] = log_z
            for name, v in (("train", self.monitor_train), ("val", self.monitor_val)):
                if len(v):
                    metrics[f"{name}_log_likelihood"] = bm_log_likelihood(model, v, log_z).mean().item()
        return metrics


TASKS = {"rbm": RBMTask, "bm": BoltzmannMachineTask, "mlp": ClassifierTask}


def make_task(config, data: Dataset, device: torch.device) -> Task:
    return TASKS[config.model.type](config, data, device)


def _monitor_sets(
    data: Dataset, n: int, seed: int, device: torch.device, binarize: bool = True
) -> tuple[Tensor, Tensor]:
    """Fixed subsets of train and validation data for the per-epoch metrics; for Bernoulli
    visible units binarized once (seeded) where they are not binary: likelihoods are
    defined on binary vectors."""
    generator = make_generator(seed, "metrics.subsets")
    subsets = (data.train[:n], data.validation[:n])
    if binarize:
        subsets = tuple(binary_view(t, generator) for t in subsets)
    return subsets[0].to(device), subsets[1].to(device)


def _check_one_hot(data: Dataset, k: int) -> None:
    """Categorical visible units need one-hot groups of ``k``: every group sums to 1."""
    for name in ("train", "validation", "test"):
        x = getattr(data, name)
        if x is None or not len(x):
            continue
        if x.shape[1] % k:
            raise DataError(f"{data.source or data.name}: {x.shape[1]} features do not split into "
                            f"groups of model.categories={k}")
        groups = x.reshape(len(x), -1, k)
        binary = bool(((x == 0) | (x == 1)).all())
        if not binary or not bool((groups.sum(dim=-1) == 1).all()):
            raise DataError(f"{data.source or data.name} ({name}): categorical visible units need "
                            f"one-hot groups of {k} values (0/1, one 1 per group)")
