"""Checked, split and binarized data sets as tensors, built from a ``data`` config."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..seeding import make_generator
from ..units import bernoulli
from .checks import as_features, check_same_width, check_unit_interval
from .sources import (
    IMAGE_SETS,
    RawData,
    load_digits_raw,
    load_image_set,
    load_potts_raw,
    load_user_file,
)


@dataclass
class Dataset:
    """Train / validation / test features ``(N, D)`` as float32 tensors on the CPU.

    With ``dynamic`` binarization the training features stay probabilities and
    :meth:`binarize_batch` draws fresh binary images for every batch; validation and
    test sets are always binarized once (seeded) so that metrics stay comparable.
    """

    name: str
    train: Tensor
    validation: Tensor
    test: Tensor | None
    train_labels: Tensor | None = None
    validation_labels: Tensor | None = None
    test_labels: Tensor | None = None
    image_shape: tuple[int, int] | None = None
    dynamic: bool = False
    source: str = ""
    feature_mean: Tensor | None = None
    """With ``data.standardize``: the training means and standard deviations that were
    removed (features = (raw - mean) / std); figures add them back."""
    feature_std: Tensor | None = None

    @property
    def n_features(self) -> int:
        return self.train.shape[1]

    @property
    def n_classes(self) -> int:
        """The number of classes: the largest label of any split, plus one (0 without labels)."""
        splits = [t for t in (self.train_labels, self.validation_labels, self.test_labels)
                  if t is not None and len(t)]
        return max(int(t.max()) for t in splits) + 1 if splits else 0

    def require_labels(self, key: str) -> Tensor:
        """The training labels, or a :class:`DataError` saying that config key ``key`` (true)
        needs them."""
        if self.train_labels is None:
            raise DataError(f"{self.source or self.name}: {key} is true and this data set has no labels "
                            f"(csv: set data.label_column; npz: add y or y_train), or set {key}=false")
        return self.train_labels

    def __repr__(self) -> str:
        """Sizes, not tensors: ``Dataset('digits', train 1348x64, validation 150x64, ...)``."""
        def size(t: Tensor | None) -> str:
            return "none" if t is None else "x".join(map(str, t.shape))

        parts = [f"train {size(self.train)}", f"validation {size(self.validation)}",
                 f"test {size(self.test)}",
                 f"labels {'yes' if self.train_labels is not None else 'no'}"]
        if self.image_shape:
            parts.append(f"images {self.image_shape[0]}x{self.image_shape[1]}")
        if self.dynamic:
            parts.append("binarized per batch")
        if self.feature_mean is not None:
            parts.append("standardized")
        return f"Dataset({self.name!r}, {', '.join(parts)}, source {self.source!r})"

    def split(self, which: str) -> Tensor:
        """``train``, ``validation`` or ``test`` features."""
        tensor = {"train": self.train, "validation": self.validation, "test": self.test}.get(which)
        if tensor is None or len(tensor) == 0:
            raise ValueError(f"data set {self.name!r} has no {which} split")
        return tensor

    def binarize_batch(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        """Resample binary values for a training batch when binarization is dynamic."""
        return bernoulli(batch, generator) if self.dynamic else batch


def load_dataset(data_config, seed: int = 0, unit_interval: bool = True,
                 arrays: RawData | None = None) -> Dataset:
    """Read, check, split and binarize the data set that ``data_config`` describes.

    Args:
        data_config: a :class:`boltzkit.config.DataConfig`.
        seed: the run seed; the validation split and stochastic binarization derive
            their generators from it.
        unit_interval: require values in [0, 1] (Bernoulli visible units).
        arrays: in-memory data (``data.name: memory``) to use instead of reading a source;
            split, binarized and standardized as the config says.
    """
    cfg = data_config
    raw = arrays if arrays is not None else _read(cfg)
    source = raw.source
    train, image_shape = as_features(raw.x_train, source)
    test = None
    if raw.x_test is not None:
        test, _ = as_features(raw.x_test, f"{source} (test)")
        check_same_width(train, test, source)
    if cfg.test_path:
        test_raw = _read(cfg, path=cfg.test_path)
        test, _ = as_features(test_raw.x_train, test_raw.source)
        raw.y_test = test_raw.y_train
        check_same_width(train, test, cfg.test_path)
    if cfg.limit is not None:
        train, raw.y_train = train[: cfg.limit], _head(raw.y_train, cfg.limit)
    if unit_interval or cfg.binarize != "none":
        check_unit_interval(train, source)
        if test is not None:
            check_unit_interval(test, f"{source} (test)")

    train_t = torch.from_numpy(train)
    test_t = torch.from_numpy(test) if test is not None else None
    y_train = _labels(raw.y_train, f"{source} (labels)")
    y_test = _labels(raw.y_test, f"{source} (test labels)")
    for x, y, which in ((train, y_train, "training"), (test, y_test, "test")):
        if y is not None and x is not None and len(y) != len(x):
            raise DataError(f"{source}: {len(y)} {which} labels for {len(x)} examples")

    # Validation split: a seeded permutation of the training set.
    n_val = int(round(cfg.validation * len(train_t)))
    if cfg.validation > 0 and n_val == 0:
        n_val = 1
    if n_val >= len(train_t):
        raise ConfigError(f"data.validation={cfg.validation} leaves no training examples")
    order = torch.randperm(len(train_t), generator=make_generator(seed, "data.split"))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values  # file order
    validation_t = train_t[val_idx]
    train_t = train_t[train_idx]
    y_val = y_train[val_idx] if y_train is not None else None
    y_train = y_train[train_idx] if y_train is not None else None

    generator = make_generator(seed, "data.binarize")
    if cfg.binarize == "threshold":
        train_t, validation_t = (train_t > cfg.threshold).float(), (validation_t > cfg.threshold).float()
        test_t = (test_t > cfg.threshold).float() if test_t is not None else None
    elif cfg.binarize in ("stochastic", "dynamic"):
        if cfg.binarize == "stochastic":
            train_t = bernoulli(train_t, generator)
        validation_t = bernoulli(validation_t, generator)
        test_t = bernoulli(test_t, generator) if test_t is not None else None

    mean = std = None
    if cfg.standardize:
        mean, std = train_t.mean(dim=0), train_t.std(dim=0)
        # features (nearly) constant in training, such as image borders, would blow up the
        # rare held-out value that differs: floor their scale at a tenth of the typical one
        std = std.clamp_min(max(1e-6, 0.1 * std.mean().item()))
        train_t, validation_t = (train_t - mean) / std, (validation_t - mean) / std
        test_t = (test_t - mean) / std if test_t is not None else None

    return Dataset(
        name=cfg.name,
        train=train_t,
        validation=validation_t,
        test=test_t,
        train_labels=y_train,
        validation_labels=y_val,
        test_labels=y_test,
        image_shape=_image_shape(cfg, image_shape, train_t.shape[1]),
        dynamic=cfg.binarize == "dynamic",
        source=source,
        feature_mean=mean,
        feature_std=std,
    )


def _read(cfg, path: str | None = None) -> RawData:
    if cfg.name == "memory":
        raise DataError("data.name is 'memory': the run was trained on arrays given in Python, "
                        "which boltzkit cannot reload. Pass them again (evaluate_run(run, data=x) "
                        "or fit(config, x)), or point the run at a file: boltzkit evaluate RUN "
                        "--data FILE.npz|FILE.csv")
    if cfg.name == "digits":
        return load_digits_raw()
    if cfg.name == "potts":
        p = cfg.potts
        return load_potts_raw(p.length, p.states, p.coupling, p.field, p.examples, p.seed)
    if cfg.name in IMAGE_SETS:
        return load_image_set(cfg.name, cfg.dir, cfg.download)
    return load_user_file(path or cfg.path, cfg.name, cfg.key, cfg.columns, cfg.label_column)


def _head(array: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if array is None else array[:n]


def _labels(array: np.ndarray | None, source: str = "labels") -> Tensor | None:
    """Class labels as int64: whole numbers >= 0, one per example (checked by the caller)."""
    if array is None:
        return None
    values = np.asarray(array)
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise DataError(f"{source}: labels must be a 1-d array of class numbers, got dtype "
                        f"{values.dtype} and shape {values.shape}")
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise DataError(f"{source}: labels must be whole numbers (class indices), got e.g. "
                        f"{values[~(np.isfinite(values) & (values == np.round(values)))][0]}")
    if len(values) and values.min() < 0:
        raise DataError(f"{source}: labels must be >= 0 (class indices), got {values.min()}")
    return torch.from_numpy(values.astype(np.int64))


def _image_shape(cfg, found: tuple[int, int] | None, width: int) -> tuple[int, int] | None:
    if cfg.image_shape is not None:
        height, wide = cfg.image_shape
        if height * wide != width:
            raise ConfigError(
                f"data.image_shape {cfg.image_shape} has {height * wide} pixels but the data "
                f"have {width} features"
            )
        return (height, wide)
    if found is not None:
        return found
    side = math.isqrt(width)
    return (side, side) if side * side == width else None


DataLike = Dataset | Tensor | np.ndarray | tuple
"""What ``fit``/``train``/``evaluate_run`` accept as data: a :class:`Dataset`, features
``X`` (``(N, D)`` array or tensor), or ``(X, y)`` with integer labels."""


def as_dataset(data: DataLike, data_config, seed: int = 0, unit_interval: bool = True) -> Dataset:
    """``data`` as a :class:`Dataset`: a Dataset as is; arrays through :func:`load_dataset`
    with ``data_config`` (validation split, binarization, standardization)."""
    if isinstance(data, Dataset):
        return data
    x, y = data if isinstance(data, tuple) else (data, None)
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    raw = RawData(np.asarray(x), None, None if y is None else np.asarray(y), None,
                  source="arrays given in Python")
    dataset = load_dataset(data_config, seed, unit_interval, arrays=raw)
    dataset.name = "memory"
    return dataset
