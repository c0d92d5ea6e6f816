"""Figures: image grids (samples, filters), categorical samples, training curves, the
learning-rate range test and schedules, written as PNG files.

Each ``save_*`` function draws with its ``*_figure`` twin, which returns the
:class:`matplotlib.figure.Figure` (for tests and notebooks), then writes and closes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FLAT = 1e-6
"""A series whose range is below ``FLAT`` times its magnitude is drawn as flat."""
FLAT_MARGIN = 0.25
"""A flat series gets a y-range of its value +- this fraction of it."""
LOG_METRICS = frozenset({"lr"})
"""Panels holding only these metrics get a log axis when their values span over a decade."""


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


def wrap_text(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` with line breaks between words so that no line is wider than
    ``width_inches`` at ``fontsize`` points (measured with the default font; a single
    word wider than that keeps its own line)."""
    from matplotlib.textpath import text_to_path

    font = FontProperties(size=fontsize)
    limit = width_inches * 72 / 1.05  # points, with a margin for hinting

    def width(line: str) -> float:
        return text_to_path.get_text_width_height_descent(line, font, ismath=False)[0]

    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and width(candidate) > limit:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)


def _save(fig: Figure, path: str | Path, tight: bool = False) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight" if tight else None)
    plt.close(fig)
    return path


