"""Figures: checked on the matplotlib Figure (limits, scales, ticks, labels, titles)."""

import numpy as np
import pytest

from boltzkit import plots
from boltzkit.optim.lr_finder import LRFindResult


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots.plt.close("all")


def _panel(fig, title):
    return next(ax for ax in fig.axes if ax.get_title().replace("\n", " ") == title)


def _history(lrs, losses=None):
    losses = losses or [1.0 / (i + 1) for i in range(len(lrs))]
    return [{"epoch": i + 1, "loss": loss, "lr": lr} for i, (lr, loss) in enumerate(zip(lrs, losses, strict=True))]


GROUPS = {"loss": ["loss"], "learning rate": ["lr"]}


@pytest.mark.parametrize("lrs", [[0.01, 0.01], [0.01, 0.01 * (1 + 1e-9), 0.01 * (1 - 1e-9)]])
def test_a_flat_series_gets_a_range_around_its_value(lrs):
    ax = _panel(plots.curves_figure(_history(lrs), GROUPS), "learning rate")
    low, high = ax.get_ylim()
    assert low == pytest.approx(0.0075, rel=1e-6) and high == pytest.approx(0.0125, rel=1e-6)
    assert ax.get_yscale() == "linear"
    assert ax.yaxis.get_major_formatter().get_useOffset() is False  # no "+1e-2" offset of noise


def test_a_flat_zero_series_gets_a_unit_range():
    ax = _panel(plots.curves_figure(_history([0.0, 0.0]), GROUPS), "learning rate")
    assert ax.get_ylim() == (-1.0, 1.0)


def test_a_moving_series_keeps_matplotlib_limits():
    ax = _panel(plots.curves_figure(_history([0.01, 0.009]), GROUPS), "learning rate")
    low, high = ax.get_ylim()
    assert 0.0088 < low < 0.009 and 0.01 < high < 0.0102 and ax.get_yscale() == "linear"


def test_learning_rates_spanning_over_a_decade_get_a_log_axis():
    fig = plots.curves_figure(_history([0.1, 0.01, 0.001], losses=[100.0, 1.0, 0.01]), GROUPS)
    assert _panel(fig, "learning rate").get_yscale() == "log"
    assert _panel(fig, "loss").get_yscale() == "linear"  # only rate panels change scale
    fig = plots.curves_figure(_history([0.1, 0.001, 0.0]), GROUPS)  # cosine down to zero
    ax = _panel(fig, "learning rate")
    assert ax.get_yscale() == "symlog" and ax.yaxis.get_transform().linthresh == 0.001


def test_epoch_ticks_are_integers_on_short_runs():
    fig = plots.curves_figure(_history([0.01, 0.005]), GROUPS, title="run")
    fig.canvas.draw()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks == [1.0, 2.0], ax.get_title()
    assert fig._suptitle.get_text() == "run"


def _inside_figure(fig, artist):
    fig.canvas.draw()
    box, frame = artist.get_window_extent(), fig.bbox
    return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1


def test_a_long_schedule_title_is_wrapped_to_fit_the_figure():
    title = ("piecewise (boundaries=[100, 200, 300, 400], values=[1.0, 0.5, 0.25, 0.125, 0.0625]), "
             "stepped per step; 100 epochs x 43 updates")
    fig = plots.schedule_figure([0.02] * 100 + [0.01] * 100, 43, title)
    ax = fig.axes[0]
    assert "\n" in ax.get_title() and ax.get_title().replace("\n", " ") == title
    assert _inside_figure(fig, ax.title)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "learning rate"


def test_wrap_text_keeps_short_text_and_words():
    assert plots.wrap_text("short title", 7, 9) == "short title"
    wrapped = plots.wrap_text("word " * 60, 3, 10)
    assert all(line.strip() for line in wrapped.split("\n")) and wrapped.split() == ["word"] * 60


