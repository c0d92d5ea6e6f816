"""Checkpoints and exported weights, written atomically and loaded without running code.

A checkpoint is a ``torch.save`` file of plain containers and tensors (the model's
weights, the training state of :class:`~boltzkit.train.fit.Fit`: optimizers, schedules,
sampler chains, generator states, position in the run; the config), read back with
``torch.load(weights_only=True)``. Final weights are also exported as
``model.safetensors`` with the config in its metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError

FORMAT = "boltzkit-checkpoint"
VERSION = 2
WEIGHTS_READABLE = (1, 2)
"""Versions whose ``model`` weights and ``data_info`` we read (version 1 came before the
model-family trainer; its training state cannot be resumed)."""


def _atomic_write(path: Path, write) -> Path:
    """Write through ``write(tmp_path)`` then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _digest(value: Any, hasher: Any, path: str = "") -> None:
    """Feed ``value`` (tensors inside plain containers) into ``hasher``, keys and order
    included, so that a flipped bit anywhere changes the digest."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        hasher.update(f"{path}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):  # by key: safetensors hands tensors back sorted by name
        for key in sorted(value, key=str):
            _digest(value[key], hasher, f"{path}/{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _digest(item, hasher, f"{path}[{index}]")
    else:
        hasher.update(f"{path}={value!r}".encode())


def checksum(state: dict[str, Any]) -> str:
    """SHA-256 over every tensor's bytes and every value of a checkpoint's state."""
    hasher = hashlib.sha256()
    _digest({k: v for k, v in state.items() if k != "checksum"}, hasher)
    return hasher.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Save ``state`` (tensors and plain Python containers) atomically to ``path``, with a
    checksum that :func:`load_checkpoint` verifies."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    payload["checksum"] = checksum(payload)
    return _atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


NOT_TRUSTED = ("it holds objects other than tensors and plain containers, so it is not trusted and "
               "was not loaded (boltzkit never unpickles arbitrary objects)")


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    """One line for a file the safe loader refused, without passing on PyTorch's advice to
    load it unsafely."""
    text = str(err)
    if "GLOBAL" in text or "global" in text.split("Weights only load failed")[-1].lower():
        return CheckpointError(f"{path}: {NOT_TRUSTED}")
    detail = next((line.strip() for line in text.splitlines()
                   if line.strip() and "weights_only" not in line and "Weights only" not in line
                   and "WeightsUnpickler" not in line and "documentation" not in line), type(err).__name__)
    return CheckpointError(f"{path}: not a readable boltzkit checkpoint ({detail[:200]})")


def load_checkpoint(path: str | Path, resumable: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, on the CPU; ``resumable``
    demands the current version (older ones still give their weights)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or foreign files
        raise _unreadable(path, err) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a boltzkit checkpoint (no '{FORMAT}' marker)")
    version = payload.get("version")
    if version not in WEIGHTS_READABLE:
        raise CheckpointError(
            f"{path}: checkpoint version {version} is not supported "
            f"(this boltzkit reads versions {', '.join(map(str, WEIGHTS_READABLE))})"
        )
    if "checksum" in payload and payload["checksum"] != checksum(payload):
        raise CheckpointError(f"{path}: checksum mismatch: the file was altered or damaged after it "
                              "was written; it is not loaded (resume from an earlier epoch-NNNN.pt)")
    if resumable and version != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} was written by an earlier boltzkit; "
                              f"its weights load (evaluate, sample) but training resumes only from "
                              f"version {VERSION}")
    return payload


def save_weights(
    path: str | Path, model: nn.Module, config: dict[str, Any], data_info: dict[str, Any]
) -> Path:
    """Export ``model``'s parameters and buffers as safetensors; the metadata hold the
    config and ``data_info`` (number of features, image shape), enough to rebuild the
    model and draw its samples without the data set."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "boltzkit-model", "config": json.dumps(config), "data_info": json.dumps(data_info)}
    metadata["sha256"] = checksum({"tensors": tensors, "metadata": metadata})
    return _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a file written by :func:`save_weights`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    described = {k: v for k, v in metadata.items() if k != "sha256"}
    if "sha256" in metadata and metadata["sha256"] != checksum({"tensors": tensors, "metadata": described}):
        raise CheckpointError(f"{path}: checksum mismatch: the weights were altered or damaged after "
                              "they were written; they are not loaded")
    return tensors, metadata


def load_state_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` with a one-line error on a shape or key mismatch."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"{source}: weights do not fit the configured model ({detail[:300]})") from None
