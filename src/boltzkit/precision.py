"""Lower-precision arithmetic: whether a device has it in hardware."""

from __future__ import annotations

from pathlib import Path

import torch

NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 CPU flags (Linux ``/proc/cpuinfo``) of bfloat16 dot products in hardware: AVX-512
BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) or AMX."""


def bfloat16_shortfall(device: torch.device, cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """Why bfloat16 matrix products would be slow on ``device`` (None: they run in hardware).

    CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (compute capability
    8.0 and later). CPU: one of :data:`NATIVE_BFLOAT16_FLAGS` in ``cpuinfo``; where that
    file is missing (not Linux), oneDNN's own bfloat16 check. Other devices: not checked.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return None
        return f"{torch.cuda.get_device_name(device)} has no native bfloat16 (compute capability < 8.0)"
    if device.type != "cpu":
        return None
    if cpuinfo.exists():
        flags = set()
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
                break
        if flags.intersection(NATIVE_BFLOAT16_FLAGS):
            return None
        return (f"this CPU has none of the flags {', '.join(NATIVE_BFLOAT16_FLAGS)}: bfloat16 products "
                "are emulated and likely slower than float32")
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    return "oneDNN reports no bfloat16 support on this CPU: the products are emulated"
