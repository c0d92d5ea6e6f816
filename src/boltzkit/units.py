"""Unit families: the per-layer maths that free energies and conditionals are built from.

A layer of units ``x`` (shape ``(..., n)``) with bias ``b`` is seen by the weights as
``scaled(x)`` (``x`` itself, or ``x / sigma`` for Gaussian units) and receives an
*input* ``a`` (shape ``(..., n)``) from the layer it is connected to, e.g.
``a = scaled(v) @ W`` for the hidden layer of an RBM. A family defines

- ``self_energy(x)``: the energy terms of this layer alone, shape ``(...,)``;
- ``log_partition(a) = log integral_x exp(-self_energy(x) + scaled(x) . a)``, summed over
  units, shape ``(...,)``: what summing the layer out of ``exp(-E)`` contributes;
- ``mean(a, beta)`` and ``sample(a, generator, beta)``: the conditional ``p(x | a)``, or at
  inverse temperature ``beta`` the distribution proportional to
  ``exp(beta (-self_energy(x) + scaled(x) . a))`` (parallel tempering);
- ``absorb_input(delta)``: change the bias so that ``p(x | a)`` becomes ``p(x | a + delta)``
  (the re-parametrisation centering needs).

For any pair of families an RBM's free energy is
``F(v) = visible.self_energy(v) - hidden.log_partition(scaled(v) @ W)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Units(nn.Module):
    """Base class of a layer of ``n`` units with a learnable bias (``self.bias``, ``(n,)``)."""

    name: str = ""
    discrete = True

    def __init__(self, n: int):
        super().__init__()
        if n < 1:
            raise ValueError(f"Invalid number of units: {n} (expected >= 1)")
        self.n = n
        self.bias = nn.Parameter(torch.zeros(n))

    def scaled(self, x: Tensor) -> Tensor:
        """``x`` as the weights see it."""
        return x

    def self_energy(self, x: Tensor) -> Tensor:
        """``-x . b`` for the families whose energy is linear in the states."""
        return -(x @ self.bias)

    def log_partition(self, a: Tensor) -> Tensor:
        raise NotImplementedError

    def mean(self, a: Tensor, beta: float | Tensor = 1.0) -> Tensor:
        raise NotImplementedError

    def sample(self, a: Tensor, generator: torch.Generator | None = None,
               beta: float | Tensor = 1.0) -> Tensor:
        raise NotImplementedError

    def absorb_input(self, delta: Tensor) -> None:
        with torch.no_grad():
            self.bias.add_(delta)

    def init_bias_from_mean(self, mean: Tensor, eps: float = 1e-3) -> None:
        raise NotImplementedError

    @property
    def configurations(self) -> float:
        """How many states the layer has (``inf`` for continuous units)."""
        raise NotImplementedError

    def all_states(self, start: int, stop: int, dtype=torch.float64, device=None) -> Tensor:
        """States ``start .. stop - 1`` of the layer in a fixed order, ``(stop - start, n)``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"n={self.n}"


class BernoulliUnits(Units):
    """Binary units ``x_i in {0, 1}``.

    ``self_energy(x) = -x . b``;  ``p(x_i = 1 | a) = sigmoid(beta (b_i + a_i))``;
    ``log_partition(a) = sum_i softplus(b_i + a_i)``.
    """

    name = "bernoulli"

    def log_partition(self, a: Tensor) -> Tensor:
        return F.softplus(a + self.bias).sum(dim=-1)

    def mean(self, a: Tensor, beta: float | Tensor = 1.0) -> Tensor:
        return torch.sigmoid(beta * (a + self.bias)) if _tempered(beta) else torch.sigmoid(a + self.bias)

    def sample(self, a: Tensor, generator: torch.Generator | None = None,
               beta: float | Tensor = 1.0) -> Tensor:
        return bernoulli(self.mean(a, beta), generator)

    def init_bias_from_mean(self, mean: Tensor, eps: float = 1e-3) -> None:
        """Set ``b_i = log(p_i / (1 - p_i))`` from data means ``p`` clipped to [eps, 1-eps].

        This makes the model's visible marginals match the data before any training
        (Hinton, "A practical guide to training RBMs", 2010, section 8).
        """
        p = mean.detach().to(self.bias).clamp(eps, 1.0 - eps)
        with torch.no_grad():
            self.bias.copy_(torch.log(p) - torch.log1p(-p))

    @property
    def configurations(self) -> float:
        return _power(2, self.n)

    def all_states(self, start: int, stop: int, dtype=torch.float64, device=None) -> Tensor:
        codes = torch.arange(start, stop, device=device, dtype=torch.int64)
        bits = torch.arange(self.n - 1, -1, -1, device=device, dtype=torch.int64)
        return ((codes[:, None] >> bits) & 1).to(dtype)