def _range_result():
    lrs = list(np.geomspace(1e-5, 1.0, 60))
    losses = [2.0 - 1.5 / (1 + np.exp(-(np.log10(r) + 2.5) * 3)) for r in lrs]
    return LRFindResult(lrs, losses, losses, {"valley": 3e-3, "steepest": 3e-3, "minimum": 1e-2},
                        "steepest", 3e-3, "high", 0.52, 0.0, False, "loss (probe of 512)")


def test_range_test_legend_sits_beside_the_axes(tmp_path):
    fig = plots.range_test_figure(_range_result())
    ax = fig.axes[0]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the plotting area: covers no curve
    assert _inside_figure(fig, ax.get_legend()) and _inside_figure(fig, ax.title)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "steepest: 3.00e-03 (suggested)" in labels
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "loss (probe of 512)"
    assert plots.save_range_test(_range_result(), tmp_path / "lr_find.png").stat().st_size > 0


def test_categorical_samples_are_an_image_with_a_colour_per_category():
    states = np.array([[0, 1, 2, 1], [2, 2, 0, 0], [1, 0, 1, 2]])
    one_hot = np.eye(3)[states].reshape(3, -1)
    assert np.array_equal(plots.one_hot_states(one_hot, 3), states)
    fig = plots.categorical_figure(states, 3, title="3 samples")
    ax, bar = fig.axes
    image = ax.get_images()[0]
    assert np.array_equal(image.get_array(), states)
    assert ax.get_xlabel() == "position" and ax.get_ylabel() == "sample" and ax.get_title() == "3 samples"
    colors = [tuple(image.to_rgba(np.array([[c]]))[0, 0]) for c in range(3)]
    assert len(set(colors)) == 3 and image.get_cmap().N == 3
    fig.canvas.draw()
    assert [t.get_text() for t in bar.get_yticklabels()] == ["0", "1", "2"]
    assert bar.get_ylabel() == "category"


def test_filter_titles_say_how_many_units_and_how_tiles_are_scaled(tmp_path):
    assert plots.filters_title("weights", 100, 256) == (
        "weights: first 100 of 256 hidden units, each filter scaled to its own min-max "
        "(black = min, white = max)")
    assert plots.filters_title("weights", 16, 16).startswith("weights: all 16 hidden units")
    fig = plots.image_grid_figure(np.random.default_rng(0).normal(size=(4, 6)), (2, 3),
                                  title=plots.filters_title("first-layer weights", 4, 300), normalize=True)
    ax = fig.axes[0]
    assert "first 4 of 300 hidden units" in ax.get_title().replace("\n", " ") and _inside_figure(fig, ax.title)
    grid = ax.get_images()[0].get_array()
    assert grid.min() == 0.0 and grid.max() == 1.0


def test_rbm_figures_draw_categorical_samples_and_counted_filters(tmp_path, monkeypatch):
    from boltzkit.config import load_config
    from boltzkit.train import train

    calls = {}
    for name in ("save_categorical", "save_filters", "save_image_grid"):
        real = getattr(plots, name)

        def record(*args, _name=name, _real=real, **kwargs):
            calls.setdefault(_name, []).append((args, kwargs))
            return _real(*args, **kwargs)

        monkeypatch.setattr(plots, name, record)
    config = load_config("rbm-potts", ["train.epochs=1", "data.potts.examples=200", "eval.every=0"])
    train(config, tmp_path / "run", progress=False)
    (one_hot, k, path), kwargs = calls["save_categorical"][0]
    assert k == 3 and path.name == "samples.png" and one_hot.shape == (100, 18)
    assert [args[2].name for args, _ in calls["save_image_grid"]] == ["filters.png"]  # not the samples
    (weights, shape, path), kwargs = calls["save_filters"][0]
    assert weights.shape == (16, 18) and tuple(shape) == (6, 3)
    assert kwargs["title"] == "weights (tile rows = positions, columns = categories)"
    assert (tmp_path / "run" / "samples.png").is_file() and (tmp_path / "run" / "filters.png").is_file()
