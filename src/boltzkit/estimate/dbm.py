"""Likelihoods of deep Boltzmann machines: exact values for tiny models, annealed
importance sampling of ``log Z`` and the mean-field variational lower bound.

**AIS** (Salakhutdinov & Hinton 2009, Sec. 4): the even layers (``v``, ``h_2``, ...) are
summed out analytically, so the chains live on the odd layers only (for two hidden
layers: on ``h_1``). The path interpolates the energies of a base model ``A`` (no
couplings; visible biases ``b_A`` from the data's base rates, hidden biases 0) and the
DBM ``B``: ``E_k = (1 - beta_k) E_A + beta_k E_B``. Both energies are linear in every
layer, so with ``x_o`` the odd layers,

    log f_k(x_o) = -[beta_k E_B(x_e = 0, x_o) + (1 - beta_k) E_A(x_e = 0, x_o)]
                   + sum_{l even} sum_j softplus(beta_k a^B_lj + (1 - beta_k) b^A_lj)

and ``log Z_A = sum_j softplus(b^A_0j) + log 2 * (number of hidden units)``. The
transition at ``beta_k`` draws the even layers given the odd ones and then the odd
layers given the even ones, both at ``beta_k``: it leaves ``p_k(x_o)`` invariant. As for
RBMs, the estimate of ``log Z`` is a stochastic lower bound (Jensen), so likelihoods
computed with it tend to be *over*-estimated when the annealing misses modes.

**Variational bound**: for the mean-field posterior ``q`` of each example,
``log p(v) >= -E(v, mu) + H(q) - log Z`` (:meth:`DBM.variational_bound`). With an AIS
``log Z`` the reported number is the bound minus the estimate: a lower bound on the test
log-likelihood only as far as ``log Z`` is not under-estimated; the report says so.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.dbm import DBM
from ..units import BernoulliUnits, bernoulli
from .ais import AISResult, _ais_result, _schedule, base_rate_bias, forward_ais
from .exact import as_float64

_CHUNK = 1 << 14


def odd_layers(model: DBM) -> list[int]:
    return list(range(1, model.n_layers, 2))


def even_layers(model: DBM) -> list[int]:
    return list(range(0, model.n_layers, 2))


def odd_units(model: DBM) -> int:
    """How many states the exact values enumerate: ``2^odd_units``."""
    return sum(model.sizes[depth] for depth in odd_layers(model))


def _split(model: DBM, flat: Tensor) -> list[Tensor | None]:
    """Joint odd-layer states ``(N, odd_units)`` -> a state list with the even layers None."""
    states: list[Tensor | None] = [None] * model.n_layers
    start = 0
    for depth in odd_layers(model):
        states[depth] = flat[:, start:start + model.sizes[depth]]
        start += model.sizes[depth]
    return states


def _odd_chunks(model: DBM, max_units: int):
    n = odd_units(model)
    if n > max_units:
        raise ValueError(f"exact values of this DBM enumerate 2^{n} states of its odd layers "
                         f"(sizes {model.sizes}); at most 2^{max_units} are allowed")
    units = BernoulliUnits(n)
    device = model.weights[0].device
    for start in range(0, 2**n, _CHUNK):
        yield units.all_states(start, min(2**n, start + _CHUNK), device=device).to(torch.float64)


@torch.no_grad()
def dbm_log_partition(model: DBM, max_units: int = 20) -> float:
    """``log Z`` exactly (float64): the even layers summed out, the odd ones enumerated."""
    m = as_float64(model)
    parts = [torch.logsumexp(-m.free_energy(_split(m, flat), even_layers(m)), 0)
             for flat in _odd_chunks(m, max_units)]
    return torch.logsumexp(torch.stack(parts), 0).item()


@torch.no_grad()
def dbm_log_likelihood(model: DBM, v: Tensor, log_z: float | None = None, max_units: int = 20) -> Tensor:
    """``log p(v)`` per example exactly, ``(B,)`` float64: the even hidden layers summed
    out, the odd ones enumerated. The energy is linear in ``v``, ``E(v, h) = E(0, h) - v . a_0(h)``,
    and the summed layers do not touch ``v``, so ``-F(v, h_odd) = -F(0, h_odd) + v . a_0(h_odd)``:
    one ``(B, D) x (D, states)`` product per chunk of enumerated states."""
    m = as_float64(model)
    if log_z is None:
        log_z = dbm_log_partition(m, max_units)
    v = v.to(torch.float64)
    summed = even_layers(m)[1:]
    parts = []
    for flat in _odd_chunks(m, max_units):
        states = _split(m, flat)
        states[0] = flat.new_zeros(len(flat), m.n_visible)
        scores = v @ m.layer_input(states, 0).T - m.free_energy(states, summed)  # (B, states)
        parts.append(torch.logsumexp(scores, dim=1))
    return torch.logsumexp(torch.stack(parts, dim=1), dim=1) - log_z


class _DBMPath:
    """The annealing path of the module docstring (state: the odd layers)."""

    def __init__(self, model: DBM, base_bias: Tensor | None):
        weight = model.weights[0]
        self.model = model
        visible = model.biases[0].detach() if base_bias is None else base_bias
        self.base = [visible.to(weight)] + [torch.zeros_like(b) for b in model.biases[1:]]
        self.device = weight.device
        self.odd, self.even = odd_layers(model), even_layers(model)
        hidden_units = sum(model.sizes[1:])
        self.log_z_base = F.softplus(self.base[0].double()).sum().item() + hidden_units * math.log(2)

    def start(self, runs: int, generator: torch.Generator | None) -> list[Tensor | None]:
        states: list[Tensor | None] = [None] * self.model.n_layers
        for depth in self.odd:
            states[depth] = bernoulli(torch.sigmoid(self.base[depth]).expand(runs, -1), generator)
        return states

    def log_f_pieces(self, states: list[Tensor | None]) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``E_B(x_e = 0, x_o)``, ``E_A(x_e = 0, x_o)`` and the even layers' inputs ``a^B``."""
        model = self.model
        runs = len(states[self.odd[0]])
        zeros = [s if s is not None else self.base[d].new_zeros(runs, model.sizes[d])
                 for d, s in enumerate(states)]
        inputs = [model.layer_input(zeros, d) for d in self.even]
        # every weight joins an even and an odd layer, so with the even layers at 0 the
        # energy's products are in their inputs: E = -sum_o x_o.b_o - sum_e c_e.(a_e - b_e),
        # c_e = 0 - mu_e (no term uncentered); model.energy(zeros) would multiply again
        energy_b = -sum(zeros[d] @ model.biases[d] for d in self.odd)
        if model.centered:
            for depth, a in zip(self.even, inputs, strict=True):
                centered = model.center(zeros[depth], depth)
                energy_b = energy_b - (centered * (a - model.biases[depth])).sum(dim=-1)
        energy_a = -sum(zeros[d] @ self.base[d] for d in self.odd)
        return energy_b, energy_a, inputs

    def forward_step(self, states: list[Tensor | None], beta: float, previous: float) -> tuple[Tensor, tuple]:
        """``log f_beta - log f_previous`` of the chains' odd layers, and the pieces the sweep reuses."""
        pieces = self.log_f_pieces(states)
        return self.log_f(pieces, beta) - self.log_f(pieces, previous), pieces

    def log_f(self, pieces, beta: float) -> Tensor:
        energy_b, energy_a, inputs = pieces
        f = -(beta * energy_b.double() + (1 - beta) * energy_a.double())
        for depth, a in zip(self.even, inputs, strict=True):
            f = f + F.softplus(beta * a.double() + (1 - beta) * self.base[depth].double()).sum(dim=-1)
        return f

    def advance(self, states, pieces, beta: float, generator) -> list[Tensor | None]:
        """Even layers given odd, then odd given even, all at ``beta``."""
        full = list(states)
        for depth, a in zip(self.even, pieces[2], strict=True):
            full[depth] = bernoulli(torch.sigmoid(beta * a + (1 - beta) * self.base[depth]), generator)
        new: list[Tensor | None] = [None] * self.model.n_layers
        for depth in self.odd:
            a = self.model.layer_input(full, depth)
            new[depth] = bernoulli(torch.sigmoid(beta * a + (1 - beta) * self.base[depth]), generator)
        return new


