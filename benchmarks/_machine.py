"""What machine a benchmark ran on, for the tables, and the MNIST file it reads (shared by
the benchmark scripts)."""

from __future__ import annotations

import platform
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
