"""What the scikit-learn estimators share: seeds from ``random_state``, arrays to a data
set, keywords to a run config, and training through the ``fit()`` core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state

from ..config import RunConfig, apply_overrides, validate
from ..data import Dataset
from ..errors import ConfigError


def seed_from(random_state) -> int:
    """A 31-bit seed from scikit-learn's ``random_state`` (None, an int or a RandomState):
    the same ``random_state`` gives the same seed, None a fresh one."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def as_tensor(X, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """A dense ``(N, D)`` tensor of a validated array or sparse matrix."""
    dense = X.toarray() if sp.issparse(X) else np.asarray(X)
    if not dense.flags.writeable:  # read-only memory maps: torch wants memory it may write
        dense = dense.copy()
    return torch.as_tensor(np.ascontiguousarray(dense), dtype=dtype, device=device)


def in_memory_dataset(x: torch.Tensor, labels: torch.Tensor | None = None) -> Dataset:
    """All of ``x`` for training (no validation split: scikit-learn holds data out itself)."""
    return Dataset(name="user", train=x.cpu(), validation=x[:0].cpu(), test=None,
                   train_labels=None if labels is None else labels.cpu(),
                   validation_labels=None if labels is None else labels[:0].cpu(), source="in-memory arrays")


def run_config(owner: str, overrides: Mapping[str, Any]) -> RunConfig:
    """The run config of estimator ``owner``: defaults for in-memory training, then
    ``overrides`` (``{"train.epochs": 10, ...}``), validated; a bad keyword is a
    ``ValueError`` (scikit-learn's convention) naming its config key."""
    raw: dict[str, Any] = {
        "name": "sklearn",
        "data": {"binarize": "none", "validation": 0.0},
        "train": {"checkpoint_every": 0, "schedule": {"name": "constant"}},
    }
    try:
        return validate(apply_overrides(raw, overrides))
    except ConfigError as err:
        raise ValueError(f"{owner}: {err}") from None
