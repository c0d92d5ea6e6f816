"""The figures every run directory gets: samples, filters and training curves."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .. import plots
from ..data import Dataset
from ..models.rbm import RBM
from ..sampling.gibbs import sample_chains
from ..sampling.tempering import ParallelTempering, temperature_ladder
from .run_dir import RunDir

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


@torch.no_grad()
def draw_samples(
    model: RBM, n: int, steps: int, generator: torch.Generator, temperatures: int = 0,
    min_beta: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """``n`` chains run for ``steps`` sweeps from the visible biases' base rates: plain
    Gibbs, or with ``temperatures >= 2`` parallel tempering down to ``min_beta`` (the
    ``beta = 1`` replicas are returned).

    Returns the final states and their means ``E[v | h]``, each ``(n, D)``.
    """
    no_input = torch.zeros(n, model.n_visible, device=model.weight.device, dtype=model.weight.dtype)
    v0 = model.visible.sample(no_input, generator)  # p(v) from the visible biases alone
    if temperatures < 2:
        return sample_chains(model, v0, steps, generator)
    sampler = ParallelTempering(temperature_ladder(temperatures, min_beta), n, generator)
    sampler.start(model, v0)
    v = sampler.step(model, steps)
    return v, model.visible_mean(sampler.hidden[0])


def to_pixels(x: Tensor, mean: Tensor | list | None, std: Tensor | list | None) -> Tensor:
    """Undo ``data.standardize`` for display and clip to [0, 1]."""
    if mean is not None:
        x = x * torch.as_tensor(std, dtype=x.dtype) + torch.as_tensor(mean, dtype=x.dtype)
    return x.clamp(0, 1)


def write_run_figures(
    run: RunDir,
    model: RBM,
    data: Dataset,
    history: Sequence[dict[str, float]],
    generator: torch.Generator,
    n_samples: int = 100,
    steps: int = 1000,
) -> None:
    """``samples.png`` (Gibbs samples), ``filters.png`` (weights) and ``curves.png``."""
    shape = data.image_shape
    _, means = draw_samples(model, n_samples, steps, generator)
    means = to_pixels(means.cpu(), data.feature_mean, data.feature_std)
    plots.save_image_grid(means.numpy(), shape, run.file("samples.png"),
                          title=f"{n_samples} samples after {steps} Gibbs sweeps (E[v|h])")
    weights = model.weight.detach().T[:100].cpu().numpy()  # one hidden unit per tile
    plots.save_image_grid(weights, shape, run.file("filters.png"), normalize=True,
                          title=f"weights of the first {len(weights)} hidden units")
    plots.save_curves(history, run.file("curves.png"), CURVE_GROUPS, title=run.path.name)