@torch.no_grad()
def dbm_ais_log_partition(
    model: DBM,
    base_bias: Tensor | None = None,
    betas: Tensor | int | None = None,
    runs: int = 100,
    generator: torch.Generator | None = None,
    progress: bool = False,
    product_kernel: str = "torch",
) -> AISResult:
    """Estimate ``log Z`` of ``model`` by AIS over its odd layers (module docstring).

    Args:
        model: a DBM (any device; runs where its weights are, in their dtype, with the
            log-weights accumulated in float64).
        base_bias: the base model's visible biases (:func:`~boltzkit.estimate.ais.base_rate_bias`
            of the training data); None: the model's own visible biases.
        betas: inverse temperatures from 0 to 1, or their number (default 14,501).
        runs: independent AIS chains.
        generator: random source on the model's device (None: PyTorch's global one).
        progress: show a progress bar.
        product_kernel: ``onednn`` runs the float32 products in :mod:`boltzkit.onednn`
            (:meth:`DBM.products_in`; the same estimate within its error: rounding
            differences flip some draws, so the chains differ), ``torch`` in torch's matmul.
    """
    if runs < 1:
        raise ValueError(f"Invalid number of AIS runs: {runs} (expected >= 1)")
    started = time.perf_counter()
    schedule = _schedule(betas)
    path = _DBMPath(model, base_bias)
    with model.products_in(product_kernel, rows=runs):
        log_w = forward_ais(path, schedule, runs, generator, progress, "DBM AIS")
    return _ais_result(log_w, path.log_z_base, 0.0, len(schedule), time.perf_counter() - started)


