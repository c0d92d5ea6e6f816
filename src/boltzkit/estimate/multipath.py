"""Forward AIS along several annealing paths, with one conservative answer and a verdict.

Each path's ``log Z_hat`` is a stochastic *lower* bound on ``log Z`` (Jensen), and a path
that never reaches a mode of the model can be far below the truth while its ESS and
``+-3 sigma`` interval look fine. Paths that start elsewhere miss different modes, so:

- the estimate is the largest of the paths' estimates (the conservative choice for the
  likelihood ``-F(v) - log Z``, which it lowers). The largest of several lower bounds is
  no longer one in expectation, but it rarely exceeds the truth by much:
  ``P(max_k log Z_hat_k > log Z + t) <= K exp(-t)`` for ``K`` paths (Markov's inequality
  on each ``Z_hat_k / Z``, whose mean is 1);
- ``Z`` is at least the sum of ``exp(-F)`` over any set of distinct states, visible or
  hidden (:func:`data_log_z_bound`: the training vectors, the modes they lead to, and
  their hidden states, each summing a whole mode of the visible layer): a hard lower
  bound on ``log Z`` that AIS must not undercut. A path below it has provably missed the
  mass where the data are (the failure that makes AIS confidently wrong: it starts from,
  and anneals past, modes it never visits);
- the verdict is *unreliable* when the chosen path's effective sample size is below
  ``min_ess_fraction`` of its runs, when its ``+-3 sigma`` interval is wider than
  ``max_width`` nats or its ``-3 sigma`` end reaches zero weight (unless a path free of
  these faults agrees with it within both intervals), when
  another path lies below it beyond both intervals (``high_other < low_chosen``), or
  when its interval lies below the data bound. The estimate is never below the bound.

Agreement is evidence, not proof: every path can miss the same mode. The paths, for an
RBM with ``D`` visible and ``H`` hidden units:

- ``base rate``: the visible base rate of the training data (Salakhutdinov & Murray, 2008);
- ``uniform``: no biases, every visible vector equally likely;
- ``hidden base rate``: the transposed RBM (``Z`` is the same) from the base rate of the
  training data's hidden activities, which enters the model from the other layer;
- for Gaussian or categorical units, which have no base-rate path: the decoupled layers,
  from the visible side and from the hidden side.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..models.rbm import RBM
from .ais import AISResult, ais_log_partition, base_rate_bias, centering_shift, is_binary
from .exact import as_float64


@dataclass
class MultiPathAIS:
    """Forward AIS from several starts (see the module docstring).

    ``paths`` maps each path's name to its :class:`AISResult`; ``log_z`` is the largest
    estimate, from path ``chosen``; ``spread`` = largest - smallest estimate (nats);
    ``reliable`` and ``reasons`` give the verdict.
    """

    paths: dict[str, AISResult]
    chosen: str
    reliable: bool
    reasons: list[str]
    data_bound: float = float("-inf")
    """The lower bound on ``log Z`` of :func:`data_log_z_bound` (``-inf``: none applies)."""

    @property
    def best(self) -> AISResult:
        return self.paths[self.chosen]

    @property
    def log_z(self) -> float:
        return max(self.best.log_z, self.data_bound)

    @property
    def interval(self) -> tuple[float, float]:
        """``(low, high)`` for ``log Z``: the chosen path's ``+-3 sigma`` interval, raised to
        the data bound; where the bound is above the whole interval, the path is discarded
        and only ``log Z >= bound`` is known: ``(bound, inf)``."""
        low, high = self.best.log_z_low, self.best.log_z_high
        if high < self.data_bound:
            return self.data_bound, math.inf
        return max(low, self.data_bound), high

    @property
    def spread(self) -> float:
        values = [result.log_z for result in self.paths.values()]
        return max(values) - min(values)

    @property
    def verdict(self) -> str:
        if self.reliable:
            return (f"no sign of trouble: {len(self.paths)} paths agree within their intervals "
                    f"(spread {self.spread:.2f} nats), ESS {self.best.ess:.0f} of {self.best.runs}; "
                    "AIS can still miss a mode no path visits")
        return "UNRELIABLE: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        low, high = self.interval
        return {
            "log_z": self.log_z, "log_z_low": low if math.isfinite(low) else None,
            "log_z_high": high if math.isfinite(high) else None, "chosen_path": self.chosen,
            "spread": self.spread, "data_bound": self.data_bound if math.isfinite(self.data_bound) else None,
            "reliable": self.reliable, "verdict": self.verdict,
            "paths": {name: {"log_z": r.log_z, "log_z_low": r.log_z_low, "log_z_high": r.log_z_high,
                             "ess": r.ess, "runs": r.runs, "betas": r.n_betas, "seconds": r.seconds}
                      for name, r in self.paths.items()},
        }


@torch.no_grad()
def transposed(model: RBM) -> RBM:
    """The RBM with its layers swapped (visible <-> hidden), of the plain equivalent of a
    centered model: the same energy, so ``Z(transposed) = Z(model without offsets)``."""
    plain = model.without_offsets()
    flipped = copy.deepcopy(plain)
    flipped.visible, flipped.hidden = flipped.hidden, flipped.visible
    flipped.weight = torch.nn.Parameter(plain.weight.detach().T.contiguous())
    flipped.visible_offset, flipped.hidden_offset = plain.hidden_offset.clone(), plain.visible_offset.clone()
    return flipped


def ais_starts(model: RBM, train_data: Tensor, pseudocount: float = 1.0
               ) -> dict[str, tuple[RBM, Tensor | None, float]]:
    """Each path: the model to anneal to, its base biases (None: decoupled layers) and
    the constant to add to its ``log Z`` to get ``model``'s."""
    device = model.weight.device
    flipped, shift = transposed(model), centering_shift(model)
    if not is_binary(model):
        return {"decoupled": (model, None, 0.0), "decoupled, hidden side": (flipped, None, shift)}
    data = train_data.to(device=device, dtype=model.weight.dtype)
    hidden_means = torch.cat([model.hidden_mean(chunk) for chunk in data.split(4096)])
    return {
        "base rate": (model, base_rate_bias(train_data, pseudocount).to(device), 0.0),
        "uniform": (model, torch.zeros(model.n_visible, device=device), 0.0),
        "hidden base rate": (flipped, base_rate_bias(hidden_means, pseudocount).to(device), shift),
    }


