"""Likelihood bounds of a trained VAE on a data split: the ELBO and the importance-weighted
bound with many samples (Burda, Grosse & Salakhutdinov, 2016, who report test NLL as
``-IWAE_5000``), with their standard errors.

Two errors are reported, because they answer different questions:

- ``*_stderr``: the spread over examples, ``std_b(bound_b) / sqrt(N)``: how much the mean
  would move on another test set of the same size;
- ``iwae_mc_stderr``: an *approximate* Monte Carlo error of the estimate on *these*
  examples. For one example, ``Var[log mean_j w_j] ~= Var[w] / (k E[w]^2) = 1/ESS - 1/k``
  (delta method, with ``Var[w] / E[w]^2`` estimated from the same ``k`` weights), with the
  effective sample size ``ESS = (sum_j w_j)^2 / sum_j w_j^2``; the error of the mean is
  ``sqrt(sum_b Var_b) / N``. Importance weights are heavy-tailed: when some example's ESS
  is far below ``k``, its plug-in variance is mostly too small, and the figure understates
  the spread over seeds (by 25-40 % on a small test model whose smallest ESS is 8 % of
  ``k``). ``iwae_mc_reliable`` is 1 when every example's ESS is at least
  :data:`MC_ESS_SHARE` of ``k``, else 0 (the report then says to measure the spread by
  repeating with other seeds). A small ESS also says that the bound may sit well below
  ``log p(x)``: the estimate is a stochastic lower bound, not an unbiased estimate.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..models.vae import VAE, gaussian_kl_to_standard

CHUNK_ELEMENTS = 1 << 23
"""Samples x examples x width (the largest layer output, :func:`activations_per_example`) per chunk:
bounds the memory of ``k = 5000`` to a few hundred MB whatever the split's size."""
MC_ESS_SHARE = 0.5
"""``iwae_mc_stderr`` is trusted when every example's ESS is at least this share of ``k``
(on the test's model whose smallest ESS is 89 % of ``k`` the delta method is within 5 %
of the spread over 400 seeds)."""
ACTIVE_THRESHOLD = 1e-2
"""A latent dimension is active when ``Cov_x(E_q[z_l | x]) > 0.01`` (Burda et al., 2016)."""


