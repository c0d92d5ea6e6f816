"""The classifier that judges sample quality: trained once per data set, cached beside it.

A :class:`~boltzkit.models.cnn.SmallCNN` trained on the grey training images and their
labels with Adam for a fixed number of epochs, from explicit generators (weights and
shuffling derive from ``ClassifierSpec.seed``), so the same data and spec give the same
weights on the same machine and thread count. It is saved as safetensors with what it was
trained on (a SHA-256 of the images and labels, their shapes) and its test accuracy; a
file trained on other data is refused, not silently used.

    boltzkit quality-classifier --data mnist --data-dir ../shared/data

writes ``<data folder>/boltzkit-quality-classifier-mnist.safetensors`` (the data folder is
``data.dir``, else ``$BOLTZKIT_DATA_DIR``, else ``~/.cache/boltzkit``; for ``npz`` / ``csv``
files, the file's folder). ``boltzkit evaluate --sample-quality`` trains it on first use.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import DATA_DIR_ENV, Dataset, load_dataset
from ..data.sources import DEFAULT_CACHE
from ..errors import CheckpointError, DataError
from ..models.cnn import SmallCNN
from ..seeding import make_generator
from .checkpoint import load_state_into, load_weights, save_weights

KIND = "boltzkit-quality-classifier"
VERSION = 1
TARGET_UPDATES = 2500
"""Default training length: about this many Adam updates (6 epochs of MNIST, 100 of the
8x8 digits at most)."""


@dataclass(frozen=True)
class ClassifierSpec:
    """Architecture and training of the quality classifier (saved in its metadata)."""

    channels: tuple[int, int] = (16, 32)
    n_features: int = 128
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not 0 < self.lr <= 1:
            raise ValueError(f"Invalid classifier spec: epochs={self.epochs} (>= 1), batch_size="
                             f"{self.batch_size} (>= 1), lr={self.lr} (0 < lr <= 1)")


def default_spec(image_shape: tuple[int, int], n_train: int, seed: int = 0) -> ClassifierSpec:
    """About :data:`TARGET_UPDATES` updates of batches of 128 (3 to 100 epochs); 64 features
    for images under 16 pixels a side (the digits' 297 test images estimate a 64 x 64
    covariance better than a 128 x 128 one)."""
    steps = math.ceil(n_train / 128)
    epochs = min(100, max(3, math.ceil(TARGET_UPDATES / steps)))
    return ClassifierSpec(n_features=64 if min(image_shape) < 16 else 128, epochs=epochs, seed=seed)


@dataclass
class QualityClassifier:
    """A trained classifier with what it was trained on (``info``) and where it is stored."""

    model: SmallCNN
    spec: ClassifierSpec
    info: dict[str, Any]
    path: Path | None = None
    trained_now: bool = field(default=False)


def quality_data(data_config) -> Dataset:
    """The labelled grey images a classifier learns from: the set ``data_config`` names,
    without binarization, standardization, validation split or limit; the test split is
    the reference of sample quality."""
    cfg = data_config.model_copy(update={"binarize": "none", "standardize": False, "validation": 0.0,
                                         "limit": None})
    data = load_dataset(cfg, seed=0, unit_interval=True)
    needed = (("training labels", data.train_labels), ("a test split", data.test),
              ("test labels", data.test_labels), ("an image shape", data.image_shape))
    missing = [what for what, value in needed if value is None]
    if missing:
        raise DataError(f"{data.source or data.name}: sample quality needs labelled images with a test "
                        f"split; this data set has no {', '.join(missing)} (use digits, mnist, "
                        "fashion-mnist, or an .npz with x_train, y_train, x_test, y_test)")
    return data


def data_checksum(data: Dataset) -> str:
    """SHA-256 over the training and test images and labels (shapes and bytes)."""
    hasher = hashlib.sha256()
    for tensor in (data.train, data.train_labels, data.test, data.test_labels):
        tensor = tensor.contiguous()
        hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        hasher.update(tensor.numpy().tobytes())
    return hasher.hexdigest()


def classifier_path(data_config) -> Path:
    """Where the classifier of ``data_config``'s data set is cached (see the module)."""
    if data_config.name in ("npz", "csv"):
        file = Path(data_config.path).expanduser()
        return file.parent / f"boltzkit-quality-classifier-{data_config.name}-{file.stem}.safetensors"
    folder = Path(data_config.dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_CACHE).expanduser()
    return folder / f"boltzkit-quality-classifier-{data_config.name}.safetensors"


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` ``(N, D)`` whose most probable class is ``y`` ``(N,)``."""
    device = next(model.parameters()).device
    right = sum(int((model(xb.to(device)).argmax(1).cpu() == yb).sum())
                for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True))
    return right / len(x)


def train_quality_classifier(data: Dataset, spec: ClassifierSpec | None = None,
                             device: str | torch.device = "cpu", progress: bool = False) -> QualityClassifier:
    """Train a :class:`SmallCNN` on ``data``'s training images and labels (from
    :func:`quality_data`); ``info`` records the data's checksum and sizes and the test
    accuracy. Adam, cross-entropy, a fixed number of epochs, no dropout or augmentation:
    nothing draws from PyTorch's global generator."""
    spec = spec or default_spec(data.image_shape, len(data.train), 0)
    device = torch.device(device)
    n_classes = int(max(data.train_labels.max(), data.test_labels.max())) + 1
    model = SmallCNN(data.image_shape, n_classes, spec.channels, spec.n_features,
                     generator=make_generator(spec.seed, "quality.init")).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    order = make_generator(spec.seed, "quality.order")
    x, y = data.train.to(device), data.train_labels.to(device)
    started = time.perf_counter()
    model.train()
    for epoch in range(spec.epochs):
        total = 0.0
        for rows in torch.randperm(len(x), generator=order).split(spec.batch_size):
            rows = rows.to(device)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        if progress and (epoch + 1) % max(1, spec.epochs // 10) == 0:  # ten lines at most
            print(f"quality classifier: epoch {epoch + 1}/{spec.epochs}, loss {total / len(x):.4f}",
                  flush=True)
    model.eval()
    info = {"dataset": data.name, "source": data.source, "data_sha256": data_checksum(data),
            "train_examples": len(data.train), "test_examples": len(data.test),
            "image_shape": list(data.image_shape), "n_classes": n_classes,
            "test_accuracy": accuracy(model, data.test, data.test_labels),
            "train_seconds": time.perf_counter() - started, "torch": torch.__version__}
    return QualityClassifier(model, spec, info)


def save_quality_classifier(path: str | Path, classifier: QualityClassifier) -> Path:
    """Write the weights as safetensors (atomically), spec and ``info`` in the metadata."""
    spec = {"kind": KIND, "version": VERSION, **asdict(classifier.spec)}
    return save_weights(path, classifier.model, spec, classifier.info)


def load_quality_classifier(path: str | Path, data: Dataset | None = None,
                            device: str | torch.device = "cpu") -> QualityClassifier:
    """Read a file of :func:`save_quality_classifier`; with ``data``, refuse one trained
    on other data (its checksum differs)."""
    path = Path(path)
    tensors, metadata = load_weights(path)  # a missing, truncated or altered file: CheckpointError
    try:
        spec_dict = json.loads(metadata.get("config", "{}"))
        info = json.loads(metadata.get("data_info", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: its metadata is not JSON") from None
    if spec_dict.pop("kind", None) != KIND or spec_dict.pop("version", None) != VERSION:
        raise CheckpointError(f"{path}: not a boltzkit quality classifier (version {VERSION}); "
                              "write one with: boltzkit quality-classifier --data NAME")
    try:
        spec = ClassifierSpec(**{**spec_dict, "channels": tuple(spec_dict["channels"])})
        model = SmallCNN(info["image_shape"], info["n_classes"], spec.channels, spec.n_features)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its metadata do not describe a quality classifier ({err})") from None
    load_state_into(model, tensors, str(path))
    if data is not None and info.get("data_sha256") != data_checksum(data):
        raise CheckpointError(
            f"{path}: trained on other data ({info.get('train_examples')} training images of "
            f"{info.get('source')!r}, SHA-256 {str(info.get('data_sha256'))[:12]}...) than "
            f"{data.source!r} ({len(data.train)} images, {data_checksum(data)[:12]}...); delete the "
            "file or rebuild it with: boltzkit quality-classifier --retrain")
    return QualityClassifier(model.to(device).eval(), spec, info, path)


def load_or_train_quality_classifier(data_config, device: str | torch.device = "cpu", *,
                                     path: str | Path | None = None, retrain: bool = False,
                                     progress: bool = False) -> tuple[QualityClassifier, Dataset]:
    """The cached classifier of ``data_config``'s data set (see :func:`classifier_path`), or a
    new one trained and saved there when there is none (or ``retrain``). Returns it with
    the labelled data (:func:`quality_data`), whose test split is the reference."""
    data = quality_data(data_config)
    path = Path(path) if path is not None else classifier_path(data_config)
    if path.is_file() and not retrain:
        return load_quality_classifier(path, data, device), data
    if progress:
        print(f"training the quality classifier of {data.source or data.name} (saved to {path})", flush=True)
    classifier = train_quality_classifier(data, device=device, progress=progress)
    classifier.path, classifier.trained_now = save_quality_classifier(path, classifier), True
    return classifier, data