def image_grid_figure(
    images: np.ndarray,
    shape: tuple[int, int] | None,
    title: str = "",
    normalize: bool = False,
    cmap: str = "gray",
    columns: int | None = None,
) -> Figure:
    """Rows of ``images`` as a grid of ``shape`` tiles (a strip plot if no shape), ``columns``
    tiles a row (default: a square grid)."""
    images = np.asarray(images)
    if shape is None:  # no image layout known: show each example as a row of pixels
        shape = (1, images.shape[1])
        columns = 1
    grid = tile_images(images, shape, columns, normalize)
    scale = 6.0 / max(grid.shape)
    width = max(2.0, grid.shape[1] * scale)
    fig, ax = plt.subplots(figsize=(width, max(2.0, grid.shape[0] * scale) + 0.4))
    ax.imshow(grid, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    if title:
        ax.set_title(wrap_text(title, width * 0.95, 10), fontsize=10)
    fig.tight_layout()
    return fig


def save_image_grid(
    images: np.ndarray,
    shape: tuple[int, int] | None,
    path: str | Path,
    title: str = "",
    normalize: bool = False,
    cmap: str = "gray",
    columns: int | None = None,
) -> Path:
    """Save rows of ``images`` as a grid of ``shape`` tiles (a strip plot if no shape)."""
    return _save(image_grid_figure(images, shape, title, normalize, cmap, columns), path)


def filters_title(title: str, shown: int, total: int, what: str = "hidden units") -> str:
    """``title`` with how many of the units are shown and how each tile is scaled."""
    count = f"all {total}" if shown >= total else f"first {shown} of {total}"
    return f"{title}: {count} {what}, each filter scaled to its own min-max (black = min, white = max)"


def save_filters(
    weights: np.ndarray,
    shape: tuple[int, int] | None,
    path: str | Path,
    title: str = "weights",
    what: str = "hidden units",
    limit: int = 100,
) -> Path:
    """The first ``limit`` rows of ``weights`` (one unit's incoming weights per row), each
    tile scaled to its own range; the title says so and how many units there are."""
    weights = np.asarray(weights)
    shown = weights[:limit]
    return save_image_grid(shown, shape, path, title=filters_title(title, len(shown), len(weights), what),
                           normalize=True)


def category_colors(k: int) -> ListedColormap:
    """A discrete colormap with one distinguishable colour per category ``0 .. k-1``."""
    if k <= 10:
        colors = plt.get_cmap("tab10").colors[:k]
    elif k <= 20:
        colors = plt.get_cmap("tab20").colors[:k]
    else:
        colors = plt.get_cmap("turbo")(np.linspace(0, 1, k))
    return ListedColormap(colors, name=f"categories{k}")


def categorical_figure(states: np.ndarray, categories: int, title: str = "") -> Figure:
    """Integer states ``(samples, positions)`` as an image: a row per sample, a column per
    position, one colour per category with a colorbar naming them."""
    states = np.asarray(states)
    n, length = states.shape
    width = min(12.0, max(4.0, 0.4 * length + 2.2))
    height = min(10.0, max(3.0, 0.07 * n + 1.6, 0.22 * categories + 1.2))  # room for the colorbar
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    norm = BoundaryNorm(np.arange(categories + 1) - 0.5, categories)
    image = ax.imshow(states, cmap=category_colors(categories), norm=norm, interpolation="nearest",
                      aspect="auto")
    ax.set_xlabel("position")
    ax.set_ylabel("sample")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bar = fig.colorbar(image, ax=ax, ticks=range(categories), fraction=0.08,
                       shrink=min(0.95, 0.25 + 0.08 * categories), aspect=15)
    bar.set_label("category")
    bar.ax.set_yticklabels([str(c) for c in range(categories)])
    if title:
        ax.set_title(wrap_text(title, width * 0.7, 10), fontsize=10)
    return fig


def one_hot_states(one_hot: np.ndarray, categories: int) -> np.ndarray:
    """One-hot rows ``(n, L * k)`` (or their probabilities) as state indices ``(n, L)``."""
    one_hot = np.asarray(one_hot)
    return one_hot.reshape(len(one_hot), -1, categories).argmax(axis=2)


def save_categorical(one_hot: np.ndarray, categories: int, path: str | Path, title: str = "") -> Path:
    """``samples.png`` for categorical units: one-hot rows drawn by :func:`categorical_figure`."""
    return _save(categorical_figure(one_hot_states(one_hot, categories), categories, title), path)


def _scale_y(ax, values: Sequence[float], log_allowed: bool) -> None:
    """A sensible y-axis for ``values``: around the value for a flat series (instead of
    matplotlib's +-4 % or an offset axis of rounding noise), logarithmic for a rate
    spanning more than a decade (symmetric-log when it also reaches zero)."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if not len(values):
        return
    low, high = float(values.min()), float(values.max())
    size = max(abs(low), abs(high))
    if high - low <= FLAT * size or size == 0:
        middle = 0.5 * (low + high)
        margin = FLAT_MARGIN * abs(middle) if middle else 1.0
        ax.set_ylim(middle - margin, middle + margin)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        return
    positive = values[values > 0]
    if log_allowed and low >= 0 and len(positive) and high / positive.min() > 10:
        if low > 0:
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=float(positive.min()))


def curves_figure(
    history: Sequence[Mapping[str, float]],
    groups: Mapping[str, Sequence[str]],
    x: str = "epoch",
    title: str = "",
) -> Figure:
    """One panel per group of metric names, each plotted against ``x``.

    Metrics missing from ``history`` are skipped; empty panels are dropped. With
    ``x = 'epoch'`` the x ticks are integers; a flat series gets a y-range around its
    value; a panel of learning rates (:data:`LOG_METRICS`) spanning over a decade is
    logarithmic.
    """
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
        values: list[float] = []
        for name in names:
            points = [(row[x], row[name]) for row in history if name in row and row[name] is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=2.5, label=name)
                values.extend(ys)
        _scale_y(ax, values, log_allowed=set(names) <= LOG_METRICS)
        ax.set_xlabel(x)
        if x == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(wrap_text(label, 4.0, 10), fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(wrap_text(title, 4.2 * columns * 0.95, 11), fontsize=11)
    fig.tight_layout()
    return fig


def save_curves(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    groups: Mapping[str, Sequence[str]],
    x: str = "epoch",
    title: str = "",
) -> Path:
    """``curves.png``: :func:`curves_figure` written to ``path``."""
    return _save(curves_figure(history, groups, x, title), path)


def range_test_figure(result, title: str = "") -> Figure:
    """Raw and smoothed loss of a :class:`~boltzkit.optim.lr_finder.LRFindResult` against
    the rate, one vertical line per suggestion rule; the legend beside the axes."""
    fig, ax = plt.subplots(figsize=(9.5, 4.2), layout="constrained")
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    text = title or (f"learning-rate range test: confidence {result.confidence} "
                     f"(spread {result.spread_decades:.2f} decades, noise {result.noise:.2f})")
    ax.set_title(wrap_text(text, 6.5, 10), fontsize=10)
    return fig


def save_range_test(result, path: str | Path, title: str = "") -> Path:
    """``lr_find.png``: :func:`range_test_figure` written to ``path``."""
    return _save(range_test_figure(result, title), path, tight=True)


def schedule_figure(rates: Sequence[float], steps_per_epoch: int, title: str,
                    momenta: Sequence[float] | None = None) -> Figure:
    """The learning rate at every update (``rates``) against the epoch, and the momentum
    on a second axis when the schedule cycles it (1cycle); the title wrapped to the
    figure's width."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    epochs = [t / steps_per_epoch for t in range(len(rates))]
    ax.plot(epochs, rates, color="C0", label="learning rate")
    _scale_y(ax, rates, log_allowed=False)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("learning rate", color="C0")
    if momenta is not None:
        other = ax.twinx()
        other.plot(epochs, momenta, color="C1", linestyle="--", label="momentum")
        other.set_ylabel("momentum (Adam: beta1)", color="C1")
    ax.set_title(wrap_text(title, 7 * 0.9, 9), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_schedule(rates: Sequence[float], steps_per_epoch: int, path: str | Path, title: str,
                  momenta: Sequence[float] | None = None) -> Path:
    """The learning rate (and a cycled momentum) at every update against the epoch."""
    return _save(schedule_figure(rates, steps_per_epoch, title, momenta), path)


def to_pixels(x, mean=None, std=None):
    """Undo ``data.standardize`` (``x * std + mean``) for display and clip to [0, 1];
    ``x`` is a ``(N, D)`` tensor."""
    import torch

    if mean is not None:
        x = x * torch.as_tensor(std, dtype=x.dtype) + torch.as_tensor(mean, dtype=x.dtype)
    return x.clamp(0, 1)


def save_samples(model, states, means, path: str | Path, title: str, shape=None,
                 feature_mean=None, feature_std=None, means_label: str = "E[v|h]") -> Path:
    """A trained model's samples: categorical visible units as rows of coloured states,
    anything else as an image grid of ``E[v | h]`` (standardized features mapped back).
    ``states`` and ``means`` are ``(n, D)`` tensors."""
    visible = getattr(model, "visible", None)
    if visible is not None and visible.name == "categorical":
        return save_categorical(states.cpu().numpy(), visible.k, path, title=title)
    pixels = to_pixels(means.cpu(), feature_mean, feature_std)
    return save_image_grid(pixels.numpy(), shape, path, title=f"{title} ({means_label})")


def grad_norms_figure(history: Sequence[Mapping[str, float]]) -> Figure:
    """Each weight's gradient norm (epoch mean, ``grad_norm/<name>``) against the epoch on
    a log axis: layers whose gradients vanish sink, exploding ones climb."""
    names = [k for k in history[0] if k.startswith("grad_norm/")] if history else []
    weights = [k for k in names if k.endswith("weight")] or names
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(weights))))
    for color, name in zip(colors, weights, strict=False):
        points = [(row["epoch"], row[name]) for row in history if row.get(name)]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=2.5, color=color,
                    label=name.removeprefix("grad_norm/"))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("gradient norm (epoch mean, before clipping)")
    ax.set_title("gradient norm per layer (first layer dark, last light)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def save_grad_norms(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """``grad_norms.png``: see :func:`grad_norms_figure`."""
    return _save(grad_norms_figure(history), path, tight=True)


def verification_figure(check) -> Figure:
    """``lr_verify.png``: each candidate rate's validation metric at every rung of
    :func:`~boltzkit.train.lr_verify.verify_rates` (log rate axis), the pick marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, rung in enumerate(check.rungs):
        points = sorted((lr, v) for lr, v in rung["results"].items() if math.isfinite(v))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", color=f"C{index}",
                    label=f"{rung['epochs']:g} epochs ({len(rung['results'])} rates)")
    ax.axvline(check.best_lr, color="k", linestyle=":", label=f"verified: {check.best_lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"{check.metric} ({'higher' if check.direction == 'maximize' else 'lower'} is better)")
    ax.set_title(f"lr-find --verify: {len(check.candidates)} candidates, {check.epochs_spent:g} epochs "
                 "of training in all", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def save_verification(check, path: str | Path) -> Path:
    return _save(verification_figure(check), path, tight=True)


# ---- VAE and autoencoder figures


def _columns_figure(images: np.ndarray, shape: tuple[int, int] | None, columns: int, title: str) -> Figure:
    """Rows of ``images`` as tiles, ``columns`` per row of the grid (a strip plot when no
    image shape is known)."""
    if shape is None:
        return image_grid_figure(images, None, title)
    grid = tile_images(np.clip(images, 0.0, 1.0), shape, columns)
    scale = 6.0 / max(grid.shape)
    width = max(2.0, grid.shape[1] * scale)
    fig, ax = plt.subplots(figsize=(width, max(2.0, grid.shape[0] * scale) + 0.5))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    ax.set_title(wrap_text(title, width * 0.95, 10), fontsize=10)
    fig.tight_layout()
    return fig


def reconstructions_figure(rows: Sequence[tuple[str, np.ndarray]], shape: tuple[int, int] | None,
                           title: str = "") -> Figure:
    """One strip per ``(label, images)`` pair, each ``images`` ``(n, H*W)`` in [0, 1] and
    the strips aligned column by column (inputs above their reconstructions); without an
    image ``shape`` each example is a column of pixels."""
    n = len(rows[0][1])
    tile = tuple(shape) if shape is not None else (rows[0][1].shape[1], 1)
    strips = [tile_images(images, tile, columns=n) for _, images in rows]
    width = min(12.0, max(4.0, 0.45 * n))
    height = width * strips[0].shape[0] / strips[0].shape[1]
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, (height + 0.35) * len(rows) + 0.4),
                             squeeze=False)
    for ax, strip, (label, _) in zip(axes[:, 0], strips, rows, strict=True):
        ax.imshow(strip, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(wrap_text(title, width * 0.95, 10), fontsize=10)
    fig.tight_layout()
    return fig


def save_reconstructions(rows: Sequence[tuple[str, np.ndarray]], shape: tuple[int, int] | None,
                         path: str | Path, title: str = "") -> Path:
    """``reconstructions.png``: :func:`reconstructions_figure` written to ``path``."""
    return _save(reconstructions_figure(rows, shape, title), path)


def latent_map_figure(images: np.ndarray, steps: int, shape: tuple[int, int] | None, title: str) -> Figure:
    """A ``steps x steps`` grid of decoded images (``(steps^2, D)``, row-major: latent
    dimension 2 down the rows, dimension 1 across the columns)."""
    return _columns_figure(np.asarray(images), shape, steps, title)


def save_latent_map(images: np.ndarray, steps: int, shape: tuple[int, int] | None, path: str | Path,
                    title: str) -> Path:
    """``latent_map.png``: see :func:`latent_map_figure`."""
    return _save(latent_map_figure(images, steps, shape, title), path)
