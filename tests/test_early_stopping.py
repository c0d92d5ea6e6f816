"""Early stopping: patience, direction, min_delta, best weights restored, exact resume."""

import pytest
import torch
from torch import nn

from boltzkit import load_config
from boltzkit.errors import ConfigError
from boltzkit.train import fit, train
from boltzkit.train.early_stopping import EarlyStopping

MLP = ["model={type: mlp, hidden_layers: [16]}", "data.binarize=none", "threads=1",
       "train.schedule={name: constant, unit: epoch}", "train.optimizer={name: sgd, lr: 0.5}",
       "train.epochs=30", "train.checkpoint_every=1"]


def _feed(stopper, values, model=None):
    model = model or nn.Linear(1, 1)
    return [stopper.update({"epoch": i + 1, "m": v}, model) for i, v in enumerate(values)]


def _full_and_resumed(config, folder):
    """An uninterrupted run and one that crashed after epoch 3 and was resumed."""
    full = train(config, folder / "full", progress=False)

    def crash(epoch, metrics):
        if epoch == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        train(config, folder / "cut", progress=False, on_epoch_end=crash)
    return full, train(config, folder / "cut", resume=True, progress=False)


def test_patience_counts_epochs_without_improvement_in_the_metrics_direction():
    assert _feed(EarlyStopping("m", "maximize", 2), [1, 2, 1.5, 1.9, 3]) == [False, False, False, True, False]
    assert _feed(EarlyStopping("m", "minimize", 2), [3, 2, 2.5, 1, 1.5, 1.2]) == [False] * 5 + [True]
    stopper = EarlyStopping("m", "minimize", 1, min_delta=0.5)
    assert _feed(stopper, [3, 2.7]) == [False, True] and stopper.best == 3  # 0.3 < min_delta


def test_best_weights_are_restored():
    model = nn.Linear(2, 1)
    stopper = EarlyStopping("m", "maximize", 1)
    stopper.update({"epoch": 1, "m": 1.0}, model)
    best = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    assert stopper.update({"epoch": 2, "m": 0.5}, model) and stopper.restore(model)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best.items())


def test_a_stopped_run_ends_with_the_weights_of_its_best_epoch():
    result = fit(load_config(None, [*MLP, "train.early_stopping={metric: val_loss, patience: 2}"]))
    epochs = [row["epoch"] for row in result.history]
    losses = [row["val_loss"] for row in result.history]
    best = epochs[losses.index(min(losses))]
    assert len(epochs) < 30 and epochs[-1] == best + 2  # stopped by patience, not by the budget
    shorter = fit(load_config(None, [*MLP, f"train.epochs={best}"]))  # constant rate: same path
    for name, tensor in shorter.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[name], tensor), name


def test_resume_stops_where_an_uninterrupted_run_does(tmp_path):
    config = load_config(None, [*MLP, "train.early_stopping={metric: val_loss, patience: 2}"])
    full, resumed = _full_and_resumed(config, tmp_path)
    assert len(resumed.history) == len(full.history) and "early stop after epoch" in resumed.summary
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    again = train(config, tmp_path / "cut", resume=True, progress=False)
    assert again.epochs_trained == 0 and "stopped early" in again.summary


def test_a_metric_without_a_direction_is_refused():
    with pytest.raises(ConfigError, match="early_stopping.metric 'val_free_energy' is not a metric "
                                          "model.type 'rbm' logs with a direction"):
        fit(load_config(None, ["train.early_stopping={metric: val_free_energy}"]))
    assert load_config(None, ["train.early_stopping={}"]).train.early_stopping.metric == \
        "val_pseudo_log_likelihood"


BACKOFF = [*MLP[:3], "train.optimizer={name: sgd, lr: 0.1}", "train.epochs=4", "train.checkpoint_every=1",
           # the rate jumps at update 50, a few updates into epoch 2 (43 updates per epoch), so that
           # backing off must undo those updates: weights, optimizer, generators
           "train.schedule={name: piecewise, unit: step, boundaries: [50], values: [1.0, 1000.0]}"]


