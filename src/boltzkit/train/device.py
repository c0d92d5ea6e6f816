"""The device a run asks for."""

from __future__ import annotations

import re

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable device is an error."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", name):
        raise ConfigError(f"device {name!r}: accepted auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device': {name!r} requested but CUDA is not available; "
                          "use device: auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("config key 'device': 'mps' requested but MPS is not available")
    return torch.device(name)
