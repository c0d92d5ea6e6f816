"""Float32 matrix products through oneDNN, the CPU library PyTorch ships beside its BLAS.

On AMD CPUs torch's float32 ``matmul`` runs in MKL, which takes its AVX2 code path there
even where the CPU executes AVX-512 at full width (Zen 5, where this was measured); oneDNN, which PyTorch
already uses for bfloat16 products and convolutions, picks the widest instructions the CPU
has. docs/RESULTS.md measures the difference (``benchmarks/rbm_speed.py``: 2.1x per
784 x 500 product on a Zen 5 EPYC). The kernel is PyTorch's ``mkldnn._linear_pointwise``
operator (what ``torch.compile`` emits for linear layers on the CPU), on dense tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .cpu import CPUINFO, cpuinfo_field
from .errors import ConfigError

FASTER_THAN_BLAS_VENDORS = ("AuthenticAMD",)
"""CPU vendors (``/proc/cpuinfo``'s ``vendor_id``) on which oneDNN's float32 products were
measured faster than torch's BLAS (MKL, which dispatches on the vendor and runs AVX2 code
on AMD): 2.1x per 784 x 500 product with AVX-512 on a Zen 5 EPYC, and 8 % faster CD-1
epochs with every library held to AVX2 (docs/RESULTS.md). On Intel CPUs MKL runs AVX-512
itself, and oneDNN was not measured there."""


def available() -> bool:
    """Whether this PyTorch has oneDNN and its linear kernel (CPU tensors only)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def preferred(device: torch.device, cpuinfo: Path = CPUINFO) -> bool:
    """Whether ``train.product_kernel: auto`` picks oneDNN on ``device``: a CPU of a vendor in
    :data:`FASTER_THAN_BLAS_VENDORS`, and a PyTorch with the kernel (:func:`available`)."""
    return (device.type == "cpu" and available()
            and cpuinfo_field("vendor_id", cpuinfo) in FASTER_THAN_BLAS_VENDORS)


def resolve(kernel: str, device: torch.device, key: str) -> str:
    """The kernel that the setting ``kernel`` of config key ``key`` (``auto``, ``torch`` or
    ``onednn``) gives on ``device``: ``auto`` is ``onednn`` where :func:`preferred`, else
    ``torch``. A :class:`ConfigError` naming ``key`` where ``onednn`` cannot run (off the
    CPU, or a PyTorch without oneDNN)."""
    if kernel == "auto":
        return "onednn" if preferred(device) else "torch"
    if kernel == "onednn" and (device.type != "cpu" or not available()):
        where = f"device {device}" if device.type != "cpu" else "this PyTorch (built without oneDNN)"
        raise ConfigError(f"config key '{key}': onednn needs a CPU and a PyTorch with oneDNN; {where} has "
                          "none; accepted here: auto, torch")
    return kernel


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
