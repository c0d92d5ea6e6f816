"""Figures: image grids (samples, filters) and training curves, written as PNG files."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def tile_images(
    images: np.ndarray, shape: tuple[int, int], columns: int | None = None, normalize: bool = False
) -> np.ndarray:
    """Arrange ``(N, H*W)`` rows as a grid image with a one-pixel border.

    ``normalize`` rescales each tile to [0, 1] (for weights, whose scale varies).
    """
    n = len(images)
    height, width = shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1), dtype=np.float32)
    for index, row in enumerate(np.asarray(images, dtype=np.float32)):
        tile = row.reshape(height, width)
        if normalize:
            low, high = tile.min(), tile.max()
            tile = (tile - low) / (high - low) if high > low else np.zeros_like(tile)
        r, c = divmod(index, columns)
        top, left = 1 + r * (height + 1), 1 + c * (width + 1)
        grid[top : top + height, left : left + width] = tile
    return grid


def save_image_grid(
    images: np.ndarray,
    shape: tuple[int, int] | None,
    path: str | Path,
    title: str = "",
    normalize: bool = False,
    cmap: str = "gray",
) -> Path:
    """Save rows of ``images`` as a grid of ``shape`` tiles (a strip plot if no shape)."""
    path = Path(path)
    images = np.asarray(images)
    if shape is None:  # no image layout known: show each example as a row of pixels
        shape = (1, images.shape[1])
        columns = 1
    else:
        columns = None
    grid = tile_images(images, shape, columns, normalize)
    scale = 6.0 / max(grid.shape)
    fig, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] * scale), max(2.0, grid.shape[0] * scale) + 0.4))
    ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_curves(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    groups: Mapping[str, Sequence[str]],
    x: str = "epoch",
    title: str = "",
) -> Path:
    """One panel per group of metric names, each plotted against ``x``.

    Metrics missing from ``history`` are skipped; empty panels are dropped.
    """
    path = Path(path)
    panels = {
        label: [name for name in names if any(name in row for row in history)]
        for label, names in groups.items()
    }
    panels = {label: names for label, names in panels.items() if names}
    count = max(1, len(panels))
    columns = min(3, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, (label, names) in zip(axes.flat, panels.items(), strict=False):
        for name in names:
            points = [(row[x], row[name]) for row in history if name in row and row[name] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=2.5, label=name)
        ax.set_xlabel(x)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_range_test(result, path: str | Path, title: str = "") -> Path:
    """``lr_find.png``: raw and smoothed loss of a :class:`~boltzkit.optim.lr_finder.LRFindResult`
    against the rate, one vertical line per suggestion rule."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.losses, color="0.75", linewidth=1, label="loss per batch")
    ax.plot(result.lrs, result.smoothed, color="C0", linewidth=2, label="smoothed")
    for index, (name, lr) in enumerate(result.suggestions.items()):
        style = "-" if name == result.rule else ":"
        ax.axvline(lr, color=f"C{index + 1}", linestyle=style,
                   label=f"{name}: {lr:.2e}" + (" (suggested)" if name == result.rule else ""))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(result.loss_name)
    smooth_values = np.asarray(result.smoothed)
    top = smooth_values[0] + 0.5 * (smooth_values.max() - smooth_values.min())
    ax.set_ylim(smooth_values.min() - 0.1 * (top - smooth_values.min()), max(top, smooth_values[0] * 1.02))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or f"learning-rate range test: confidence {result.confidence} "
                 f"(spread {result.spread_decades:.2f} decades, noise {result.noise:.2f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_schedule(rates: Sequence[float], steps_per_epoch: int, path: str | Path, title: str) -> Path:
    """The learning rate at every update (``rates``) against the epoch."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([t / steps_per_epoch for t in range(len(rates))], rates, color="C0")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def to_pixels(x, mean=None, std=None):
    """Undo ``data.standardize`` (``x * std + mean``) for display and clip to [0, 1];
    ``x`` is a ``(N, D)`` tensor."""
    import torch

    if mean is not None:
        x = x * torch.as_tensor(std, dtype=x.dtype) + torch.as_tensor(mean, dtype=x.dtype)
    return x.clamp(0, 1)
