"""Deep Boltzmann machines (``model.type: dbm``): binary layers ``v, h_1, ..., h_L``
(``L >= 2``), optionally centered; greedy pretraining with the modified RBMs of
Salakhutdinov & Hinton, then joint training with a mean-field positive phase and
persistent (optionally tempered) chains; AIS and the variational bound for likelihoods,
exact values on tiny models; samples and first-layer filters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from ..errors import ConfigError
from ..estimate.ais import base_rate_bias
from ..estimate.dbm import (
    ais_warnings,
    data_log_z_bound,
    dbm_ais_log_partition,
    dbm_log_likelihood,
    dbm_log_partition,
    evaluate_dbm,
    format_dbm_report,
    odd_units,
    variational_bounds,
)
from ..estimate.evaluate import binary_view
from ..models.dbm import DBM
from ..objectives.dbm import DBMLearning, ModifiedRBMPretraining
from ..sampling.dbm import DBMChains, draw_dbm_samples
from ..sampling.tempering import temperature_ladder
from ..sections import OptimizerConfig, Section
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .rbm import GenerativeTask
from .registry import register
from .steps import GradientStep, Stage, TrainStep
from .task import without_closed_form


class SparsityConfig(Section):
    target: float = Field(0.1, gt=0, lt=1)
    """The hidden layers' target mean activity."""
    cost: float = Field(0.0, ge=0, le=1e4)
    """Weight of the penalty (0: off)."""
    statistic: Literal["unit", "layer"] = "unit"
    """Compare the target with each unit's mean activity, or with the layer's."""


class DBMSection(ModelSection):
    type: Literal["dbm"] = "dbm"
    layers: list[int] = Field(default_factory=lambda: [64, 32])
    """Hidden layer sizes, bottom to top (at least two)."""
    init_std: float = Field(0.01, ge=0, le=100)
    centered: bool = False
    """Centered energy (Montavon & Muller 2012): trains well without pretraining."""
    offset_rate: float = Field(0.01, gt=0, le=1)
    pretrain_epochs: int = Field(0, ge=0, le=1_000_000)
    """Epochs of greedy pretraining per layer before joint training (0: none)."""
    pretrain_optimizer: OptimizerConfig | None = None
    """The pretraining stages' optimizer (default: ``train.optimizer``); RBM pretraining
    takes larger rates than joint training, whose persistent chains need small ones."""
    mean_field_iter: int = Field(10, ge=1, le=10_000)
    """Cap on the positive phase's mean-field sweeps."""
    mean_field_tol: float = Field(1e-3, gt=0, le=1)
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)
    max_norm: float | None = Field(None, gt=0, le=1e6)
    """Cap on the norm of each hidden unit's incoming weights, applied after every update."""

    @model_validator(mode="after")
    def _valid(self) -> DBMSection:
        if len(self.layers) < 2:
            raise ValueError(f"model.layers: a DBM needs at least two hidden layers, got {self.layers} "
                             "(one hidden layer: model.type rbm)")
        if not all(1 <= n <= 100_000 for n in self.layers):
            raise ValueError(f"model.layers: every size must be between 1 and 100000, got {self.layers}")
        if self.centered and self.pretrain_epochs:
            raise ValueError("model.pretrain_epochs > 0 with model.centered: true: centered DBMs train "
                             "without pretraining (Melchior et al. 2016); choose one")
        return self


def build_dbm(section: DBMSection, data_info: Mapping[str, Any], generator: torch.Generator) -> DBM:
    return DBM([data_info["n_features"], *section.layers], section.init_std, generator, section.centered)


