"""Float32 matrix products through oneDNN, the CPU library PyTorch ships beside its BLAS.

On AMD CPUs torch's float32 ``matmul`` runs in MKL, which takes its AVX2 code path there
even where the CPU executes AVX-512 at full width (Zen 5, where this was measured); oneDNN, which PyTorch
already uses for bfloat16 products and convolutions, picks the widest instructions the CPU
has. docs/RESULTS.md measures the difference (``benchmarks/rbm_speed.py``: 2.1x per
784 x 500 product on a Zen 5 EPYC). The kernel is PyTorch's ``mkldnn._linear_pointwise``
operator (what ``torch.compile`` emits for linear layers on the CPU), on dense tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor


def available() -> bool:
    """Whether this PyTorch has oneDNN and its linear kernel (CPU tensors only)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def linear(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` for float32 CPU tensors ``x`` ``(B, K)`` and ``weight`` ``(N, K)``
    (``nn.Linear``'s layout), computed by oneDNN; ``(B, N)``. No autograd.

    Either may be a strided view such as a transpose: oneDNN reorders both operands into
    its blocked layout on every call, contiguous or not, so a ``.contiguous()`` here would
    only add a copy (a 784 x 500 transpose costs about half a product)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")


def times(x: Tensor, weight: Tensor, transposed: bool = False) -> Tensor:
    """``x @ weight`` (or ``x @ weight.T`` with ``transposed``) through :func:`linear`, whose
    weight is in ``(out, in)`` layout: the transposed view costs no copy."""
    return linear(x, weight if transposed else weight.T)
