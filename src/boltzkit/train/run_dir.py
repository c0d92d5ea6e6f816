"""The run directory: resolved config, metrics, checkpoints, weights and figures."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig, read_yaml_file, validate
from ..errors import CheckpointError
from ..families import get_family
from ..seeding import make_generator
from .checkpoint import load_checkpoint, load_state_into, load_weights

RUN_FILES = ("config.yaml", "metrics.csv", "metrics.jsonl", "model.safetensors", "evaluation.json",
             "resumes.jsonl", "samples.png", "filters.png", "curves.png", "grad_norms.png",
             "reconstructions.png", "latent_map.png", "samples_by_label.png")
SAMPLE_FILES = r"samples-n\d+-k\d+-s\d+(-pt\d+)?(-y\d+)?\.(png|npz)"
"""What ``boltzkit sample`` writes into a run (named by :meth:`RunDir.samples_stem`)."""
RUN_FOLDERS = ("checkpoints", "tensorboard", "samples")
"""What a run directory holds that ``--overwrite`` removes (with ``boltzkit sample``'s files);
``samples/`` holds the sample grids some families draw after every epoch."""
PARTIAL_FILES = (".last.pt.*", ".epoch-*.pt.*", ".model.safetensors.*")
"""Checkpoints and weights are written through a hidden ``.<name>.<random>`` temporary
that a kill can leave behind."""


class EpochCheckpoints:
    """The epoch checkpoints one training process writes, pruned to the newest ``keep``
    (``None``: all) within each stage: a stage's newest ones stay when the next stage
    starts (a DBN's pretrained layers), and files this process did not write (those of the
    run before a ``--resume``, or of an abandoned branch) are never deleted."""

    def __init__(self, keep: int | None):
        self.keep = keep
        self.stage: int | None = None
        self.written: list[Path] = []  # this stage's, oldest first

    def wrote(self, path: Path, stage: int) -> None:
        if stage != self.stage:
            self.stage, self.written = stage, []
        self.written.append(path)
        while self.keep is not None and len(self.written) > self.keep:
            self.written.pop(0).unlink(missing_ok=True)


class RunDir:
    """Paths inside a run directory.

    ``config.yaml`` (resolved config), ``metrics.csv`` / ``metrics.jsonl`` (one row per
    epoch), ``checkpoints/last.pt`` and ``checkpoints/epoch-NNNN.pt``,
    ``model.safetensors`` (final weights) and figures such as ``samples.png``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._rows = -1  # history rows in the metrics files (-1: not written by this object)
        self._columns: list[str] = []

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def metrics_jsonl(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}.pt"

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    def file(self, name: str) -> Path:
        return self.path / name

    def samples_stem(self, n: int, steps: int, seed: int, temperatures: int = 0,
                     label: int | None = None) -> Path:
        """``samples-n<N>-k<K>-s<S>[-pt<M>][-y<label>]``: where ``boltzkit sample`` writes (``.png``,
        ``.npz``)."""
        return self.file(f"samples-n{n}-k{steps}-s{seed}" + (f"-pt{temperatures}" if temperatures else "")
                         + ("" if label is None else f"-y{label}"))

    def exists(self) -> bool:
        return self.config.is_file()

    def epoch_checkpoints(self) -> list[Path]:
        """``checkpoints/epoch-NNNN.pt`` in the order of their epochs (epoch 10000 after 9999)."""
        if not self.checkpoints.is_dir():
            return []
        by_epoch = {int(match[1]): path for path in self.checkpoints.iterdir()
                    if (match := re.fullmatch(r"epoch-(\d+)\.pt", path.name))}
        return [by_epoch[epoch] for epoch in sorted(by_epoch)]

    def clear(self) -> None:
        """Delete the run in this directory: only the files a run writes, and only in a
        folder whose ``config.yaml`` is a boltzkit config; anything else there is left."""
        if self.path.is_file():
            raise CheckpointError(f"--out {self.path} is a file, not a run directory")
        if not self.exists():
            return
        self.read_config()  # a config.yaml that is not a boltzkit config: not a run, delete nothing
        for item in self.path.iterdir():
            if item.name in RUN_FOLDERS and item.is_dir():
                shutil.rmtree(item)
            elif item.is_file() and (item.name in RUN_FILES or re.fullmatch(SAMPLE_FILES, item.name)):
                item.unlink()

    def remove_partial_files(self) -> None:
        """Remove the temporary files of writes a kill interrupted (``.last.pt.XXXX``)."""
        for folder in (self.path, self.checkpoints):
            for pattern in PARTIAL_FILES:
                for partial in folder.glob(pattern):
                    partial.unlink(missing_ok=True)

    def write_config(self, config: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config.to_yaml())

    def read_config(self) -> RunConfig:
        if not self.config.is_file():
            raise CheckpointError(f"{self.path}: not a boltzkit run directory (no config.yaml)")
        raw = read_yaml_file(self.config, CheckpointError)
        return validate(raw)

    def write_metrics(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Bring ``metrics.csv`` and ``metrics.jsonl`` up to ``history``: the new epoch is
        appended, and the files are rewritten only on the first call (a resumed run's
        history replaces rows a crash left past its checkpoint) or when a row brings a
        column the CSV header lacks (metrics logged every few epochs)."""
        new = history[-1] if history else {}
        if self._rows == len(history) - 1 and all(key in self._columns for key in new):
            with open(self.metrics_csv, "a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self._columns).writerow(new)
            with open(self.metrics_jsonl, "a") as handle:
                handle.write(json.dumps(new) + "\n")
        else:
            columns: list[str] = []
            for row in history:
                columns += [key for key in row if key not in columns]
            with open(self.metrics_csv, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(history)
            with open(self.metrics_jsonl, "w") as handle:
                for row in history:
                    handle.write(json.dumps(row) + "\n")
            self._columns = columns
        self._rows = len(history)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_jsonl.is_file():
            return []
        return [json.loads(line) for line in self.metrics_jsonl.read_text().splitlines() if line]


@dataclass
class TrainedRun:
    """What a finished (or checkpointed) run holds: config, model and data facts.

    ``history`` (one dict of metrics per epoch, from ``metrics.jsonl``) is filled by
    :func:`load`.
    """

    config: RunConfig
    model: nn.Module
    n_features: int
    image_shape: tuple[int, int] | None
    feature_mean: list[float] | None = None
    feature_std: list[float] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    data_info: dict[str, Any] = field(default_factory=dict)
    """Everything recorded beside the weights (``Task.data_info`` at the end of training)."""

    def __repr__(self) -> str:
        return (f"TrainedRun({str(self.path)!r}, model.type {self.config.model.type!r}, "
                f"{len(self.history)} epochs, model {self.model.__class__.__name__})")


def load(run: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """A trained run: ``.model`` (in eval mode, on ``device``), ``.config`` and ``.history``.

    >>> run = boltzkit.load("runs/digits")
    >>> run.model.sample(16)            # Boltzmann machines draw samples
    >>> run.config.train.epochs, run.history[-1]["val_pseudo_log_likelihood"]
    """
    trained = load_run_model(run, device)
    trained.model.eval()
    trained.history = RunDir(run).read_metrics()
    trained.path = Path(run)
    return trained


def load_run_model(run: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """The config and trained model of a run (``model.safetensors``, else the last checkpoint).

    The number of input features and the image shape are recorded beside the weights,
    so the data set need not be loaded.
    """
    run_dir = RunDir(run)
    config = run_dir.read_config()
    if run_dir.weights.is_file():
        state, metadata = load_weights(run_dir.weights)
        source = str(run_dir.weights)
        try:
            info = json.loads(metadata.get("data_info", "{}"))
        except json.JSONDecodeError:
            raise CheckpointError(f"{source}: its data_info metadata is not JSON") from None
    elif run_dir.last_checkpoint.is_file():
        checkpoint = load_checkpoint(run_dir.last_checkpoint)
        state, source = checkpoint.get("model"), str(run_dir.last_checkpoint)
        info = checkpoint.get("data_info", {})
    else:
        raise CheckpointError(
            f"{run_dir.path}: no trained weights (model.safetensors or checkpoints/last.pt)"
        )
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: holds no model weights")
    if not isinstance(info, dict) or not isinstance(info.get("n_features"), int) or info["n_features"] < 1:
        raise CheckpointError(f"{source}: the number of input features is not recorded")
    # the initial draw is overwritten by the saved weights
    try:
        generator = make_generator(config.seed, "model.init")
        model = get_family(config.model.type).build(config.model, info, generator)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: its data_info ({info}) does not describe the configured "
                              f"model.type {config.model.type!r} ({type(err).__name__}: {err})") from None
    load_state_into(model, state, source)
    shape = info.get("image_shape")
    return TrainedRun(config, model.to(device), int(info["n_features"]),
                      tuple(shape) if shape else None, info.get("feature_mean"), info.get("feature_std"),
                      data_info=info)
