"""Builders from config sections to objects: device, model, objective."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.bm import BoltzmannMachine, coupling_mask
from ..models.mlp import MLP
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


def unit_options(model_config, family: str) -> dict[str, Any]:
    """Keyword options of a unit family from the ``model`` section."""
    if family == "categorical":
        return {"k": model_config.categories}
    if family == "gaussian":
        return {"learn_variance": model_config.learn_variance}
    return {}


def build_model(model_config, data_info: dict[str, Any], generator: torch.Generator) -> nn.Module:
    """The model a ``model`` config section describes, for the data ``data_info`` describes
    (``n_features``, and ``n_classes`` for classifiers)."""
    cfg = model_config
    if cfg.type == "rbm":
        return RBM(data_info["n_features"], cfg.n_hidden, cfg.visible, cfg.hidden, cfg.init_std,
                   generator, centered=cfg.centered, visible_options=unit_options(cfg, cfg.visible),
                   hidden_options=unit_options(cfg, cfg.hidden))
    if cfg.type == "bm":
        mask = coupling_mask(data_info["n_features"], cfg.n_hidden, cfg.connectivity)
        return BoltzmannMachine(data_info["n_features"], cfg.n_hidden, mask, cfg.init_std, generator)
    if cfg.type == "mlp":
        return MLP(data_info["n_features"], cfg.hidden_layers, data_info["n_classes"],
                   cfg.activation, cfg.init, cfg.batch_norm, cfg.dropout, generator)
    raise ConfigError(f"config key 'model.type': {cfg.type!r} is not implemented")
