"""Restricted Boltzmann machines (``model.type: rbm``): Bernoulli, Gaussian or categorical
units on either layer, optionally centered; trained by CD-k, PCD-k or PT-k; exact and
AIS likelihoods; samples, filters and likelihood curves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from ..data import Dataset
from ..errors import DataError
from ..estimate.evaluate import binary_view, evaluate_rbm, format_report
from ..estimate.monitor import likelihood_metrics, rbm_metrics
from ..estimate.pseudo_likelihood import pseudo_log_likelihood
from ..models.rbm import RBM
from ..objectives.free_energy_gap import FreeEnergyGap
from ..sampling.draw import draw_samples
from ..sampling.gibbs import ContrastiveChains, PersistentChains
from ..sampling.negative import NegativeSampler
from ..sampling.tempering import ParallelTempering, temperature_ladder
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .monitoring import monitor_sets  # re-exported: older imports read it from here
from .registry import register
from .task import Task

UnitName = Literal["bernoulli", "gaussian", "categorical"]


class RBMSection(ModelSection):
    type: Literal["rbm"] = "rbm"
    n_hidden: int = Field(64, ge=1)
    visible: UnitName = "bernoulli"
    hidden: UnitName = "bernoulli"
    init_std: float = Field(0.01, ge=0, le=100)
    categories: int = Field(2, ge=2, le=10_000)
    """States per group of categorical units (the alphabet size)."""
    learn_variance: bool = True
    """Gaussian units: learn each unit's standard deviation (else it stays 1)."""
    centered: bool = False
    offset_rate: float = Field(0.01, gt=0, le=1)
    """Centering: how fast the offsets follow the batch means (a sliding average)."""


def unit_options(section, family: str) -> dict[str, Any]:
    """Keyword options of a unit family from the ``model`` section."""
    if family == "categorical":
        return {"k": section.categories}
    if family == "gaussian":
        return {"learn_variance": section.learn_variance}
    return {}


def build_rbm(section: RBMSection, data_info: Mapping[str, Any], generator: torch.Generator) -> RBM:
    return RBM(data_info["n_features"], section.n_hidden, section.visible, section.hidden,
               section.init_std, generator, centered=section.centered,
               visible_options=unit_options(section, section.visible),
               hidden_options=unit_options(section, section.hidden))


def negative_sampler(train_config, generator: torch.Generator) -> NegativeSampler:
    """The negative phase ``train.method`` names: ``cd``, ``pcd`` or ``pt``."""
    cfg = train_config
    if cfg.method == "cd":
        return ContrastiveChains(cfg.k, generator)
    n_chains = cfg.n_chains or cfg.batch_size
    if cfg.method == "pt":
        pt = cfg.pt
        betas = (torch.tensor(pt.betas, dtype=torch.float64) if pt.betas is not None
                 else temperature_ladder(pt.temperatures, pt.min_beta, pt.ladder))
        return ParallelTempering(betas, n_chains, generator, rounds=cfg.k)
    return PersistentChains(n_chains, generator, steps=cfg.k)


CURVE_GROUPS = {
    "log-likelihood (nats)": ["train_log_likelihood", "val_log_likelihood",
                              "train_ais_log_likelihood", "val_ais_log_likelihood"],
    "pseudo-log-likelihood (nats)": ["train_pseudo_log_likelihood", "val_pseudo_log_likelihood"],
    "reconstruction error": ["train_recon_error", "val_recon_error"],
    "free energy": ["train_free_energy", "val_free_energy"],
    "free-energy gap (val - train)": ["free_energy_gap"],
    "surrogate loss": ["loss"],
    "learning rate": ["lr"],
}


class GenerativeTask(Task):
    """Boltzmann machines: biases from the data, binarized batches, fixed monitoring sets."""

    def __init__(self, config, data: Dataset, device: torch.device):
        super().__init__(config, data, device)
        # likelihoods are defined on binary vectors: binarize grey levels for binary units
        self.binarize_monitors = getattr(config.model, "visible", "bernoulli") == "bernoulli"
        self.monitor_train, self.monitor_val = monitor_sets(
            data, config.train.metrics_examples, config.seed, device, self.binarize_monitors)
        # the range test's proxy draws the same units every call (see pseudo_likelihood_proxy)
        self._proxy_generator = make_generator(config.seed, "lr-find.proxy-units", device)
        self._proxy_state = self._proxy_generator.get_state()

    def pseudo_likelihood_proxy(self, rbm: RBM, batch: Tensor) -> Tensor:
        """Negative pseudo-log-likelihood of ``rbm`` per example, the range test's proxy for
        RBM layers (a CD surrogate's value is no loss to minimise). At most 64 units per
        example are drawn, the same ones every call: unbiased, cheap on MNIST and free of
        call-to-call noise."""
        units = min(64, batch.shape[1])
        self._proxy_generator.set_state(self._proxy_state)
        return -pseudo_log_likelihood(rbm, batch, n_units=units, generator=self._proxy_generator).mean()

    def build_model(self) -> nn.Module:
        model = super().build_model()
        model.init_from_data(self.data.train.mean(dim=0).to(self.device))
        return model

    def probe(self, n: int) -> Tensor:
        """The first ``n`` monitoring examples (validation, else training); with monitoring
        off (``train.metrics_examples: 0``) the first ``n`` of the data, binarized alike."""
        monitor = self.monitor_val if len(self.monitor_val) else self.monitor_train
        if len(monitor):
            return monitor[:n]
        train, val = monitor_sets(self.data, n, self.config.seed, self.device, self.binarize_monitors)
        return val if len(val) else train