@torch.no_grad()
def variational_bounds(model: DBM, v: Tensor, max_iter: int = 100, tol: float = 1e-5,
                       chunk: int = 2048) -> tuple[Tensor, int]:
    """Per-example ``-E(v, mu) + H(q)`` (float64, ``(B,)``, without ``-log Z``) at the
    mean-field fixed point, and the most sweeps any chunk needed."""
    bounds, sweeps = [], 0
    for start in range(0, len(v), chunk):
        states, used = model.mean_field(v[start:start + chunk].to(model.weights[0]), max_iter, tol)
        bounds.append(model.variational_bound(states).double())
        sweeps = max(sweeps, used)
    return torch.cat(bounds), sweeps


@torch.no_grad()
def data_log_z_bound(model: DBM, v: Tensor, bounds: Tensor | None = None, max_iter: int = 100) -> float:
    """A certain lower bound on ``log Z`` from data: ``Z = sum_v p*(v) >= sum over the distinct
    rows of v of exp(-E(v, mu) + H(q))`` (each term a variational lower bound on ``p*(v)``).
    ``bounds``: the rows' bounds if already computed (each distinct row's is taken once).
    An AIS estimate below it has certainly missed probability mass."""
    distinct, which = torch.unique(v, dim=0, return_inverse=True)
    if bounds is None:
        bounds, _ = variational_bounds(model, distinct, max_iter)
    else:  # one row per distinct state: any of its copies (same state, same bound)
        first = torch.empty(len(distinct), dtype=torch.long, device=which.device)
        first.scatter_(0, which, torch.arange(len(v), device=which.device))
        bounds = bounds[first]
    return torch.logsumexp(bounds, 0).item()


def evaluate_dbm(model: DBM, values: Tensor, train_data: Tensor, *, ais_runs: int, ais_betas: int,
                 pseudocount: float = 1.0, exact_max_units: int = 20, mean_field_iter: int = 100,
                 seed_generator: torch.Generator | None = None, progress: bool = False,
                 product_kernel: str = "torch") -> dict[str, Any]:
    """Every likelihood figure of a DBM on binary ``values`` (``(N, D)``): AIS ``log Z`` with
    its interval and effective sample size, the mean-field bound per example, their
    difference (the test log-likelihood bound) with its standard error, and exact values
    when the odd layers are small enough to enumerate. JSON-ready. ``product_kernel``: who
    runs the float32 products of AIS and mean field (:meth:`DBM.products_in`)."""
    with model.products_in(product_kernel, rows=min(ais_runs, len(values))) as used:
        device = model.weights[0].device
        results: dict[str, Any] = {"examples": len(values), "sizes": list(model.sizes),
                                   "product_kernel": used}
        bounds, sweeps = variational_bounds(model, values.to(device), mean_field_iter)
        results["mean_field_sweeps_max"] = sweeps
        ais = dbm_ais_log_partition(model, base_rate_bias(train_data, pseudocount).to(device), ais_betas,
                                    ais_runs, seed_generator, progress, product_kernel)
        results["ais"] = ais.to_dict()
        n = len(bounds)
        stderr = (bounds.std() / math.sqrt(n)).item() if n > 1 else math.inf
        results["variational_bound_unnormalized"] = bounds.mean().item()
        results["log_likelihood_bound"] = bounds.mean().item() - ais.log_z
        # the per-example bounds are exact given the examples: only log Z is estimated, and its
        # interval moves the bound the other way (the spread over examples is reported apart)
        results["log_likelihood_bound_low"] = bounds.mean().item() - ais.log_z_high
        results["log_likelihood_bound_high"] = bounds.mean().item() - ais.log_z_low
        results["log_likelihood_bound_examples_stderr"] = stderr
        data_bound = data_log_z_bound(model, values.to(device), bounds, mean_field_iter)
        results["log_z_data_lower_bound"] = data_bound
        results["warnings"] = ais_warnings(ais, data_bound)
        if ais.log_z < data_bound:
            # with any log Z at or above the certain bound, the mean-field bound is at most this
            results["log_likelihood_bound_ceiling"] = bounds.mean().item() - data_bound
        results["ais_reliable"] = not results["warnings"]
        results["ais_verdict"] = ("; ".join(results["warnings"]) if results["warnings"] else
                                  "no sign of trouble (effective sample size and interval width); AIS can "
                                  "still miss a mode without showing it")
    if odd_units(model) <= exact_max_units:  # enumeration copies the model to float64: torch's products
        log_z = dbm_log_partition(model, exact_max_units)
        exact = dbm_log_likelihood(model, values.to(device), log_z, exact_max_units)
        results["log_z_exact"] = log_z
        results["log_likelihood_exact"] = exact.mean().item()
        results["log_likelihood_bound_exact_log_z"] = bounds.mean().item() - log_z
    return results


