"""General Boltzmann machines (``model.type: bm``): binary units with any symmetric coupling
mask, trained by maximum likelihood with a Gibbs or mean-field positive phase and
persistent chains; exact log-likelihood when small enough to enumerate."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from ..data import Dataset
from ..errors import ConfigError, DataError
from ..estimate.evaluate import binary_view
from ..estimate.exact_bm import bm_log_likelihood, bm_log_partition
from ..models.bm import BoltzmannMachine, coupling_mask
from ..objectives.boltzmann import BoltzmannMachineLearning
from ..sampling.draw import draw_bm_samples
from ..seeding import make_generator
from .contract import Capabilities, Family, ModelSection, split_metrics
from .rbm import GenerativeTask
from .registry import register


class BMSection(ModelSection):
    type: Literal["bm"] = "bm"
    n_hidden: int = Field(64, ge=0, le=10_000)
    """At most 10,000: sequential Gibbs sweeps over more units are impractical."""
    init_std: float = Field(0.01, ge=0, le=100)
    connectivity: Literal["full", "bipartite"] = "full"
    """Which couplings exist (bipartite = an RBM's)."""


def build_bm(section: BMSection, data_info: Mapping[str, Any],
             generator: torch.Generator) -> BoltzmannMachine:
    mask = coupling_mask(data_info["n_features"], section.n_hidden, section.connectivity)
    return BoltzmannMachine(data_info["n_features"], section.n_hidden, mask, section.init_std, generator)


class BoltzmannMachineTask(GenerativeTask):
    """General Boltzmann machines: exact log-likelihood per epoch when small enough."""

    summary_keys = ("loss", "val_log_likelihood", "seconds")
    proxy_name = "negative log-likelihood"

    def __init__(self, config, data: Dataset, device: torch.device):
        if config.train.method != "pcd":
            raise ConfigError(f"model.type bm trains with persistent chains (train.method: pcd), "
                              f"got {config.train.method!r}")
        super().__init__(config, data, device)

    def build_objective(self) -> BoltzmannMachineLearning:
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

    def write_figures(self, out: Path, model: nn.Module, history: list[dict],
                      n_samples: int = 100, steps: int = 200) -> None:
        """``curves.png`` and ``samples.png`` (sequential Gibbs over all units, ``p(v_i = 1 | rest)``)."""
        from .. import plots

        super().write_figures(out, model, history)
        generator = make_generator(self.config.seed, "figures", self.device)
        states, means = draw_bm_samples(model, n_samples, steps, generator)
        plots.save_samples(model, states, means, out / "samples.png",
                           f"{n_samples} samples after {steps} Gibbs sweeps", self.data.image_shape,
                           means_label="p(v_i = 1 | rest)")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, *, seed: int = 0,
                 progress: bool = False) -> tuple[dict[str, Any], str]:
        """The exact log-likelihood of ``split`` when the machine is small enough to enumerate."""
        limit = self.config.eval.exact_max_units
        if model.n_units > limit:
            raise DataError(f"evaluate: not available for this machine: the exact log-likelihood "
                            f"enumerates 2^{model.n_units} states, above eval.exact_max_units={limit}, "
                            "and general Boltzmann machines have no AIS estimator yet")
        values = self.split(split)
        values = binary_view(values, make_generator(seed, "evaluate.binarize")).to(self.device)
        log_z = bm_log_partition(model, limit)
        log_likelihood = bm_log_likelihood(model, values, log_z)
        results = {"examples": len(values), "units": model.n_units, "log_z_exact": log_z,
                   "log_likelihood_exact": log_likelihood.mean().item(),
                   "log_likelihood_exact_stderr": (log_likelihood.std() / len(values) ** 0.5).item()}
        report = (f"{split} split, {len(values)} examples\nlog Z, exact             {log_z:.3f}\n"
                  f"log-likelihood, exact    {results['log_likelihood_exact']:.3f} "
                  f"(+- {results['log_likelihood_exact_stderr']:.3f} s.e. over examples)\n"
                  "log-likelihoods: average nats per example")
        return results, report


BM_FAMILY = register(Family(
    name="bm",
    description="general Boltzmann machine (binary units, coupling mask)",
    section=BMSection,
    build=build_bm,
    task=BoltzmannMachineTask,
    metrics={**split_metrics(log_likelihood="maximize"), "exact_log_z": None},
    capabilities=Capabilities(sample=True, exact_likelihood=True, evaluate=True),
    sample=draw_bm_samples,
    figures=("curves.png", "samples.png"),
    default_metric="val_log_likelihood",
    unit_interval=lambda section: True,
))