def multipath_log_partition(
    model: RBM,
    train_data: Tensor,
    betas: Tensor | int | None = None,
    runs: int = 100,
    generator: torch.Generator | None = None,
    *,
    pseudocount: float = 1.0,
    min_ess_fraction: float = 0.1,
    max_width: float = 1.0,
    progress: bool = False,
    product_kernel: str = "torch",
) -> MultiPathAIS:
    """Forward AIS along every path of :func:`ais_starts` with ``betas`` and ``runs`` each,
    drawn in turn from ``generator``, its products in ``product_kernel``
    (:func:`~boltzkit.estimate.ais.ais_log_partition`); the largest estimate and a verdict."""
    if not 0 <= min_ess_fraction <= 1:
        raise ValueError(f"Invalid min_ess_fraction: {min_ess_fraction} (expected 0..1)")
    results = {}
    for name, (target, base, shift) in ais_starts(model, train_data, pseudocount).items():
        result = ais_log_partition(target, base, betas, runs, generator, progress=progress,
                                   product_kernel=product_kernel)
        results[name] = replace(result, log_z=result.log_z + shift, log_z_low=result.log_z_low + shift,
                                log_z_high=result.log_z_high + shift)
    chosen = max(results, key=lambda name: results[name].log_z)
    best, reasons = results[chosen], []
    bound = data_log_z_bound(model, train_data)
    if best.log_z_high < bound:  # below the bound beyond its own error (the estimate is raised anyway)
        reasons.append(f"every path is below the data's own lower bound on log Z by {bound - best.log_z:.2f} "
                       "nats (they miss mass where the data are); reporting the bound")
    weak = _weaknesses(best, min_ess_fraction, max_width)
    # a noisy largest estimate is still well determined when a precise path agrees with it
    corroborated = any(not _weaknesses(result, min_ess_fraction, max_width)
                       and result.log_z_high >= best.log_z_low and result.log_z_low <= best.log_z_high
                       for name, result in results.items() if name != chosen)
    if weak and not corroborated:
        reasons += [f"the chosen path ({chosen}) {weakness}" for weakness in weak]
    for name, result in results.items():
        if name != chosen and result.log_z_high < best.log_z_low:
            reasons.append(f"path '{name}' is {best.log_z - result.log_z:.2f} nats below '{chosen}', "
                           "beyond both intervals")
    return MultiPathAIS(results, chosen, not reasons, reasons, bound)


def _weaknesses(result: AISResult, min_ess_fraction: float, max_width: float) -> list[str]:
    """Why one path's estimate is too noisy to stand alone (empty: it can)."""
    weak = []
    if result.ess < max(1.0, min_ess_fraction * result.runs):
        weak.append(f"has ESS {result.ess:.1f} of {result.runs} runs")
    if not math.isfinite(result.log_z_low):
        weak.append("has a -3 sigma end at zero weight (its interval is unbounded below)")
    elif result.log_z_high - result.log_z_low > max_width:
        weak.append(f"has a +-3 sigma interval of {result.log_z_high - result.log_z_low:.2f} nats "
                    f"(more than {max_width:g})")
    return weak


