"""Per-epoch metrics of an RBM on fixed subsets of train and validation data."""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.rbm import RBM
from .exact import enumerable, exact_log_partition
from .multipath import multipath_log_partition
from .pseudo_likelihood import pseudo_log_likelihood, reconstruction_error


@torch.no_grad()
def rbm_metrics(model: RBM, train: Tensor, validation: Tensor) -> dict[str, float]:
    """Reconstruction error, pseudo-log-likelihood (nats per example, all units; discrete
    visible units only) and mean free energy of each subset, and ``free_energy_gap = F(val) - F(train)``.

    A growing gap means the model prefers its training data to held-out data: it is
    over-fitting (Hinton, "A practical guide to training RBMs", 2010, section 6).
    """
    metrics: dict[str, float] = {}
    for prefix, v in (("train", train), ("val", validation)):
        if len(v) == 0:
            continue
        metrics[f"{prefix}_recon_error"] = reconstruction_error(model, v).mean().item()
        if model.visible.discrete:
            metrics[f"{prefix}_pseudo_log_likelihood"] = pseudo_log_likelihood(model, v).mean().item()
        metrics[f"{prefix}_free_energy"] = model.free_energy(v).mean().item()
    if "val_free_energy" in metrics:
        metrics["free_energy_gap"] = metrics["val_free_energy"] - metrics["train_free_energy"]
    return metrics


@torch.no_grad()
def likelihood_metrics(
    model: RBM,
    train_data: Tensor,
    train: Tensor,
    validation: Tensor,
    ais_runs: int,
    ais_betas: int,
    exact_max_units: int,
    generator: torch.Generator,
    product_kernel: str = "torch",
) -> dict[str, float]:
    """Average log-likelihood (nats per example) of the monitoring subsets.

    Exact when the smaller layer has at most ``exact_max_units`` units (``exact_log_z``,
    ``train_log_likelihood``, ``val_log_likelihood``), else from a quick multi-path forward
    AIS from ``train_data`` (:mod:`boltzkit.estimate.multipath`: ``ais_log_z``, the chosen
    path's ``ais_ess``, ``ais_reliable`` 1 or 0, ``train_ais_log_likelihood``,
    ``val_ais_log_likelihood``), its products in ``product_kernel``.
    """
    if exact_max_units > 0 and enumerable(model, exact_max_units):
        log_z, prefix, metrics = exact_log_partition(model, exact_max_units), "", {}
        metrics["exact_log_z"] = log_z
    else:
        multi = multipath_log_partition(model, train_data, ais_betas, ais_runs, generator,
                                        product_kernel=product_kernel)
        log_z, prefix = multi.log_z, "ais_"
        metrics = {"ais_log_z": log_z, "ais_ess": multi.best.ess, "ais_reliable": float(multi.reliable)}
    for name, v in (("train", train), ("val", validation)):
        if len(v):
            mean_neg_f = -model.free_energy(v).to(torch.float64).mean().item()
            metrics[f"{name}_{prefix}log_likelihood"] = mean_neg_f - log_z
    return metrics