def test_backoff_restarts_the_epoch_with_a_lower_rate_and_records_it(diverge_above):
    from boltzkit.errors import DivergenceError

    diverge_above(1.0)  # from update 50 the rate is 0.1 x 1000 = 100: a NaN loss
    with pytest.raises(DivergenceError, match="set train.clip_grad_norm or train.backoff"):
        fit(load_config(None, BACKOFF))
    result = fit(load_config(None, [*BACKOFF, "train.backoff={factor: 0.005, retries: 2}"]))
    assert [row["lr_backoffs"] for row in result.history] == [0, 1, 1, 1]
    assert [row["lr"] for row in result.history] == pytest.approx([0.1, 0.5, 0.5, 0.5])  # 100 x 0.005
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_backoff_gives_up_after_its_retries(diverge_above):
    from boltzkit.errors import DivergenceError

    diverge_above(1.0)  # 100, then 50, then 25: still too high after two retries
    with pytest.raises(DivergenceError):
        fit(load_config(None, [*BACKOFF, "train.backoff={factor: 0.5, retries: 2}"]))


def test_a_run_that_backed_off_resumes_exactly(tmp_path, diverge_above):
    diverge_above(1.0)
    config = load_config(None, [*BACKOFF, "train.backoff={factor: 0.005}"])
    full, resumed = _full_and_resumed(config, tmp_path)
    assert len(resumed.history) == len(full.history)
    assert resumed.history == [{**row, "seconds": r["seconds"]}
                               for row, r in zip(full.history, resumed.history, strict=True)]
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_epochs_without_the_metric_neither_improve_nor_count():
    stopper = EarlyStopping("m", "maximize", 1)
    model = nn.Linear(1, 1)
    assert not stopper.update({"epoch": 1, "m": 1.0}, model)
    assert not stopper.update({"epoch": 2}, model) and stopper.waited == 0  # AIS every 2 epochs
    assert stopper.update({"epoch": 3, "m": 0.5}, model)


def test_a_budget_that_runs_out_also_ends_with_the_best_weights():
    config = load_config(None, [*MLP, "train.epochs=4", "train.early_stopping={metric: val_loss, patience: 100}"])
    result = fit(config)
    losses = [row["val_loss"] for row in result.history]
    best = losses.index(min(losses)) + 1
    assert len(losses) == 4 and best < 4  # the last epoch was worse than the best
    shorter = fit(load_config(None, [*MLP, f"train.epochs={best}"]))
    for name, tensor in shorter.model.state_dict().items():
        assert torch.equal(result.model.state_dict()[name], tensor), name


def test_early_stopping_on_an_unlogged_metric_is_refused():
    with pytest.raises(ConfigError, match="never logged with train.metrics_examples: 0"):
        fit(load_config(None, [*MLP, "train.metrics_examples=0", "train.early_stopping={metric: val_loss}"]))


def test_extending_a_run_that_kept_its_best_epoch_goes_on_from_its_last(tmp_path):
    """The last checkpoint keeps the last epoch's weights (the best are restored after it),
    so a run extended from 4 to 6 epochs equals a 6-epoch run."""
    stopping = "train.early_stopping={metric: val_loss, patience: 100}"
    six = train(load_config(None, [*MLP, "train.epochs=6", stopping]), tmp_path / "six", progress=False)
    train(load_config(None, [*MLP, "train.epochs=4", stopping]), tmp_path / "four", progress=False)
    extended = train(load_config(None, [*MLP, "train.epochs=6", stopping]), tmp_path / "four", resume=True,
                     progress=False)
    assert [row["val_loss"] for row in extended.history] == [row["val_loss"] for row in six.history]
    assert extended.kept_epoch == six.kept_epoch
    for name, tensor in six.model.state_dict().items():
        assert torch.equal(extended.model.state_dict()[name], tensor), name
