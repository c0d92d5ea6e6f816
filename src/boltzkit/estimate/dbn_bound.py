"""A stochastic lower bound on a DBN's log-likelihood, with its interval.

Salakhutdinov & Murray (2008, "On the quantitative analysis of deep belief networks",
section 5) bound a two-hidden-layer DBN's ``log p(v)`` by importance sampling with the
bottom-up approximate posterior ``q(h_1 | v)`` and AIS for the top RBM's ``Z``. For
``M`` draws ``h^(m) ~ q(. | v)`` and ``w_m = p*(v, h^(m)) / q(h^(m) | v)`` (``p* = p Z_top``,
:meth:`~boltzkit.models.dbn.DBN.log_joint_over_posterior`)::

    log p_hat(v) = log (1/M sum_m w_m) - log Z_top

``E[(1/M) sum_m w_m] = p(v) Z_top``, so by Jensen ``E[log p_hat(v)] <= log p(v)`` with exact
``Z_top``; the gap shrinks as ``M`` grows and vanishes when ``q`` is the true posterior.
The argument does not depend on the depth: for ``L`` RBMs the proposal is the whole
bottom-up chain ``q(h_1 | v) ... q(h_{L-1} | h_{L-2})``, so the bound here is defined for
any depth (its variance grows with it). ``(1/M) sum_m log w_m - log Z_top`` (``elbo``) is
the looser variational bound of the same paper.

Two errors make the interval: the importance draws' noise (delta method, per example
``var(w) / (M mean(w)^2)``, summed over examples) and ``log Z_top``'s (exact for small top
RBMs, else multi-path AIS with its ``+-3 sigma`` interval and reliability verdict). The
interval adds the two ``3 sigma`` half-widths; a larger ``Z_top`` lowers the bound. An
AIS ``log Z`` is itself a stochastic lower bound, so an under-estimated ``Z_top`` can
lift the "bound" above the truth: the verdict says when AIS looks unreliable.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..models.dbn import DBN
from .exact import enumerable, exact_log_partition
from .multipath import multipath_log_partition


@dataclass
class DBNBound:
    """The bound of :func:`dbn_log_likelihood_bound` (nats per example, averaged).

    ``mean`` is the bound, ``[low, high]`` its interval; ``standard_error`` the importance
    draws' share of the error (of ``mean``); ``log_z*`` the top RBM's ``log Z`` and its
    interval (``log_z_method``: ``exact`` or ``ais``); ``elbo`` the variational bound.
    """

    per_example: Tensor = field(repr=False)
    mean: float
    standard_error: float
    low: float
    high: float
    elbo: float
    log_z: float
    log_z_low: float
    log_z_high: float
    log_z_method: str
    reliable: bool
    verdict: str
    samples: int
    layers: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "per_example"} | {
            "examples": len(self.per_example)}


@torch.no_grad()
def log_importance_weights(model: DBN, v: Tensor, samples: int, generator: torch.Generator | None
                           ) -> Tensor:
    """``log w`` of ``samples`` draws from ``q(h | v)`` per example, ``(B, D) -> (B, samples)``,
    computed in ``model``'s dtype (pass a float64 copy)."""
    rows = v.repeat_interleave(samples, dim=0)
    latents = model.sample_posterior(rows, generator)
    return model.log_joint_over_posterior(rows, latents).reshape(len(v), samples)


