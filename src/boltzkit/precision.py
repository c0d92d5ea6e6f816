"""Lower-precision arithmetic: whether a device has it in hardware."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .cpu import CPUINFO, cpuinfo_field

NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags (Linux ``/proc/cpuinfo``) of bfloat16 dot products in hardware: AVX-512
BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) or AMX."""


def onednn_bfloat16() -> bool:
    """Whether oneDNN, which runs PyTorch's bfloat16 products on the CPU, will use bfloat16
    instructions: false without them, and where ``ONEDNN_MAX_CPU_ISA`` holds it below them."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def bfloat16_shortfall(device: torch.device, cpuinfo: Path = CPUINFO) -> str | None:
    """Why bfloat16 matrix products would be slow on ``device`` (None: they run in hardware).

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (compute capability
    8.0 and later). CPU: one of :data:`NATIVE_BFLOAT16_FLAGS` in ``cpuinfo`` (when that
    file exists: Linux), and oneDNN's own check (:func:`onednn_bfloat16`; on a CPU with the
    flags, ``ONEDNN_MAX_CPU_ISA=AVX2`` makes the products ~100x slower than float32). Other
    devices: not checked.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"{torch.cuda.get_device_name(device)} has no native bfloat16 (compute capability < 8.0)"
    if device.type != "cpu":
        return None
    flags = cpuinfo_field("flags", cpuinfo)
    if flags is not None:
        if not set(flags.split()).intersection(NATIVE_BFLOAT16_FLAGS):
            return (f"this CPU has none of the flags {', '.join(NATIVE_BFLOAT16_FLAGS)}: bfloat16 products "
                    "are emulated and likely slower than float32")
    if onednn_bfloat16():
        return None
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return ("oneDNN reports no bfloat16 instructions on this CPU" + (f" (ONEDNN_MAX_CPU_ISA={limit})" if limit
                                                                     else "")
            + ": the products take a fallback path, far slower than float32")
