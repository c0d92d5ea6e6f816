"""Per-epoch health metrics of an RBM on fixed subsets of train and validation data."""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.rbm import RBM
from .pseudo_likelihood import pseudo_log_likelihood, reconstruction_error


@torch.no_grad()
def rbm_metrics(model: RBM, train: Tensor, validation: Tensor) -> dict[str, float]:
    """Reconstruction error, pseudo-log-likelihood (nats per example, all units) and
    mean free energy of each subset, and ``free_energy_gap = F(val) - F(train)``.

    A growing gap means the model prefers its training data to held-out data: it is
    over-fitting (Hinton, "A practical guide to training RBMs", 2010, section 6).
    """
    metrics: dict[str, float] = {}
    for prefix, v in (("train", train), ("val", validation)):
        if len(v) == 0:
            continue
        metrics[f"{prefix}_recon_error"] = reconstruction_error(model, v).mean().item()
        metrics[f"{prefix}_pseudo_log_likelihood"] = pseudo_log_likelihood(model, v).mean().item()
        metrics[f"{prefix}_free_energy"] = model.free_energy(v).mean().item()
    if "val_free_energy" in metrics:
        metrics["free_energy_gap"] = metrics["val_free_energy"] - metrics["train_free_energy"]
    return metrics