def ais_warnings(ais: AISResult, data_bound: float | None = None, min_ess_fraction: float = 0.1,
                 max_width: float = 1.0) -> list[str]:
    """Signs that an AIS ``log Z`` should not be trusted (empty list: none seen); ``data_bound``:
    a certain lower bound on ``log Z`` (:func:`data_log_z_bound`). No verdict proves an
    estimate right: AIS can miss a mode and agree with itself."""
    warnings = []
    if data_bound is not None and ais.log_z < data_bound:
        warnings.append(f"the AIS log Z {ais.log_z:.2f} lies below {data_bound:.2f}, a certain lower bound "
                        "from the data's own mean-field bounds: AIS missed probability mass and the "
                        "likelihood it gives is too high by at least "
                        f"{data_bound - ais.log_z:.2f} nats; use many more inverse temperatures")
    if ais.ess < min_ess_fraction * ais.runs:
        warnings.append(f"effective sample size {ais.ess:.1f} of {ais.runs} runs: a few runs "
                        "dominate; use more inverse temperatures (--ais-betas)")
    width = ais.log_z_high - ais.log_z_low
    if not math.isfinite(width) or width > max_width:
        warnings.append(f"the +-3 s.e. interval of log Z is {width:.2f} nats wide; use more runs "
                        "or inverse temperatures")
    return warnings


def format_dbm_report(results: dict[str, Any], title: str) -> str:
    ais = results["ais"]
    lines = [title,
             f"log Z, AIS ({ais['runs']} runs, {ais['n_betas']} betas)   {ais['log_z']:.3f} "
             f"[{ais['log_z_low']:.3f}, {ais['log_z_high']:.3f}]  ESS {ais['ess']:.1f}",
             f"mean-field bound on log p(v)            {results['log_likelihood_bound']:.3f} "
             f"[{results['log_likelihood_bound_low']:.3f}, {results['log_likelihood_bound_high']:.3f}]"
             f"  (interval from log Z; +- {results['log_likelihood_bound_examples_stderr']:.3f} s.e. "
             "over examples)"]
    lines.append(f"log Z >= {results['log_z_data_lower_bound']:.3f} for certain (the examples' own bounds)")
    if "log_likelihood_bound_ceiling" in results:
        lines.append(f"so the mean-field bound is at most    {results['log_likelihood_bound_ceiling']:.3f}")
    if "log_z_exact" in results:
        bound = results["log_likelihood_bound_exact_log_z"]
        lines += [f"log Z, exact                            {results['log_z_exact']:.3f}",
                  f"mean-field bound with the exact log Z   {bound:.3f}",
                  f"log-likelihood, exact                   {results['log_likelihood_exact']:.3f}"]
    lines.append("log-likelihoods: average nats per example; the bound uses the AIS log Z, a "
                 "stochastic under-estimate, so it can be optimistic where AIS misses modes")
    lines.append(f"  verdict: {results['ais_verdict']}")
    return "\n".join(lines)
