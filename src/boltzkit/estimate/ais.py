"""Annealed importance sampling (AIS) and reverse AIS for RBMs of every unit family.

Forward AIS (Neal, 2001; for RBMs Salakhutdinov & Murray, 2008) estimates ``log Z``.
The intermediate distributions interpolate the energies of a base-rate model ``A`` (no
weights, visible biases ``b_A`` from the data's pixel means, hidden units uncoupled) and
the RBM ``B``: ``E_k = (1 - beta_k) E_A + beta_k E_B``. With the hidden units summed out,

    log f_k(v) = v . b_A + beta_k v . (b_B - b_A) + sum_j softplus(beta_k (v W + c)_j)

so ``f_0`` is the base rate times ``2^H`` (``log Z_0 = sum_i softplus(b_A,i) + H log 2``)
and ``f_K = exp(-F_B)``. Chains start from the base rate; each inverse temperature adds
``log f_k(v) - log f_{k-1}(v)`` to the log-weight and applies one Gibbs sweep ``T_k``
that leaves ``p_k`` invariant. ``log Z_B ~ log Z_0 + log mean exp(log w)``; by Jensen this
is a stochastic *lower* bound on ``log Z``, so ``-F(v) - log Z_hat`` tends to
*over*-estimate the log-likelihood.

Reverse AIS in the manner of RAISE (Burda, Grosse & Salakhutdinov, 2015) starts a chain
at each held-out vector ``v = x_K`` and runs the same sweeps backwards to ``x_1``;

    log p_hat(v) = log p_0(x_1) + sum_{k=1}^{K-1} [log f_k(x_{k+1}) - log f_k(x_k)]

is an unbiased estimate of the annealing model's likelihood ``q(v)`` (``T_k`` is
reversible), so its log is a stochastic *lower* bound on ``log q(v)``. ``q`` is the RBM's
distribution only where the annealing reaches every mode: a mode the path never visits
is missing from ``q`` as from forward AIS, so forward and reverse AIS can agree and both
be wrong. Their agreement is evidence, not proof; :mod:`boltzkit.estimate.multipath`
compares several paths and a data bound.

Other unit families (Gaussian or categorical units on either layer) use
a second path that anneals the weights only: ``E_k(v, h) = self energies - beta_k s(v) W s(h)``,
so ``log f_k(v) = -visible.self_energy(v) + hidden.log_partition(beta_k s(v) W)`` and the
base ``k = 0`` is the two layers decoupled, whose ``log Z_0`` each family gives in closed
form. Centered models are first re-parametrised into the plain model with the same
distribution; their free energy differs from its by a constant, added back to ``log Z``.

Sampling runs in the model's dtype (float32 for trained models). Forward AIS computes each
step's ``log f_k - log f_{k-1}`` in a form free of cancellation and accumulates it in
float64; reverse AIS, whose differences are between two states, computes ``f`` in float64.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .. import onednn
from ..models.rbm import RBM
from ..units import bernoulli
from .exact import as_float64, log_mean_exp

DEFAULT_BETAS = 14501
# Salakhutdinov & Murray (2008): steps of 1e-3 on [0, 0.5), 1e-4 on [0.5, 0.9), 1e-5 on [0.9, 1].
_SEGMENTS = ((0.0, 0.5, 500), (0.5, 0.9, 4000), (0.9, 1.0, 10000))


def default_betas(n: int = DEFAULT_BETAS) -> Tensor:
    """``n`` inverse temperatures from 0 to 1 (float64).

    ``n = 14501`` is exactly Salakhutdinov & Murray's schedule; other ``n`` keep its
    shape, splitting the ``n - 1`` intervals between the three segments in the same
    500 : 4000 : 10000 proportion.
    """
    if n < 2:
        raise ValueError(f"Invalid number of inverse temperatures: {n} (expected >= 2)")
    if n < 4:
        return torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    intervals = n - 1
    total = sum(count for *_, count in _SEGMENTS)
    counts = [max(1, round(intervals * count / total)) for *_, count in _SEGMENTS[:2]]
    counts.append(intervals - sum(counts))
    parts = [torch.linspace(lo, hi, c + 1, dtype=torch.float64)[:-1]
             for (lo, hi, _), c in zip(_SEGMENTS, counts, strict=True)]
    return torch.cat([*parts, torch.ones(1, dtype=torch.float64)])


def base_rate_bias(data: Tensor, pseudocount: float = 1.0) -> Tensor:
    """Visible biases of the base-rate model: ``logit((sum v + a) / (N + 2a))`` per unit.

    The pseudo-count ``a`` keeps pixels that are never (or always) on in the data at a
    finite bias.
    """
    if pseudocount <= 0:
        raise ValueError(f"Invalid pseudocount: {pseudocount} (expected > 0)")
    counts = data.to(torch.float64).sum(dim=0)
    p = (counts + pseudocount) / (len(data) + 2 * pseudocount)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class AISResult:
    """Forward AIS estimate of ``log Z`` with its spread.

    ``log_z_low`` / ``log_z_high`` are ``log(Z_hat -/+ 3 sigma_hat)``, ``sigma_hat`` the
    standard error of the mean importance weight (``-inf`` when the lower end reaches 0).
    ``ess`` is Kish's effective sample size of the weights.
    """

    log_z: float
    log_z_low: float
    log_z_high: float
    log_z_base: float
    ess: float
    runs: int
    n_betas: int
    seconds: float
    log_weights: Tensor = field(repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "log_weights"}


@dataclass
class ReverseAISResult:
    """Reverse AIS (RAISE) log-likelihood estimates per example (float64)."""

    per_example: Tensor = field(repr=False)
    mean: float
    standard_error: float
    runs: int
    n_betas: int
    seconds: float

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "per_example"} | {
            "examples": len(self.per_example)}


def is_binary(model: RBM) -> bool:
    """Whether ``model`` has Bernoulli visible and hidden units (the base-rate path applies)."""
    return model.visible.name == "bernoulli" and model.hidden.name == "bernoulli"


def ais_base(model: RBM, train_data: Tensor, pseudocount: float = 1.0) -> Tensor | None:
    """The base model AIS should start from: the base-rate biases of ``train_data`` (on
    the model's device) for a Bernoulli-Bernoulli RBM, ``None`` (the decoupled layers) for
    other families. The data stay where they are: only the ``(D,)`` biases move."""
    if not is_binary(model):
        return None
    return base_rate_bias(train_data, pseudocount).to(model.weight.device)


@torch.no_grad()
def centering_shift(model: RBM) -> float:
    """``log Z(model) - log Z(model.without_offsets())``: 0 without centering. The free
    energies differ by a constant ``C`` for every ``v``, so the log partitions by ``-C``."""
    if not model.centered:
        return 0.0
    zero = torch.zeros(1, model.n_visible, dtype=torch.float64, device=model.weight.device)
    plain = as_float64(model.without_offsets())
    return -(as_float64(model).free_energy(zero) - plain.free_energy(zero)).item()


def _path(model: RBM, base_bias: Tensor | None) -> _BaseRatePath | _DecoupledPath:
    """The annealing path for ``model``, with ``log_z_shift`` set for centered models."""
    plain, shift = model.without_offsets(), centering_shift(model)
    if is_binary(plain):
        path = _BaseRatePath(plain, plain.visible.bias.detach() if base_bias is None else base_bias)
    elif base_bias is not None:
        raise ValueError("AIS from a base-rate model (base_bias) needs Bernoulli visible and hidden "
                         f"units; this RBM has {model.visible.name} visible and {model.hidden.name} "
                         "hidden units: pass base_bias=None (the decoupled base model)")
    else:
        path = _DecoupledPath(plain)
    path.log_z_shift = shift
    return path


class AnnealingPath(Protocol):
    """What :func:`forward_ais` needs of a path: the chains' first state drawn from the
    base model, the log-weight increment at each inverse temperature, the transition."""

    log_z_base: float
    device: torch.device

    def start(self, runs: int, generator: torch.Generator | None) -> Any: ...

    def forward_step(self, state: Any, beta: float, previous: float) -> tuple[Tensor, Any]: ...

    def advance(self, state: Any, reused: Any, beta: float, generator: torch.Generator | None) -> Any: ...


class _RBMSteps:
    """:class:`AnnealingPath` for the RBM paths (state: ``v``)."""

    weight: Tensor
    in_onednn = False
    """Whether the products run in :mod:`boltzkit.onednn` (:meth:`use_kernel`)."""

    def use_kernel(self, kernel: str, runs: int) -> None:
        """Multiply ``runs`` chains in the kernel :func:`boltzkit.onednn.kernel_for` gives."""
        self.in_onednn = onednn.kernel_for(kernel, self.weight, rows=runs) == "onednn"

    def times(self, x: Tensor, transposed: bool) -> Tensor:
        """``x W`` (or ``x W^T``) in the path's kernel."""
        if self.in_onednn:
            return onednn.times(x, self.weight, transposed)
        return x @ (self.weight.T if transposed else self.weight)

    @property
    def device(self) -> torch.device:
        return self.weight.device

    def start(self, runs: int, generator: torch.Generator | None) -> Tensor:
        return self.base_sample(runs, generator)

    def forward_step(self, v: Tensor, beta: float, previous: float) -> tuple[Tensor, Tensor]:
        """``log f_beta(v) - log f_previous(v)`` and the tempered hidden input the sweep reuses."""
        a = self.hidden_input(v)
        tempered = self.tempered(a, beta)
        return self.log_f_step(v, a, beta, previous, tempered), tempered

    def advance(self, v: Tensor, tempered: Tensor, beta: float, generator: torch.Generator | None) -> Tensor:
        return self.sweep(tempered, beta, generator)


class _BaseRatePath(_RBMSteps):
    """The annealing path between the base rate and a Bernoulli-Bernoulli RBM."""

    log_z_shift = 0.0

    def __init__(self, model: RBM, base_bias: Tensor):
        self.weight = model.weight.detach()
        self.b = model.visible.bias.detach()
        self.c = model.hidden.bias.detach()
        self.b_base = base_bias.to(self.weight)
        self.log_z_base = (F.softplus(base_bias.to(torch.float64)).sum()
                           + model.n_hidden * math.log(2.0)).item()

    def hidden_input(self, v: Tensor) -> Tensor:
        """``v W + c`` in the model's dtype."""
        if self.in_onednn:
            return onednn.linear(v, self.weight.T, self.c)
        return torch.addmm(self.c, v, self.weight)

    def tempered(self, hidden_input: Tensor, beta: float) -> Tensor:
        """What :meth:`log_f_step` and :meth:`sweep` share: the hidden means at ``beta``."""
        return torch.sigmoid(beta * hidden_input)

    def log_f(self, v: Tensor, hidden_input: Tensor, beta: float) -> Tensor:
        """``log f_beta(v)`` in float64, shape ``(R,)``."""
        linear = v.to(torch.float64) @ (self.b_base + beta * (self.b - self.b_base)).to(torch.float64)
        return linear + F.softplus(beta * hidden_input.to(torch.float64)).sum(dim=1)

    def log_f_step(self, v: Tensor, hidden_input: Tensor, beta: float, previous: float,
                   hidden_mean: Tensor) -> Tensor:
        """``log f_beta(v) - log f_previous(v)`` as float64, shape ``(R,)``.

        Per hidden unit, with ``x = beta a`` and ``d = (beta - previous) a``,
        ``softplus(x) - softplus(x - d) = -log1p(sigmoid(x) * expm1(-d))``: no
        cancellation, so the model's float32 is accurate, and ``sigmoid(x)`` is the
        hidden mean that the next sweep samples from anyway (``hidden_mean``).
        """
        linear = (beta - previous) * (v @ (self.b - self.b_base))
        gap = -torch.log1p(hidden_mean * torch.expm1(-(beta - previous) * hidden_input)).sum(dim=1)
        return (linear + gap).to(torch.float64)

    def sweep(self, hidden_mean: Tensor, beta: float, generator: torch.Generator | None) -> Tensor:
        """One Gibbs sweep ``v -> h -> v'`` at ``beta``, given ``hidden_mean = sigmoid(beta (v W + c))``."""
        h = bernoulli(hidden_mean, generator)
        # (1 - beta) b_A + beta (b + h W^T): the interpolated visible input
        bias = self.b_base + beta * (self.b - self.b_base)
        if self.in_onednn:
            visible_input = onednn.times(h, self.weight, transposed=True).mul_(beta).add_(bias)
        else:
            visible_input = torch.addmm(bias, h, self.weight.T, alpha=beta)
        return bernoulli(torch.sigmoid(visible_input), generator)

    def base_sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return bernoulli(torch.sigmoid(self.b_base).expand(n, -1), generator)

    def base_log_prob(self, v: Tensor) -> Tensor:
        """``log p_0(v)`` of the normalized base-rate model, float64."""
        b = self.b_base.to(torch.float64)
        return v.to(torch.float64) @ b - F.softplus(b).sum()


class _DecoupledPath(_RBMSteps):
    """The path that anneals the weights of an RBM of any unit families (no offsets).

    ``log f_beta(v) = -visible.self_energy(v) + hidden.log_partition(beta s(v) W)``; at
    ``beta = 0`` the layers are independent: ``log Z_0 = visible.log_partition(0) +
    hidden.log_partition(0)``.
    """

    log_z_shift = 0.0

    def __init__(self, model: RBM):
        self.weight = model.weight.detach()
        self.visible, self.hidden = model.visible, model.hidden  # sampling, in the model's dtype
        exact = as_float64(model)  # log f, in float64
        self.visible64, self.hidden64 = exact.visible, exact.hidden
        zero_v = torch.zeros(model.n_visible, dtype=torch.float64, device=self.weight.device)
        zero_h = torch.zeros(model.n_hidden, dtype=torch.float64, device=self.weight.device)
        self.log_z_visible = self.visible64.log_partition(zero_v).item()
        self.log_z_base = self.log_z_visible + self.hidden64.log_partition(zero_h).item()

    def hidden_input(self, v: Tensor) -> Tensor:
        """``s(v) W`` in the model's dtype."""
        return self.times(self.visible.scaled(v), transposed=False)

    def tempered(self, hidden_input: Tensor, beta: float) -> Tensor:
        """The hidden layer's input at ``beta``: ``beta s(v) W``."""
        return beta * hidden_input

    def log_f(self, v: Tensor, hidden_input: Tensor, beta: float) -> Tensor:
        return (-self.visible64.self_energy(v.to(torch.float64))
                + self.hidden64.log_partition(beta * hidden_input.to(torch.float64)))

    def log_f_step(self, v: Tensor, hidden_input: Tensor, beta: float, previous: float,
                   tempered: Tensor) -> Tensor:
        """``log f_beta(v) - log f_previous(v)`` (the visible self energy cancels), float64."""
        a = hidden_input.to(torch.float64)
        return self.hidden64.log_partition(beta * a) - self.hidden64.log_partition(previous * a)

    def sweep(self, tempered: Tensor, beta: float, generator: torch.Generator | None) -> Tensor:
        """``h ~ p_beta(h | v)`` from its input ``tempered``, then ``v ~ p_beta(v | h)``."""
        h = self.hidden.sample(tempered, generator)
        return self.visible.sample(beta * self.times(self.hidden.scaled(h), transposed=True), generator)

    def base_sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.visible.sample(self.weight.new_zeros(n, self.visible.n), generator)

    def base_log_prob(self, v: Tensor) -> Tensor:
        """``log p_0(v)`` of the decoupled visible layer, float64."""
        return -self.visible64.self_energy(v.to(torch.float64)) - self.log_z_visible


def _schedule(betas: Tensor | int | None) -> list[float]:
    if betas is None or isinstance(betas, int):
        betas = default_betas(DEFAULT_BETAS if betas is None else betas)
    values = [float(b) for b in betas]
    if values[0] != 0.0 or values[-1] != 1.0 or any(a >= b for a, b in zip(values, values[1:], strict=False)):
        raise ValueError("AIS inverse temperatures must increase strictly from 0 to 1")
    return values


@dataclass
class _Annealing:
    """What forward and reverse AIS share: the annealing path, its inverse temperatures,
    the random source for the Gibbs sweeps and the start time."""

    path: _BaseRatePath | _DecoupledPath
    betas: list[float]
    generator: torch.Generator | None
    started: float

    def zero_log_weights(self, n: int) -> Tensor:
        """``n`` float64 log-weight accumulators on the model's device."""
        return torch.zeros(n, dtype=torch.float64, device=self.path.device)

    def seconds(self) -> float:
        """Wall-clock seconds since the set-up."""
        return time.perf_counter() - self.started


def _annealing(model: RBM, base_bias: Tensor | None, betas: Tensor | int | None, runs: int,
               generator: torch.Generator | None, what: str) -> _Annealing:
    """Validate the arguments shared by forward and reverse AIS and set up the annealing.

    ``generator`` is passed through unchanged (``None``: PyTorch's global generator of the
    model's device); the set-up draws no random numbers.
    """
    if runs < 1:
        raise ValueError(f"Invalid number of {what} runs: {runs} (expected >= 1)")
    started = time.perf_counter()
    return _Annealing(_path(model, base_bias), _schedule(betas), generator, started)


@torch.no_grad()
def ais_log_partition(
    model: RBM,
    base_bias: Tensor | None = None,
    betas: Tensor | int | None = None,
    runs: int = 100,
    generator: torch.Generator | None = None,
    progress: bool = False,
    product_kernel: str = "torch",
) -> AISResult:
    """Estimate ``log Z`` of ``model`` by forward AIS.

    Args:
        model: an RBM of any unit families, centered or not (any device; runs where its
            weights are).
        base_bias: for Bernoulli-Bernoulli RBMs, the visible biases of the base-rate model
            (:func:`base_rate_bias`; None: the model's own visible biases); must be None
            for other families, which start from their decoupled layers (:func:`ais_base`).
        betas: inverse temperatures from 0 to 1, or their number (default 14,501).
        runs: independent AIS chains.
        generator: random source on the model's device. ``None`` draws from PyTorch's
            global generator for that device (as ``torch.rand`` does): the estimate is then
            reproducible only if the caller seeds it. The library always passes one.
        progress: show a progress bar.
        product_kernel: ``onednn`` runs the float32 products in :mod:`boltzkit.onednn`
            (CPU; faster on AMD CPUs; the same estimate within its error: rounding
            differences flip some draws, so the chains differ), ``torch`` in torch's matmul.
    """
    run = _annealing(model, base_bias, betas, runs, generator, "AIS")
    run.path.use_kernel(product_kernel, runs)
    log_w = forward_ais(run.path, run.betas, runs, run.generator, progress, "AIS")
    return _ais_result(log_w, run.path.log_z_base, run.path.log_z_shift, len(run.betas), run.seconds())


def forward_ais(path: AnnealingPath, schedule: list[float], runs: int, generator: torch.Generator | None,
                progress: bool, desc: str) -> Tensor:
    """The forward-AIS loop shared by RBMs and DBMs: ``runs`` chains from ``path.start``;
    at each ``beta_k`` after the first, add ``log f_k(x) - log f_{k-1}(x)``
    (``path.forward_step``, which also returns what the sweep reuses) to the float64
    log-weights and, except at the last, move ``x`` by one transition that leaves ``p_k``
    invariant (``path.advance``). Returns the log-weights, shape ``(runs,)``."""
    state = path.start(runs, generator)
    log_w = torch.zeros(runs, dtype=torch.float64, device=path.device)
    last = len(schedule) - 1
    with _beta_bar(last, desc, progress) as bar:
        for k in range(1, last + 1):
            increment, reused = path.forward_step(state, schedule[k], schedule[k - 1])
            log_w += increment
            if k < last:
                state = path.advance(state, reused, schedule[k], generator)
            if k % 250 == 0:
                bar.update(250)
    return log_w


def _beta_bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, disable=not enabled, desc=desc, unit="beta", leave=False, mininterval=0.5)


