"""What machine a benchmark ran on, for the tables; the MNIST file it reads; and the timing
of the matmul peak that the speed benchmarks measure against (shared by the benchmark scripts)."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def mnist_file(value: str) -> Path:
    """``--mnist``'s file, resolved; exits with a one-line message when it is missing."""
    mnist = Path(value).resolve()
    if not mnist.is_file():
        raise SystemExit(f"MNIST not found at {mnist}; pass --mnist PATH/TO/mnist.npz")
    return mnist


PEAK_SHAPE = (100, 784, 500)
"""``(m, k, n)`` of the product whose speed is "the matmul peak": an MNIST RBM's (batch 100,
784 visible, 500 hidden units)."""


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn``, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def matmul_seconds(repeats: int = 2000, library: str = "torch", dtype: str = "float32") -> float:
    """Median time of the product of :data:`PEAK_SHAPE` in torch, numpy or oneDNN (torch's
    ``boltzkit.onednn.linear``), in ``dtype`` (float32, or bfloat16 in torch)."""
    import torch  # here, not at the top: threads_busy.py forks workers from a parent without torch

    m, k, n = PEAK_SHAPE
    a, b = torch.rand(m, k, dtype=getattr(torch, dtype)), torch.randn(k, n, dtype=getattr(torch, dtype))
    if library == "onednn":
        from boltzkit import onednn

        b_t = b.T.contiguous()
        return median_seconds(lambda: onednn.linear(a, b_t), repeats, warmup=50)
    if library == "numpy":
        a, b = a.numpy(), b.numpy()
    return median_seconds(lambda: a @ b, repeats, warmup=50)