class MaxNormStep(GradientStep):
    """A gradient step that then rescales every hidden unit's incoming weight vector
    (a column of ``W_l``) to norm at most ``max_norm`` (Srebro & Shraibman 2005; Hinton et al.
    2012 used it with dropout)."""

    def __init__(self, *args, max_norm: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_norm = max_norm

    def __call__(self, model: DBM, batch: Tensor) -> float:
        value = super().__call__(model, batch)
        with torch.no_grad():
            for weight in model.weights:
                norms = torch.linalg.vector_norm(weight, dim=0).clamp(min=self.max_norm)
                weight.mul_(self.max_norm / norms)
        return value


CURVE_GROUPS = {
    "log-likelihood (nats)": ["train_log_likelihood", "val_log_likelihood",
                              "train_ais_log_likelihood", "val_ais_log_likelihood"],
    "reconstruction error": ["train_recon_error", "val_recon_error"],
    "mean-field sweeps": ["mean_field_sweeps"],
    "surrogate loss": ["loss"],
    "learning rate": ["lr"],
}


class DBMTask(GenerativeTask):
    """Deep Boltzmann machines: greedy stages (optional), then joint training."""

    summary_keys = ("loss", "train_recon_error", "val_recon_error", "val_log_likelihood",
                    "val_ais_log_likelihood", "mean_field_sweeps", "seconds")
    proxy_name = "mean-field reconstruction cross-entropy"
    range_test_iterations = 300
    range_test_caveat = (
        "the range test is a weak guide for Boltzmann machines: its proxy (the mean-field "
        "reconstruction) barely moves at small rates and does not measure the likelihood; it "
        "tests the first stage's update (greedy pretraining of layer 1 when "
        "model.pretrain_epochs > 0); search the rate with boltzkit tune or a short grid instead")

    def __init__(self, config, data, device: torch.device):
        if config.train.method == "cd":
            raise ConfigError("config key 'train.method': a DBM's negative phase needs persistent "
                              "chains; accepted: pcd, pt (got 'cd')")
        if config.train.early_stopping is not None and config.model.pretrain_epochs:
            raise ConfigError("config key 'train.early_stopping': not available with "
                              "model.pretrain_epochs > 0 (it would watch the pretraining stages, whose "
                              "metrics mean something else, and could end the run before joint training)")
        super().__init__(config, data, device)

    def stages(self, model: DBM) -> list[Stage]:
        section = self.config.model
        stages = []
        if section.pretrain_epochs:
            for depth in range(1, model.n_layers):
                stages.append(Stage(f"layer{depth}", section.pretrain_epochs,
                                    partial(self._pretraining_step, model, depth),
                                    prepare=partial(self._layer_below, model, depth)))
        stages.append(Stage("joint", self.config.train.epochs, lambda: self._joint_step(model)))
        return stages

    @staticmethod
    @torch.no_grad()
    def _layer_below(model: DBM, depth: int, v: Tensor) -> Tensor:
        """The input of the RBM that pretrains ``W_depth``: the doubled bottom-up pass."""
        return model.recognition(v, depth - 1)[-1]

    def _pretraining_step(self, model: DBM, depth: int) -> TrainStep:
        generator = make_generator(self.config.seed, f"pretrain.layer{depth}", self.device)
        objective = ModifiedRBMPretraining(depth, self.config.train.k, generator)
        # the modified RBMs have no closed form: the gradient and product keys are the joint stage's
        optimizer = self.config.model.pretrain_optimizer
        train_config = without_closed_form(self.config.train,
                                           **({} if optimizer is None else {"optimizer": optimizer}))
        return self._with_max_norm(self.gradient_step(model, objective, self.config.model.pretrain_epochs,
                                                      train_config))

    def _joint_step(self, model: DBM) -> TrainStep:
        cfg, section = self.config.train, self.config.model
        generator = make_generator(self.config.seed, "train.sampler", self.device)
        betas = None
        if cfg.method == "pt":
            betas = (torch.tensor(cfg.pt.betas, dtype=torch.float64) if cfg.pt.betas is not None
                     else temperature_ladder(cfg.pt.temperatures, cfg.pt.min_beta, cfg.pt.ladder))
        chains = DBMChains(cfg.n_chains or cfg.batch_size, cfg.k, generator, betas)
        sparsity = section.sparsity
        objective = DBMLearning(chains, section.mean_field_iter, section.mean_field_tol, section.offset_rate,
                                sparsity.target, sparsity.cost, sparsity.statistic)
        return self._with_max_norm(self.gradient_step(model, objective, cfg.epochs))

    def _with_max_norm(self, step: GradientStep) -> TrainStep:
        max_norm = self.config.model.max_norm
        if max_norm is None:
            return step
        return MaxNormStep(step.objective, step.optimizer, step.schedule, step.clip, step.closed_form,
                           step.log_grad_norms, max_norm=max_norm)

    # ---------------------------------------------------------------- metrics

    def _reconstruction(self, model: DBM, v: Tensor) -> Tensor:
        """``p(v | mu_1)`` at the mean-field posterior of ``v``."""
        section = self.config.model
        states, _ = model.mean_field(v, section.mean_field_iter, section.mean_field_tol)
        return model.visible_mean(states)

    def proxy_loss(self, model: DBM, batch: Tensor) -> Tensor:
        """Cross-entropy of the mean-field reconstruction, per example."""
        return F.binary_cross_entropy(self._reconstruction(model, batch), batch, reduction="sum") / len(batch)

    @torch.no_grad()
    def epoch_metrics(self, model: DBM, epoch: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        monitors = (("train", self.monitor_train), ("val", self.monitor_val))
        subsets = [(name, v) for name, v in monitors if len(v)]
        for name, v in subsets:
            metrics[f"{name}_recon_error"] = ((self._reconstruction(model, v) - v) ** 2).sum(1).mean().item()
        evaluation = self.config.eval
        if not (evaluation.every and epoch % evaluation.every == 0):
            return metrics
        limit = evaluation.exact_max_units
        if limit and odd_units(model) <= limit:
            log_z = dbm_log_partition(model, limit)
            metrics["exact_log_z"] = log_z
            for name, v in subsets:
                metrics[f"{name}_log_likelihood"] = dbm_log_likelihood(model, v, log_z, limit).mean().item()
        else:
            quick, kernel = evaluation.quick_ais, self.eval_kernel
            ais = dbm_ais_log_partition(model, base_rate_bias(self.data.train).to(self.device), quick.betas,
                                        quick.runs, make_generator(self.config.seed, f"eval.epoch{epoch}",
                                                                   self.device), product_kernel=kernel)
            data_bound = -math.inf
            with model.products_in(kernel, rows=quick.runs):
                for name, v in subsets:
                    bounds, _ = variational_bounds(model, v)
                    metrics[f"{name}_ais_log_likelihood"] = bounds.mean().item() - ais.log_z
                    data_bound = max(data_bound, data_log_z_bound(model, v, bounds))
            metrics.update(ais_log_z=ais.log_z, ais_ess=ais.ess,
                           ais_reliable=float(not ais_warnings(ais, data_bound)))
        return metrics

    # ---------------------------------------------------------------- outputs

    def write_figures(self, out: Path, model: DBM, history: list[dict],
                      n_samples: int = 100, steps: int = 1000) -> None:
        """``samples.png`` (Gibbs samples), ``filters.png`` (first-layer weights), ``curves.png``."""
        from .. import plots

        shape = self.data.image_shape
        states, means = draw_dbm_samples(model, n_samples, steps,
                                         make_generator(self.config.seed, "figures", self.device))
        plots.save_samples(model, states, means, out / "samples.png",
                           f"{n_samples} samples after {steps} Gibbs sweeps", shape, means_label="p(v|h1)")
        plots.save_filters(model.weights[0].detach().T.cpu().numpy(), shape, out / "filters.png",
                           title="first-layer weights")
        plots.save_curves(history, out / "curves.png", CURVE_GROUPS, title=out.name)

    def evaluate(self, model: DBM, split: str, *, seed: int = 0, progress: bool = False,
                 ais_runs: int | None = None, ais_betas: int | None = None) -> tuple[dict[str, Any], str]:
        """AIS log Z, the mean-field bound on ``split`` and, for tiny models, exact values."""
        evaluation = self.config.eval
        values = binary_view(self.split(split), make_generator(seed, "evaluate.binarize"))
        with torch.no_grad():
            results = evaluate_dbm(
                model, values, self.data.train, ais_runs=ais_runs or evaluation.ais.runs,
                ais_betas=ais_betas or evaluation.ais.betas, pseudocount=evaluation.ais.pseudocount,
                exact_max_units=evaluation.exact_max_units,
                seed_generator=make_generator(seed, "evaluate.ais", self.device), progress=progress,
                product_kernel=self.eval_kernel)
        return results, format_dbm_report(results, f"{split} split, {results['examples']} examples")


DBM_FAMILY = register(Family(
    name="dbm",
    description="deep Boltzmann machine (binary layers; greedy pretraining or centering; mean field)",
    section=DBMSection,
    build=build_dbm,
    task=DBMTask,
    metrics={
        **split_metrics(recon_error="minimize", log_likelihood="maximize", ais_log_likelihood="maximize"),
        "exact_log_z": None,
        "ais_log_z": None,
        "ais_ess": "maximize",
        "ais_reliable": None,  # 1 when the quick AIS showed no sign of trouble
        "mean_field_sweeps": None,
        "pt_swap_rate_mean": "maximize",
        "pt_swap_rate_min": "maximize",
    },
    capabilities=Capabilities(sample=True, exact_likelihood=True, evaluate=True, seeds_mlp=True),
    unit_interval=lambda section: True,
    figures=("samples.png", "filters.png", "curves.png"),
    presets=("dbm-digits", "dbm-mnist"),
    sample=draw_dbm_samples,
    default_metric="val_recon_error",
))