def _ais_result(log_w: Tensor, log_z_base: float, shift: float, n_betas: int, seconds: float) -> AISResult:
    runs = len(log_w)
    top = log_w.max()
    ratios = torch.exp(log_w - top)
    mean = ratios.mean()
    spread = 3 * ratios.std() / math.sqrt(runs) if runs > 1 else torch.tensor(float("inf"))
    offset = log_z_base + shift + top.item()
    low = mean - spread
    ess = torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)).item()
    return AISResult(
        log_z=offset + math.log(mean.item()),
        log_z_low=offset + math.log(low.item()) if low > 0 else -math.inf,
        log_z_high=offset + math.log((mean + spread).item()),
        log_z_base=log_z_base,
        ess=ess,
        runs=runs,
        n_betas=n_betas,
        seconds=seconds,
        log_weights=log_w.cpu(),
    )


@torch.no_grad()
def reverse_ais_log_likelihood(
    model: RBM,
    data: Tensor,
    base_bias: Tensor | None = None,
    betas: Tensor | int | None = None,
    runs: int = 1,
    generator: torch.Generator | None = None,
    chunk_rows: int = 4096,
    progress: bool = False,
) -> ReverseAISResult:
    """Conservative log-likelihood estimates of ``data`` (``(N, D)``) by reverse AIS.

    ``model``, ``base_bias``, ``betas`` and ``generator`` (``None``: PyTorch's global
    generator of the model's device) as for :func:`ais_log_partition`. Each example starts
    ``runs`` reverse chains; its estimate is ``log mean exp`` of their log-weights. Rows are
    processed in chunks of ``chunk_rows`` chains.
    """
    run = _annealing(model, base_bias, betas, runs, generator, "reverse AIS")
    path, schedule = run.path, run.betas
    x_all = data.to(path.weight).repeat_interleave(runs, dim=0)
    estimates = []
    steps = (len(schedule) - 2) * math.ceil(len(x_all) / chunk_rows)
    with _beta_bar(steps, "reverse AIS", progress) as bar:
        for start in range(0, len(x_all), chunk_rows):
            x = x_all[start : start + chunk_rows]
            a = path.hidden_input(x)
            log_w = run.zero_log_weights(len(x))
            for k in range(len(schedule) - 2, 0, -1):  # K-1 down to 1
                beta = schedule[k]
                log_w += path.log_f(x, a, beta)  # f_k at x_{k+1}
                x = path.sweep(path.tempered(a, beta), beta, run.generator)
                a = path.hidden_input(x)
                log_w -= path.log_f(x, a, beta)  # f_k at x_k
                if k % 250 == 0:
                    bar.update(250)
            estimates.append(log_w + path.base_log_prob(x))
    per_run = torch.cat(estimates).view(len(data), runs)
    per_example = log_mean_exp(per_run, dim=1).cpu()
    n = len(per_example)
    stderr = (per_example.std() / math.sqrt(n)).item() if n > 1 else math.inf
    return ReverseAISResult(per_example, per_example.mean().item(), stderr, runs, len(schedule),
                            run.seconds())
