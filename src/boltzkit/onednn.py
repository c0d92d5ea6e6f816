"""Float32 matrix products through oneDNN, the CPU library PyTorch ships beside its BLAS.

On AMD CPUs torch's float32 ``matmul`` runs in MKL, which takes its AVX2 code path there
even where the CPU executes AVX-512 at full width (Zen 5, where this was measured); oneDNN, which PyTorch
already uses for bfloat16 products and convolutions, picks the widest instructions the CPU
has. docs/RESULTS.md measures the difference (``benchmarks/rbm_speed.py``: 2.1x per
784 x 500 product on a Zen 5 EPYC). The kernel is PyTorch's ``mkldnn._linear_pointwise``
operator (what ``torch.compile`` emits for linear layers on the CPU), on dense tensors.

:func:`linear` and :func:`times` serve the closed-form updates and AIS (no autograd);
:class:`LinearLayers` runs ``nn.Linear`` layers in oneDNN under autograd; :func:`resolve`
checks a ``product_kernel`` setting against the device, and :func:`kernel_for` decides
who multiplies: under ``auto``, oneDNN on the CPUs where it was measured faster
(:func:`preferred`) for products large enough to repay its per-call weight reorder.
"""

from __future__ import annotations

import functools
import math
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


AUTO_MIN_MULTIPLY_ADDS = 8_000_000
"""Under ``auto``, a product ``(rows, K) x (K, N)`` runs in oneDNN only from this many
multiply-adds ``rows K N`` on: oneDNN reorders its weight on every call, which smaller
products do not repay. Measured on a Zen 4 EPYC, one thread (``benchmarks/product_kernels.py``,
docs/RESULTS.md): oneDNN took 4.0x torch's time for 10 x 64 x 100, 1.03x for
100 x 196 x 256 and 0.95x for 100 x 784 x 128 (10 M), so the 64-pixel digits presets stay
in torch and MNIST's products (100 x 784 x 500: 39 M) do not."""


@functools.cache
def _vendor(cpuinfo: Path) -> str | None:
    return cpuinfo_field("vendor_id", cpuinfo)


def preferred(device: torch.device, cpuinfo: Path = CPUINFO) -> bool:
    """Whether ``auto`` may pick oneDNN on ``device``: a CPU of a vendor in
    :data:`FASTER_THAN_BLAS_VENDORS`, and a PyTorch with the kernel (:func:`available`)."""
    return device.type == "cpu" and available() and _vendor(cpuinfo) in FASTER_THAN_BLAS_VENDORS


def resolve(kernel: str, device: torch.device, key: str) -> str:
    """What the setting ``kernel`` of config key ``key`` (``auto``, ``torch`` or ``onednn``)
    gives on ``device``: ``auto`` stays ``auto`` where :func:`preferred` (each product then
    picks by its size, :func:`kernel_for`) and is ``torch`` elsewhere. A
    :class:`ConfigError` naming ``key`` where ``onednn`` cannot run (off the CPU, or a
    PyTorch without oneDNN)."""
    if kernel == "auto":
        return "auto" if preferred(device) else "torch"
    if kernel == "onednn" and (device.type != "cpu" or not available()):
        where = f"device {device}" if device.type != "cpu" else "this PyTorch (built without oneDNN)"
        raise ConfigError(f"config key '{key}': onednn needs a CPU and a PyTorch with oneDNN; {where} has "
                          "none; accepted here: auto, torch")
    return kernel


KERNELS = ("auto", "torch", "onednn")
"""What a function's ``product_kernel`` accepts."""


def kernel_for(kernel: str, *weights: Tensor, rows: int | None = None) -> str:
    """Who multiplies ``rows`` rows by each of ``weights`` under the setting ``kernel``
    (one of :data:`KERNELS`, else a ``ValueError``): ``onednn`` where asked for, or under
    ``auto`` where :func:`preferred` and every product has at least
    :data:`AUTO_MIN_MULTIPLY_ADDS` multiply-adds (``rows`` unknown: torch); and only for
    float32 CPU weights. ``torch`` otherwise (a float64 copy for exact values, a GPU
    model)."""
    if kernel not in KERNELS:
        raise ValueError(f"product_kernel {kernel!r} is not a kernel; accepted: {', '.join(KERNELS)}")
    if kernel == "torch" or not all(w.dtype == torch.float32 and w.device.type == "cpu" for w in weights):
        return "torch"
    if kernel == "auto" and not (rows is not None and preferred(weights[0].device)
                                 and rows * min(w.numel() for w in weights) >= AUTO_MIN_MULTIPLY_ADDS):
        return "torch"
    return "onednn"


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T (+ bias)`` for float32 CPU tensors ``x`` ``(B, K)``, ``weight`` ``(N, K)``
    (``nn.Linear``'s layout) and ``bias`` ``(N,)``, computed by oneDNN; ``(B, N)``. No
    autograd (:class:`LinearLayers` has it).

    Either may be a strided view such as a transpose: oneDNN reorders both operands into
    its blocked layout on every call, contiguous or not, so a ``.contiguous()`` here would
    only add a copy (a 784 x 500 transpose costs about half a product)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def times(x: Tensor, weight: Tensor, transposed: bool = False) -> Tensor:
    """``x @ weight`` (or ``x @ weight.T`` with ``transposed``) through :func:`linear`, whose
    weight is in ``(out, in)`` layout: the transposed view costs no copy."""
    return linear(x, weight if transposed else weight.T)


class _Linear(torch.autograd.Function):
    """``F.linear`` in oneDNN, forward and backward: ``y = x W^T + b``, ``dx = dy W``,
    ``dW = dy^T x``, ``db = sum_rows dy``. A backward that itself records a graph
    (``create_graph``: gradient penalties) multiplies in torch, whose products have
    derivatives."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        differentiable = torch.is_grad_enabled()
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = grad_w = None
        if need_x:
            grad_x = grad @ weight if differentiable else linear(grad, weight.T)
        if need_w:
            grad_w = grad.T @ x if differentiable else linear(grad.T, x.T)
        return grad_x, grad_w, grad.sum(0) if ctx.has_bias and need_b else None


class LinearLayers(torch.overrides.TorchFunctionMode):
    """Inside ``with LinearLayers(kernel):`` each ``F.linear`` (each ``nn.Linear`` layer) on
    a float32 CPU input ``(..., K)`` of at least two dimensions runs where
    :func:`kernel_for` sends its rows (``onednn``: every one; ``auto``: the large ones) in
    oneDNN, forward and backward (:class:`_Linear`, on the input's rows); other inputs (a
    single vector, other dtypes or devices) run as usual. For the autograd families'
    training step under ``train.product_kernel``: the same gradients to float32 rounding."""

    def __init__(self, kernel: str = "onednn"):
        super().__init__()
        self.kernel = kernel

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            named = {**dict(zip(("input", "weight", "bias"), args, strict=False)), **kwargs}
            x, weight, bias = named["input"], named["weight"], named.get("bias")
            if (x.dim() >= 2 and x.dtype == weight.dtype and x.device == weight.device
                    and kernel_for(self.kernel, weight, rows=math.prod(x.shape[:-1])) == "onednn"):
                rows = _Linear.apply(x.reshape(-1, x.shape[-1]), weight, bias)  # (..., K) as rows
                return rows.view(*x.shape[:-1], weight.shape[0])
        return func(*args, **kwargs)


def has_linear_layers(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds ``nn.Linear`` layers, which :class:`LinearLayers` routes."""
    return any(isinstance(module, torch.nn.Linear) for module in model.modules())