@torch.no_grad()
def activations_per_example(model: VAE) -> int:
    """The largest output of any layer for one example and one sample of ``z`` (a hidden
    layer, a convolution's feature maps or the ``D`` outputs), measured by one forward pass."""
    sizes = [model.n_features]
    hooks = [module.register_forward_hook(lambda m, i, out: sizes.append(out[0].numel()))
             for module in model.modules() if not list(module.children())]
    try:
        reference = model.output_bias()
        model.log_weights(torch.zeros(1, model.n_features, device=reference.device, dtype=reference.dtype),
                          torch.zeros(1, 1, model.latent, device=reference.device, dtype=reference.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes)


@torch.no_grad()
def vae_bounds(model: VAE, x: Tensor, k: int, generator: torch.Generator, *,
               progress: bool = False, chunk_elements: int = CHUNK_ELEMENTS) -> dict[str, Tensor]:
    """Per-example ``elbo`` (``mean_j log w_j``), ``iwae`` (``log mean_j w_j``) and ``ess``
    from the same ``k`` samples, each ``(N,)`` float64, in chunks over examples and samples
    (running log-sum-exps in float64); ``x`` ``(N, D)`` on the model's device."""
    if k < 1:
        raise ValueError(f"Invalid number of importance samples: k={k} (expected >= 1)")
    rows = max(1, chunk_elements // activations_per_example(model))
    k_chunk = min(k, rows)
    examples = max(1, rows // k_chunk)
    out: dict[str, list[Tensor]] = {"elbo": [], "iwae": [], "ess": []}
    bar = tqdm(total=len(x), disable=not progress, desc=f"IWAE k={k}", unit="example", leave=False)
    for batch in x.split(examples):
        lse = lse_sq = torch.full((len(batch),), -math.inf, dtype=torch.float64, device=x.device)
        total = torch.zeros(len(batch), dtype=torch.float64, device=x.device)
        for start in range(0, k, k_chunk):
            noise = model.draw_noise(len(batch), min(k_chunk, k - start), generator)
            log_w = model.log_weights(batch, noise).to(torch.float64)
            lse = torch.logaddexp(lse, torch.logsumexp(log_w, 0))
            lse_sq = torch.logaddexp(lse_sq, torch.logsumexp(2 * log_w, 0))
            total += log_w.sum(0)
        out["elbo"].append(total / k)
        out["iwae"].append(lse - math.log(k))
        out["ess"].append(torch.exp(2 * lse - lse_sq))
        bar.update(len(batch))
    bar.close()
    return {name: torch.cat(parts) for name, parts in out.items()}


def _stderr(values: Tensor) -> float:
    return values.std().item() / math.sqrt(len(values)) if len(values) > 1 else math.nan


@torch.no_grad()
def evaluate_vae(model: VAE, data: Tensor, *, k: int = 5000, generator: torch.Generator,
                 progress: bool = False, log_jacobian: float = 0.0) -> dict[str, Any]:
    """The ELBO and the ``k``-sample importance-weighted bound on ``data`` (``(N, D)``; binary
    for a Bernoulli decoder), as a flat JSON-ready dict: means over examples in nats,
    ``nll = -iwae_bound`` with its standard error over examples, the Monte Carlo error and
    effective sample sizes of the importance weights, the mean closed-form KL and the
    number of active latent dimensions.

    ``log_jacobian``: ``log |det dx/dy|`` of the map from the units the bounds are wanted in
    (``y``) to the model's inputs ``x``, added to every bound: for data standardized as
    ``x_i = (y_i - mu_i) / s_i`` it is ``-sum_i log s_i``, and the densities are those of
    the raw data (``log p_Y(y) = log p_X(x) + log_jacobian``)."""
    device = model.output_bias().device
    x = data.to(device=device, dtype=model.output_bias().dtype)
    started = time.perf_counter()
    bounds = vae_bounds(model, x, k, generator, progress=progress)
    iwae, elbo, ess = bounds["iwae"] + log_jacobian, bounds["elbo"] + log_jacobian, bounds["ess"]
    variance = (1.0 / ess - 1.0 / k).clamp_min(0.0)  # delta method, per example
    codes = [model.encode(chunk) for chunk in x.split(4096)]  # one pass serves both
    means = torch.cat([mean for mean, _ in codes]).to(torch.float64)
    kl = torch.cat([gaussian_kl_to_standard(*code) for code in codes])
    activity = means.var(0) if len(means) > 1 else torch.zeros(model.latent, dtype=torch.float64)
    return {
        "examples": len(x),
        "features": model.n_features,
        "latent": model.latent,
        "decoder": model.decoder_name,
        "k": k,
        "elbo": elbo.mean().item(),
        "elbo_stderr": _stderr(elbo),
        "iwae_bound": iwae.mean().item(),
        "iwae_bound_stderr": _stderr(iwae),
        "nll": -iwae.mean().item(),
        "nll_stderr": _stderr(iwae),
        "iwae_mc_stderr": variance.sum().sqrt().item() / len(x),
        "iwae_mc_reliable": float(ess.min().item() >= MC_ESS_SHARE * k),
        "iwae_ess_mean": ess.mean().item(),
        "iwae_ess_min": ess.min().item(),
        "log_jacobian": log_jacobian,
        "kl": kl.to(torch.float64).mean().item(),
        "active_units": int((activity > ACTIVE_THRESHOLD).sum()),
        "seconds": time.perf_counter() - started,
    }


def format_vae_report(results: dict[str, Any], title: str) -> str:
    """A plain-text table of :func:`evaluate_vae`'s results."""
    k = results["k"]
    density = "log density" if results["decoder"] == "gaussian" else "log-likelihood"
    rows = [
        (f"ELBO ({k} samples)",
         f"{results['elbo']:.3f}  +- {results['elbo_stderr']:.3f} (s.e. over examples)"),
        (f"IWAE bound, k = {k}", f"{results['iwae_bound']:.3f}  +- {results['iwae_bound_stderr']:.3f} "
                                 f"(s.e. over examples), +- {results['iwae_mc_stderr']:.3f} "
                                 "(Monte Carlo, approx.)"),
        (f"NLL (-IWAE_{k})", f"{results['nll']:.3f} nats  +- {results['nll_stderr']:.3f}"),
        ("importance weights", f"ESS mean {results['iwae_ess_mean']:.1f}, min {results['iwae_ess_min']:.1f} "
                               f"of {k}"),
        ("KL(q(z|x) || p(z))", f"{results['kl']:.3f}"),
        ("active latent units", f"{results['active_units']} of {results['latent']}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [title, "-" * max(40, len(title))]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    lines.append(f"bounds on the {density}: average nats per example; the IWAE bound is a stochastic "
                 "lower bound (the true value is higher)")
    if results["log_jacobian"]:
        lines.append(f"in the units of the raw data: the standardization's log Jacobian "
                     f"{results['log_jacobian']:.3f} is included")
    if not results["iwae_mc_reliable"]:
        lines.append(f"warning: some examples' ESS is below {MC_ESS_SHARE:.0%} of k, where the delta-method "
                     "Monte Carlo error understates the spread; measure it by repeating with other --seed "
                     "values")
    return "\n".join(lines)