class RBMTask(GenerativeTask):
    """Restricted Boltzmann machines trained by CD-k, PCD-k or PT-k."""

    summary_keys = ("loss", "train_recon_error", "val_pseudo_log_likelihood", "val_log_likelihood",
                    "val_ais_log_likelihood", "free_energy_gap", "seconds")
    proxy_name = "negative pseudo-log-likelihood"
    range_test_iterations = 300  # an RBM's proxy only moves after a few hundred updates
    range_test_caveat = (
        "the range test is a weak guide for RBMs: the pseudo-likelihood barely moves at small "
        "rates and first gets worse when learning starts, so every rule points too low (on "
        "digits 1.6e-3 against the best 1e-2, docs/RESULTS.md); search the rate with boltzkit "
        "tune or a short grid instead")

    def __init__(self, config, data: Dataset, device: torch.device):
        if config.model.visible == "categorical":
            check_one_hot(data, config.model.categories)
        super().__init__(config, data, device)

    def build_objective(self) -> FreeEnergyGap:
        generator = make_generator(self.config.seed, "train.sampler", self.device)
        return FreeEnergyGap(negative_sampler(self.config.train, generator), self.config.model.offset_rate)

    def proxy_loss(self, model: nn.Module, batch: Tensor) -> Tensor:
        """See :meth:`GenerativeTask.pseudo_likelihood_proxy`."""
        return self.pseudo_likelihood_proxy(model, batch)

    def epoch_metrics(self, model: nn.Module, epoch: int) -> dict[str, float]:
        metrics = rbm_metrics(model, self.monitor_train, self.monitor_val)
        evaluation = self.config.eval
        if evaluation.every and epoch % evaluation.every == 0:
            quick = evaluation.quick_ais
            metrics.update(likelihood_metrics(
                model, self.data.train, self.monitor_train, self.monitor_val, quick.runs, quick.betas,
                evaluation.exact_max_units,
                make_generator(self.config.seed, f"eval.epoch{epoch}", self.device), self.eval_kernel))
        return metrics

    def write_figures(self, out: Path, model: nn.Module, history: list[dict],
                      n_samples: int = 100, steps: int = 1000) -> None:
        """``samples.png`` (Gibbs samples), ``filters.png`` (weights) and ``curves.png``."""
        from .. import plots

        shape = self.data.image_shape
        generator = make_generator(self.config.seed, "figures", self.device)
        states, means = draw_samples(model, n_samples, steps, generator)
        plots.save_samples(model, states, means, out / "samples.png",
                           f"{n_samples} samples after {steps} Gibbs sweeps", shape,
                           self.data.feature_mean, self.data.feature_std)
        layout = ""
        if model.visible.name == "categorical" and shape is not None \
                and tuple(shape) == (model.visible.groups, model.visible.k):
            layout = " (tile rows = positions, columns = categories)"
        plots.save_filters(model.weight.detach().T.cpu().numpy(), shape, out / "filters.png",
                           title=f"weights{layout}")  # one hidden unit per tile
        plots.save_curves(history, out / "curves.png", CURVE_GROUPS, title=out.name)

    def evaluate(self, model: nn.Module, split: str, *, seed: int = 0, progress: bool = False,
                 ais_runs: int | None = None, ais_betas: int | None = None,
                 reverse_examples: int | None = None, reverse_runs: int | None = None,
                 ) -> tuple[dict[str, Any], str]:
        """Every likelihood estimate on ``split`` (see :func:`~boltzkit.estimate.evaluate_rbm`);
        settings not given come from the ``eval`` section. Returns the results and a table."""
        values = self.split(split)
        evaluation = self.config.eval
        if self.config.model.visible == "bernoulli":
            values = binary_view(values, make_generator(seed, "evaluate.binarize"))
        results = evaluate_rbm(
            model, values, self.data.train,
            ais_runs=ais_runs or evaluation.ais.runs,
            ais_betas=ais_betas or evaluation.ais.betas,
            pseudocount=evaluation.ais.pseudocount,
            reverse_examples=(evaluation.reverse_ais.examples if reverse_examples is None
                              else reverse_examples),
            reverse_runs=reverse_runs or evaluation.reverse_ais.runs,
            exact_max_units=evaluation.exact_max_units,
            seed=seed, progress=progress, product_kernel=self.eval_kernel)
        return results, format_report(results, f"{split} split, {results['examples']} examples")


def check_one_hot(data: Dataset, k: int) -> None:
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


RBM_FAMILY = register(Family(
    name="rbm",
    description="restricted Boltzmann machine (Bernoulli, Gaussian or categorical units; centering)",
    section=RBMSection,
    build=build_rbm,
    task=RBMTask,
    metrics={
        **split_metrics(recon_error="minimize", pseudo_log_likelihood="maximize", free_energy=None,
                        log_likelihood="maximize", ais_log_likelihood="maximize"),
        "free_energy_gap": "minimize",
        "exact_log_z": None,
        "ais_log_z": None,
        "ais_ess": "maximize",
        "ais_reliable": None,  # 1 when the quick multi-path AIS found no sign of trouble
        "pt_swap_rate_mean": "maximize",
        "pt_swap_rate_min": "maximize",
    },
    capabilities=Capabilities(sample=True, exact_likelihood=True, ais_likelihood=True, evaluate=True,
                              seeds_mlp=True),
    unit_interval=lambda section: section.visible != "gaussian",
    figures=("samples.png", "filters.png", "curves.png"),
    presets=("rbm-digits", "rbm-mnist", "grbm-digits", "rbm-potts"),
    sample=draw_samples,
    default_metric="val_pseudo_log_likelihood",
))