class CategoricalUnits(Units):
    """Groups of ``k`` one-hot units (softmax units): each of ``n / k`` groups takes one of
    ``k`` states, e.g. one letter of a sequence over a ``k``-letter alphabet.

    ``self_energy(x) = -x . b``;  ``p(x_g = e_j | a) = softmax_j(beta (b_g + a_g))``;
    ``log_partition(a) = sum_g logsumexp_j(b_gj + a_gj)``.
    """

    name = "categorical"

    def __init__(self, n: int, k: int = 2):
        if k < 2 or n % k:
            raise ValueError(f"Invalid categorical layer: {n} units do not split into groups of k={k} "
                             "(need k >= 2 dividing the number of units)")
        super().__init__(n)
        self.k = k
        self.groups = n // k

    def _grouped(self, t: Tensor) -> Tensor:
        return t.reshape(*t.shape[:-1], self.groups, self.k)

    def log_partition(self, a: Tensor) -> Tensor:
        return torch.logsumexp(self._grouped(a + self.bias), dim=-1).sum(dim=-1)

    def mean(self, a: Tensor, beta: float | Tensor = 1.0) -> Tensor:
        logits = self._grouped(beta * (a + self.bias) if _tempered(beta) else a + self.bias)
        return torch.softmax(logits, dim=-1).reshape(a.shape)

    def sample(self, a: Tensor, generator: torch.Generator | None = None,
               beta: float | Tensor = 1.0) -> Tensor:
        return one_hot_draw(self._grouped(self.mean(a, beta)), generator).reshape(a.shape)

    def init_bias_from_mean(self, mean: Tensor, eps: float = 1e-3) -> None:
        """``b_gj = log p_gj`` from the data's state frequencies (clipped at ``eps``)."""
        with torch.no_grad():
            self.bias.copy_(torch.log(mean.detach().to(self.bias).clamp_min(eps)))

    @property
    def configurations(self) -> float:
        return _power(self.k, self.groups)

    def all_states(self, start: int, stop: int, dtype=torch.float64, device=None) -> Tensor:
        codes = torch.arange(start, stop, device=device, dtype=torch.int64)
        powers = self.k ** torch.arange(self.groups - 1, -1, -1, device=device, dtype=torch.int64)
        digits = (codes[:, None] // powers) % self.k  # (S, groups)
        return F.one_hot(digits, self.k).reshape(len(codes), self.n).to(dtype)

    def extra_repr(self) -> str:
        return f"n={self.n}, k={self.k}"


class LabelledUnits(Units):
    """``n - classes`` binary units followed by one softmax group of ``classes`` label units:
    the visible layer of a DBN's top RBM that also sees the class, ``[h, y]`` with ``y`` one-hot
    (Hinton, Osindero & Teh, 2006, section 2: the "associative memory" joins the penultimate
    layer and the label units).

    With ``z = b + a`` split as ``(z_h, z_y)``: ``self_energy(x) = -x . b``;
    ``p(h_i = 1 | a) = sigmoid(beta z_h,i)`` and ``p(y = e_j | a) = softmax_j(beta z_y)``, the
    two blocks independent given ``a``;
    ``log_partition(a) = sum_i softplus(z_h,i) + logsumexp_j z_y,j``.
    """

    name = "labelled"

    def __init__(self, n: int, classes: int = 2):
        if classes < 2 or n <= classes:
            raise ValueError(f"Invalid labelled layer: {n} units for {classes} classes (need at least 2 "
                             "classes and at least one binary unit besides them)")
        super().__init__(n)
        self.classes = classes
        self.n_binary = n - classes

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``(..., n)`` as its binary block ``(..., n - classes)`` and its label block
        ``(..., classes)``."""
        return x[..., : self.n_binary], x[..., self.n_binary :]

    def log_partition(self, a: Tensor) -> Tensor:
        binary, label = self.split(a + self.bias)
        return F.softplus(binary).sum(dim=-1) + torch.logsumexp(label, dim=-1)

    def mean(self, a: Tensor, beta: float | Tensor = 1.0) -> Tensor:
        z = beta * (a + self.bias) if _tempered(beta) else a + self.bias
        binary, label = self.split(z)
        return torch.cat([torch.sigmoid(binary), torch.softmax(label, dim=-1)], dim=-1)

    def sample(self, a: Tensor, generator: torch.Generator | None = None,
               beta: float | Tensor = 1.0) -> Tensor:
        p_binary, p_label = self.split(self.mean(a, beta))
        # binary block first, then the label: one fixed order of draws from the generator
        return torch.cat([bernoulli(p_binary, generator), one_hot_draw(p_label, generator)], dim=-1)

    def init_bias_from_mean(self, mean: Tensor, eps: float = 1e-3) -> None:
        """Log-odds of the binary units' means and ``log`` of the class frequencies (clipped
        at ``eps``), as :class:`BernoulliUnits` and :class:`CategoricalUnits` do."""
        binary, label = self.split(mean.detach().to(self.bias))
        p = binary.clamp(eps, 1.0 - eps)
        with torch.no_grad():
            self.bias.copy_(torch.cat([torch.log(p) - torch.log1p(-p), torch.log(label.clamp_min(eps))]))

    @property
    def configurations(self) -> float:
        return _power(2, self.n_binary) * self.classes

    def all_states(self, start: int, stop: int, dtype=torch.float64, device=None) -> Tensor:
        """State ``s`` is binary code ``s // classes`` (most significant unit first) with label
        ``s % classes``."""
        codes = torch.arange(start, stop, device=device, dtype=torch.int64)
        bits = torch.arange(self.n_binary - 1, -1, -1, device=device, dtype=torch.int64)
        binary = ((codes[:, None] // self.classes) >> bits) & 1
        return torch.cat([binary, F.one_hot(codes % self.classes, self.classes)], dim=1).to(dtype)

    def extra_repr(self) -> str:
        return f"n={self.n}, classes={self.classes}"


class GaussianUnits(Units):
    """Real-valued units with mean ``b`` and a learned per-unit standard deviation.

    ``sigma = exp(log_sigma)`` (a stable parametrisation, kept above ``min_sigma``, in the
    units of standardized data); the
    weights see ``x / sigma`` (Hinton, 2010; the "GRBM" of Cho et al., 2011, in this
    scaling):  ``self_energy(x) = sum_i (x_i - b_i)^2 / (2 sigma_i^2)``,
    ``p(x_i | a) = N(b_i + sigma_i a_i, sigma_i^2 / beta)``,
    ``log_partition(a) = sum_i [b_i a_i / sigma_i + a_i^2 / 2 + log(sigma_i sqrt(2 pi))]``.
    """

    name = "gaussian"
    discrete = False

    def __init__(self, n: int, learn_variance: bool = True, min_sigma: float = 0.05):
        super().__init__(n)
        self.log_sigma = nn.Parameter(torch.zeros(n), requires_grad=learn_variance)
        self.min_log_sigma = math.log(min_sigma)

    @property
    def sigma(self) -> Tensor:
        return torch.exp(self.log_sigma.clamp_min(self.min_log_sigma))

    def scaled(self, x: Tensor) -> Tensor:
        return x / self.sigma

    def self_energy(self, x: Tensor) -> Tensor:
        return (((x - self.bias) / self.sigma) ** 2).sum(dim=-1) / 2

    def log_partition(self, a: Tensor) -> Tensor:
        sigma = self.sigma
        terms = self.bias * a / sigma + a**2 / 2 + torch.log(sigma) + 0.5 * math.log(2 * math.pi)
        return terms.sum(dim=-1)

    def mean(self, a: Tensor, beta: float | Tensor = 1.0) -> Tensor:
        return self.bias + self.sigma * a

    @torch.no_grad()  # samples are data for the next step, never part of a gradient
    def sample(self, a: Tensor, generator: torch.Generator | None = None,
               beta: float | Tensor = 1.0) -> Tensor:
        noise = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        scale = self.sigma / torch.sqrt(torch.as_tensor(beta, dtype=a.dtype, device=a.device))
        return self.mean(a) + scale * noise

    def absorb_input(self, delta: Tensor) -> None:
        with torch.no_grad():
            self.bias.add_(self.sigma * delta)

    def init_bias_from_mean(self, mean: Tensor, eps: float = 1e-3) -> None:
        with torch.no_grad():
            self.bias.copy_(mean.detach().to(self.bias))

    @property
    def configurations(self) -> float:
        return math.inf

    def extra_repr(self) -> str:
        return f"n={self.n}, learn_variance={self.log_sigma.requires_grad}"


def _power(base: int, exponent: int) -> float:
    """``base ** exponent`` as a float, ``inf`` beyond the float range (a 2000-unit layer has
    ``2^2000`` states: never enumerable, and ``2.0 ** 2000`` overflows)."""
    try:
        return float(base) ** exponent
    except OverflowError:
        return math.inf


def _tempered(beta: float | Tensor) -> bool:
    return isinstance(beta, Tensor) or beta != 1.0


def bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Binary samples with ``P(x = 1) = p``, same shape and dtype as ``p``.

    Draws 24-bit uniform integers ``u`` (the resolution of ``torch.rand`` in float32)
    and returns ``u < p * 2**24``, so ``p = 0`` never fires and ``p = 1`` always does.
    Raw integer draws skip the float conversion of ``torch.rand`` and the slower
    ``torch.bernoulli`` kernel: on a 2-core CPU this halves the cost of sampling, which
    is a sizeable part of a CD update (see benchmarks/rbm_speed.py).
    """
    bits = torch.empty(p.shape, dtype=torch.int32, device=p.device)
    bits.random_(generator=generator)  # uniform on [0, 2**31)
    bits.bitwise_right_shift_(7)  # uniform on [0, 2**24)
    # the comparison writes its 0/1 straight into p's dtype, in the buffer of p * 2**24:
    # a boolean result and its conversion would cost two more passes (detached: samples
    # carry no gradient, and an in-place write must not enter p's graph)
    samples = torch.mul(p.detach(), _TWO_24)
    return torch.lt(bits, samples, out=samples)


