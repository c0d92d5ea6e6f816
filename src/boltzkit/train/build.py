"""Builders from config sections to objects: device, model, objective."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models.rbm import RBM


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device': {name!r} requested but CUDA is not available; "
                          "use device: auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("config key 'device': 'mps' requested but MPS is not available")
    return torch.device(name)


def build_model(model_config, n_visible: int, generator: torch.Generator) -> nn.Module:
    """The model a ``model`` config section describes, for ``n_visible`` input features."""
    cfg = model_config
    if cfg.type == "rbm":
        return RBM(n_visible, cfg.n_hidden, cfg.visible, cfg.hidden, cfg.init_std, generator)
    raise ConfigError(f"config key 'model.type': {cfg.type!r} is not implemented")


def build_objective(train_config, generator: torch.Generator):
    """CD-k or PCD-k from the ``train`` section; chains get ``generator``."""
    from .objectives import ContrastiveDivergence, PersistentContrastiveDivergence

    cfg = train_config
    if cfg.method == "cd":
        return ContrastiveDivergence(cfg.k, generator)
    if cfg.method == "pcd":
        return PersistentContrastiveDivergence(cfg.k, cfg.n_chains or cfg.batch_size, generator)
    raise ConfigError(f"config key 'train.method': {cfg.method!r} is not implemented")
