"""Refuse models that cannot fit in memory before allocating them.

A width typed with three zeros too many would otherwise end in an allocator error deep in
PyTorch, or worse, with the machine swapping. The family's builder runs on PyTorch's
``meta`` device (shapes only, no storage) to count the parameter bytes; training needs
about :data:`TRAINING_COPIES` times that (values, gradients, optimizer state).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ConfigError

TRAINING_COPIES = 3


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device`` (the GPU's total, or the machine's physical memory)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def model_bytes(build: Callable[[], nn.Module]) -> int | None:
    """Parameter and buffer bytes of the model ``build()`` makes, or None when the builder
    cannot run without real tensors (the allocator's own error then stands)."""
    try:
        with torch.device("meta"):
            model = build()
    except (NotImplementedError, RuntimeError, TypeError, ValueError):
        return None
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def check_model_fits(build: Callable[[], nn.Module], device: torch.device, what: str) -> None:
    """Raise :class:`ConfigError` when training the model would need more than ``device`` has."""
    need = model_bytes(build)
    if need is None:
        return
    have = device_memory(device)
    if TRAINING_COPIES * need > have:
        raise ConfigError(f"{what} would need {format_bytes(need)} for its parameters alone "
                          f"(about {format_bytes(TRAINING_COPIES * need)} to train), more than the "
                          f"{format_bytes(have)} of {device}; lower the model's sizes")