def top_log_partition(model: DBN, train_data: Tensor, *, ais_runs: int, ais_betas: int,
                      exact_max_units: int, generator: torch.Generator | None,
                      pseudocount: float = 1.0, progress: bool = False,
                      product_kernel: str = "torch") -> dict[str, Any]:
    """``log Z`` of the top RBM: exact when its smaller layer has at most
    ``exact_max_units`` units, else multi-path AIS (products in ``product_kernel``) started
    from the training data carried up to the top RBM's visible layer (binary draws of
    ``q``: the paths' data bound counts distinct states, which probabilities are not; with
    label units, each state with the label of lowest free energy)."""
    top = model.top
    if exact_max_units > 0 and enumerable(top, exact_max_units):
        log_z = exact_log_partition(top, exact_max_units)
        return {"log_z": log_z, "log_z_low": log_z, "log_z_high": log_z, "log_z_method": "exact",
                "reliable": True, "verdict": "exact (enumerated)"}
    weight = top.weight
    states = torch.cat([model.up(chunk.to(weight), model.depth - 1, sample=True, generator=generator)
                        for chunk in train_data.split(4096)])
    if model.classes:  # any set of states bounds log Z from below: each with its most probable label
        best = model.label_free_energies(states).argmin(dim=1)
        states = torch.cat([states, model.label_units(best, states)], dim=1)
    multi = multipath_log_partition(top, states, ais_betas, ais_runs, generator,
                                    pseudocount=pseudocount, progress=progress, product_kernel=product_kernel)
    low, high = multi.interval
    return {"log_z": multi.log_z, "log_z_low": low, "log_z_high": high, "log_z_method": "ais",
            "reliable": multi.reliable, "verdict": multi.verdict}


@torch.no_grad()
def dbn_log_likelihood_bound(
    model: DBN,
    data: Tensor,
    train_data: Tensor,
    *,
    samples: int = 100,
    ais_runs: int = 100,
    ais_betas: int = 14501,
    exact_max_units: int = 20,
    pseudocount: float = 1.0,
    generator: torch.Generator | None = None,
    chunk_rows: int = 16384,
    progress: bool = False,
    top_log_z: Mapping[str, Any] | None = None,
    product_kernel: str = "torch",
) -> DBNBound:
    """The bound of the module docstring on ``data`` (``(N, D)``, binary for Bernoulli
    visible units), with ``samples >= 2`` importance draws per example and the top RBM's
    ``log Z`` from :func:`top_log_partition` (``train_data``: the visible training data).

    All draws come from ``generator`` (on the model's device); the weights are computed
    in float64. ``top_log_z`` reuses a result of :func:`top_log_partition` (several data
    sets, one model); ``product_kernel`` is its AIS's.
    """
    if samples < 2:
        raise ValueError(f"Invalid samples: {samples} (expected >= 2: the standard error needs two draws)")
    started = time.perf_counter()
    z = top_log_z or top_log_partition(model, train_data, ais_runs=ais_runs, ais_betas=ais_betas,
                                       exact_max_units=exact_max_units, generator=generator,
                                       pseudocount=pseudocount, progress=progress,
                                       product_kernel=product_kernel)
    exact = copy.deepcopy(model).double()
    device = exact.top.weight.device
    per_example, elbo, variance = [], [], []
    for chunk in data.split(max(1, chunk_rows // samples)):
        log_w = log_importance_weights(exact, chunk.to(device, torch.float64), samples, generator)
        per_example.append(torch.logsumexp(log_w, dim=1) - math.log(samples))
        elbo.append(log_w.mean(dim=1))
        ratios = torch.exp(log_w - log_w.max(dim=1, keepdim=True).values)
        variance.append(ratios.var(dim=1) / (samples * ratios.mean(dim=1) ** 2))
    estimate = torch.cat(per_example) - z["log_z"]
    n = len(estimate)
    mean = estimate.mean().item()
    standard_error = math.sqrt(torch.cat(variance).sum().item()) / n
    spread = 3 * standard_error
    return DBNBound(
        per_example=estimate.cpu(), mean=mean, standard_error=standard_error,
        low=mean - spread - (z["log_z_high"] - z["log_z"]),
        high=mean + spread + (z["log_z"] - z["log_z_low"]),
        elbo=torch.cat(elbo).mean().item() - z["log_z"],
        log_z=z["log_z"], log_z_low=z["log_z_low"], log_z_high=z["log_z_high"],
        log_z_method=z["log_z_method"], reliable=z["reliable"], verdict=z["verdict"],
        samples=samples, layers=model.depth, seconds=time.perf_counter() - started)