_TWO_24 = float(2**24)


def one_hot_draw(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One-hot samples of the categorical distributions ``p`` ``(..., k)`` (rows summing to 1),
    one uniform draw per row: the first state whose cumulative probability passes it."""
    u = torch.rand(p.shape[:-1] + (1,), generator=generator, device=p.device, dtype=p.dtype)
    index = (p.cumsum(dim=-1) < u).sum(dim=-1, keepdim=True).clamp(max=p.shape[-1] - 1)  # rounding
    return torch.zeros_like(p).scatter_(-1, index, 1.0)

UNIT_FAMILIES: dict[str, type[Units]] = {
    "bernoulli": BernoulliUnits,
    "categorical": CategoricalUnits,
    "gaussian": GaussianUnits,
    "labelled": LabelledUnits,
}


def make_units(kind: str, n: int, **options) -> Units:
    """Build a layer of ``n`` units of the family named ``kind`` (``options``: ``k`` for
    categorical, ``classes`` for labelled, ``learn_variance`` for Gaussian units)."""
    try:
        cls = UNIT_FAMILIES[kind]
    except KeyError:
        raise ValueError(
            f"Unknown unit family {kind!r}; accepted: {', '.join(sorted(UNIT_FAMILIES))}"
        ) from None
    return cls(n, **options)

