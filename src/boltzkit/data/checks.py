"""Checks on arrays read from files: shape, emptiness, finiteness and value range."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def as_features(array: np.ndarray, source: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Turn ``(N, D)`` or ``(N, H, W)`` data into float32 ``(N, D)`` and an image shape.

    Integer images (``uint8``) are scaled by 1/255. Raises :class:`DataError` naming
    ``source`` for the wrong rank, an empty set, non-numeric or non-finite values.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: expected numeric data, got dtype {array.dtype}")
    if array.ndim not in (2, 3):
        raise DataError(
            f"{source}: expected a 2-d (examples, features) or 3-d (examples, height, width) "
            f"array, got shape {array.shape}"
        )
    if array.shape[0] == 0 or int(np.prod(array.shape[1:])) == 0:
        raise DataError(f"{source}: the data set is empty (shape {array.shape})")
    image_shape = (int(array.shape[1]), int(array.shape[2])) if array.ndim == 3 else None
    if array.dtype == np.uint8:
        features = array.reshape(len(array), -1).astype(np.float32) / 255.0
    else:
        features = array.reshape(len(array), -1).astype(np.float32)
    finite = np.isfinite(features)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        count = int((~finite).sum())
        raise DataError(
            f"{source}: {count} non-finite value(s) (NaN or inf), first at example {row}, "
            f"feature {col}"
        )
    return features, image_shape


def check_unit_interval(features: np.ndarray, source: str) -> None:
    """Bernoulli visible units model probabilities: every value must lie in [0, 1]."""
    low, high = float(features.min()), float(features.max())
    if low < 0.0 or high > 1.0:
        raise DataError(
            f"{source}: values must lie in [0, 1] for Bernoulli visible units, "
            f"found min {low:g} and max {high:g}; rescale the data (e.g. divide by 255)"
        )


def check_same_width(train: np.ndarray, test: np.ndarray, source: str) -> None:
    if train.shape[1] != test.shape[1]:
        raise DataError(
            f"{source}: the test data have {test.shape[1]} features but the training data "
            f"have {train.shape[1]}"
        )
