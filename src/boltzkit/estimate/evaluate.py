"""Evaluate a trained RBM on a data split: likelihood estimates from every estimator we have."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from .. import onednn
from ..models.rbm import RBM
from ..seeding import make_generator
from ..units import bernoulli
from .ais import ais_base, reverse_ais_log_likelihood
from .exact import enumerable, exact_log_likelihood, exact_log_partition
from .multipath import multipath_log_partition, reverse_verdict
from .pseudo_likelihood import pseudo_log_likelihood, reconstruction_error


def binary_view(data: Tensor, generator: torch.Generator) -> Tensor:
    """``data`` if it is binary, else one stochastic binarization of it (seeded).

    Likelihoods of a Bernoulli RBM are defined on binary vectors; grey-level data are
    read as probabilities and sampled once, the convention of the MNIST literature.
    """
    if bool(((data == 0) | (data == 1)).all()):
        return data
    # values outside [0, 1] reach here only from data given directly (the scikit-learn
    # wrappers accept any reals, as scikit-learn's RBM does): read them as 0 or 1
    return bernoulli(data.clamp(0, 1), generator)


@torch.no_grad()
def evaluate_rbm(
    model: RBM,
    data: Tensor,
    train_data: Tensor,
    *,
    ais_runs: int = 100,
    ais_betas: int = 14501,
    pseudocount: float = 1.0,
    reverse_examples: int = 0,
    reverse_runs: int = 1,
    exact_max_units: int = 20,
    seed: int = 0,
    progress: bool = False,
    product_kernel: str = "torch",
) -> dict[str, Any]:
    """Every estimate for ``data`` (``(N, D)``; binary for Bernoulli visible units), as a
    flat JSON-ready dict.

    - ``log_z_ais``: the largest of forward AIS along several paths
      (:mod:`boltzkit.estimate.multipath`), with the chosen path's ``+-3 sigma`` interval
      and ESS, every path in ``ais_paths``, and ``ais_reliable`` / ``ais_verdict``;
      ``log_likelihood_ais = mean(-F(v)) - log_z_ais`` with the matching interval;
    - ``log_z_exact`` and ``log_likelihood_exact`` when the smaller layer has at most
      ``exact_max_units`` units;
    - ``log_likelihood_reverse_ais`` (RAISE) on the first ``reverse_examples`` examples (0:
      skipped), ``reverse_runs`` chains each: a stochastic lower bound on the likelihood of
      the *annealing model* from the base rate, which equals the RBM's only where the
      annealing reaches every mode; agreement with forward AIS is evidence, not proof;
    - pseudo-log-likelihood per example and per unit, reconstruction error, free energy.

    Likelihoods are average nats per example (log densities for Gaussian visible units).
    The AIS and reverse AIS chains draw from ``make_generator(seed, "evaluate", device)``,
    so the same ``seed`` gives the same numbers; forward AIS multiplies in
    ``product_kernel`` (:func:`~boltzkit.estimate.ais.ais_log_partition`).
    """
    device = model.weight.device
    generator = make_generator(seed, "evaluate", device)
    v = data.to(device)
    n, width = v.shape
    in_onednn = onednn.kernel_for(product_kernel, model.weight, rows=ais_runs) == "onednn"  # AIS's kernel
    results: dict[str, Any] = {"examples": n, "visible_units": width, "hidden_units": model.n_hidden,
                               "ais_product_kernel": "onednn" if in_onednn else "torch"}

    started = time.perf_counter()
    free_energy = model.free_energy(v).to(torch.float64)
    results["free_energy"] = free_energy.mean().item()
    if model.visible.discrete:
        pl = torch.cat([pseudo_log_likelihood(model, chunk) for chunk in v.split(1000)])
        results["pseudo_log_likelihood"] = pl.mean().item()
        results["pseudo_log_likelihood_per_unit"] = pl.mean().item() / width
    results["recon_error"] = reconstruction_error(model, v).mean().item()
    results["seconds_cheap_metrics"] = time.perf_counter() - started
    mean_neg_f = -results["free_energy"]
    if exact_max_units > 0 and enumerable(model, exact_max_units):
        started = time.perf_counter()
        log_z = exact_log_partition(model, exact_max_units)
        results["log_z_exact"] = log_z
        results["log_likelihood_exact"] = exact_log_likelihood(model, v, log_z).mean().item()
        results["seconds_exact"] = time.perf_counter() - started
    base = ais_base(model, train_data, pseudocount)
    multi = multipath_log_partition(model, train_data, ais_betas, ais_runs, generator,
                                    pseudocount=pseudocount, progress=progress, product_kernel=product_kernel)
    ais, log_z = multi.best, multi.log_z
    low, high = multi.interval
    results.update({
        "log_z_ais": log_z,
        "log_z_ais_low": low,
        "log_z_ais_high": high,
        "log_z_base": ais.log_z_base,
        "ais_ess": ais.ess,
        "ais_runs": ais.runs,
        "ais_betas": ais.n_betas,
        "ais_path": multi.chosen,
        "ais_path_spread": multi.spread,
        "ais_paths": multi.to_dict()["paths"],
        "ais_data_bound": multi.data_bound,
        "ais_reliable": multi.reliable,
        "ais_verdict": multi.verdict,
        "seconds_ais": sum(result.seconds for result in multi.paths.values()),
        "log_likelihood_ais": mean_neg_f - log_z,
        "log_likelihood_ais_low": mean_neg_f - high,
        "log_likelihood_ais_high": mean_neg_f - low,
    })

    if reverse_examples > 0:
        subset = v[:reverse_examples]
        reverse = reverse_ais_log_likelihood(model, subset, base, ais_betas, reverse_runs,
                                             generator, progress=progress)
        results.update({
            "log_likelihood_reverse_ais": reverse.mean,
            "log_likelihood_reverse_ais_stderr": reverse.standard_error,
            "reverse_ais_examples": len(subset),
            "reverse_ais_runs": reverse.runs,
            "seconds_reverse_ais": reverse.seconds,
        })
        same = -model.free_energy(subset).to(torch.float64) - log_z
        if len(subset) < n:  # the AIS estimate on the same examples, to compare like with like
            results["log_likelihood_ais_same_examples"] = same.mean().item()
        results["reverse_ais_reliable"], results["reverse_ais_verdict"] = reverse_verdict(
            reverse.per_example, same, multi)
    return results


def format_report(results: dict[str, Any], title: str) -> str:
    """A plain-text table of :func:`evaluate_rbm`'s results."""
    rows = [(title, "")]

    def add(label: str, value: str) -> None:
        rows.append((label, value))

    def interval(low: float, high: float) -> str:
        return f"[{low:.3f}, {high:.3f}]" if math.isfinite(low) else f"[-inf, {high:.3f}]"

    if "log_z_ais" in results:
        add("log Z, AIS", f"{results['log_z_ais']:.3f}  +-3 sigma "
            f"{interval(results['log_z_ais_low'], results['log_z_ais_high'])}  "
            f"ESS {results['ais_ess']:.1f} of {results['ais_runs']} runs, {results['ais_betas']} betas, "
            f"path: {results['ais_path']}")
        for name, path in results.get("ais_paths", {}).items():
            add(f"  path {name}", f"{path['log_z']:.3f}  {interval(path['log_z_low'], path['log_z_high'])}  "
                f"ESS {path['ess']:.1f}")
        if "ais_verdict" in results:
            add("  verdict", results["ais_verdict"])
    if "log_z_exact" in results:
        add("log Z, exact", f"{results['log_z_exact']:.3f}")
    if "log_likelihood_ais" in results:
        add("log-likelihood, AIS", f"{results['log_likelihood_ais']:.3f}  "
            f"{interval(results['log_likelihood_ais_low'], results['log_likelihood_ais_high'])}")
    if "log_likelihood_exact" in results:
        add("log-likelihood, exact", f"{results['log_likelihood_exact']:.3f}")
    if "log_likelihood_reverse_ais" in results:
        add("log-likelihood, reverse AIS (annealing model)",
            f"{results['log_likelihood_reverse_ais']:.3f}  +- "
            f"{results['log_likelihood_reverse_ais_stderr']:.3f} (s.e.), "
            f"{results['reverse_ais_examples']} examples x {results['reverse_ais_runs']} runs")
        if "log_likelihood_ais_same_examples" in results:
            add("  AIS on the same examples", f"{results['log_likelihood_ais_same_examples']:.3f}")
        add("  verdict", results["reverse_ais_verdict"])
    if "pseudo_log_likelihood" in results:
        add("pseudo-log-likelihood", f"{results['pseudo_log_likelihood']:.3f} per example, "
            f"{results['pseudo_log_likelihood_per_unit']:.4f} per unit")
    add("reconstruction error", f"{results['recon_error']:.3f}")
    add("free energy", f"{results['free_energy']:.3f}")
    width = max(len(label) for label, _ in rows)
    lines = [rows[0][0], "-" * max(40, len(rows[0][0]))]
    lines += [f"{label:<{width}}  {value}" for label, value in rows[1:]]
    lines.append("log-likelihoods: average nats per example")
    return "\n".join(lines)