@torch.no_grad()
def local_modes(model: RBM, v: Tensor, steps: int = 20) -> Tensor:
    """Iterated conditional modes from ``v``: ``h = [E[h|v] > 1/2]``, ``v = [E[v|h] > 1/2]``
    until nothing changes (at most ``steps`` times): nearby local maxima of ``p(v, h)``
    (binary units on both layers). Only candidates for :func:`data_log_z_bound`, so they
    are searched in the model's dtype."""
    for _ in range(steps):
        h = (model.hidden_mean(v) > 0.5).to(v.dtype)
        nxt = (model.visible_mean(h) > 0.5).to(v.dtype)
        if torch.equal(nxt, v):
            break
        v = nxt
    return v


@torch.no_grad()
def data_log_z_bound(model: RBM, data: Tensor, max_states: int = 10000, chunk: int = 4096) -> float:
    """A lower bound on ``log Z`` from states the data point to (float64; ``-inf`` if none).

    ``Z = sum_v exp(-F(v)) = sum_h exp(-F(h))``, so the sum over any set of distinct
    states bounds it from below. The larger of two such sums is returned: over distinct
    visible states (the training vectors, rounded to 0 / 1, and the local modes they lead
    to: :func:`local_modes`; Bernoulli visible units), and over the distinct hidden states
    ``[E[h|v] > 1/2]`` of those and the all-off state (Bernoulli hidden units), whose
    ``-F(h)`` sums the visible layer out exactly, whole modes at once. At most
    ``max_states`` distinct training vectors (evenly spaced) are used: any subset gives a
    bound, a larger one a tighter bound. Free energies in float64, so rounding cannot
    lift the bound above ``log Z``.
    """
    device, dtype = model.weight.device, model.weight.dtype
    precise = as_float64(model)
    bounds = [float("-inf")]
    if model.visible.name == "bernoulli":
        states = torch.unique((data > 0.5).to(torch.uint8), dim=0)  # grey levels rounded
    else:
        states = data
    if len(states) > max_states:
        states = states[torch.linspace(0, len(states) - 1, max_states).long()]
    candidates = states.to(device=device, dtype=dtype)
    if model.visible.name == "bernoulli":
        if model.hidden.name == "bernoulli":  # modes hold the mass that data a few flips away miss
            modes = [local_modes(model, part) for part in candidates.split(chunk)]
            candidates = torch.unique(torch.cat([candidates, *modes]).to(torch.uint8), dim=0).to(dtype)
        bounds.append(_log_sum_exp_distinct(candidates, precise.free_energy, chunk))
    if model.hidden.name == "bernoulli":
        hidden = [(model.hidden_mean(part) > 0.5).to(torch.uint8) for part in candidates.split(chunk)]
        hidden.append(torch.zeros(1, model.n_hidden, device=device, dtype=torch.uint8))
        bounds.append(_log_sum_exp_distinct(torch.cat(hidden), precise.hidden_free_energy, chunk))
    return max(bounds)


def _log_sum_exp_distinct(states: Tensor, free_energy, chunk: int) -> float:
    """``log sum exp(-free_energy(s))`` over the distinct binary rows of ``states`` (float64)."""
    distinct = torch.unique(states.to(torch.uint8), dim=0)
    terms = torch.cat([-free_energy(part.to(torch.float64)).to(torch.float64)
                       for part in distinct.split(chunk)])
    return torch.logsumexp(terms, 0).item()


def reverse_verdict(reverse_per_example: Tensor, forward_per_example: Tensor,
                    forward: MultiPathAIS) -> tuple[bool, str]:
    """Whether reverse AIS (a stochastic lower bound on the *annealing model's*
    log-likelihood) can be read as the RBM's: only when forward AIS found no sign of
    trouble and the two agree on the same examples. Agreement: the mean of the paired
    differences ``reverse - forward`` (``forward = -F(v) - log Z_hat``) lies within 3 of
    its standard errors plus the half-width of forward AIS's interval (+0.1 nats);
    at least 2 examples are needed for the standard error."""
    if not forward.reliable:
        return False, "UNRELIABLE: forward AIS is (see its verdict), and reverse AIS anneals the same way"
    differences = (reverse_per_example.to(torch.float64).cpu() - forward_per_example.to(torch.float64).cpu())
    if len(differences) < 2:
        return False, "UNRELIABLE: reverse AIS on fewer than 2 examples has no standard error"
    gap = differences.mean().item()
    stderr = (differences.std() / len(differences) ** 0.5).item()
    low, high = forward.interval
    allowed = 3 * stderr + (high - low) / 2 + 0.1
    if abs(gap) > allowed:
        return False, (f"UNRELIABLE: reverse AIS is {gap:+.2f} nats from forward AIS on the same examples, "
                       f"beyond {allowed:.2f} (3 standard errors of the paired differences and forward "
                       "AIS's interval): the annealing misses part of the model")
    return True, (f"agrees with forward AIS within {abs(gap):.2f} nats (allowed {allowed:.2f}); "
                  "evidence, not proof")
