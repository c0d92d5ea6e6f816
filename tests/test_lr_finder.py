import copy
import json
import math

import numpy as np
import pytest
import torch

from boltzkit.config import load_config
from boltzkit.optim.lr_finder import confidence, lr_range_test, smooth, suggest
from boltzkit.train import Fit
from boltzkit.train.lr_find_run import find_lr


def synthetic_curve(n=200, valley=(1e-4, 1e-2), low=1e-6, high=10.0):
    """Flat at 1 below valley[0], falls linearly in log(lr) to 0 at valley[1], then climbs."""
    lrs = np.geomspace(low, high, n)
    x = np.log10(lrs)
    a, b = np.log10(valley)
    loss = np.where(x < a, 1.0, np.where(x < b, 1 - (x - a) / (b - a), (x - b) * 3))
    return lrs.tolist(), loss.tolist()


def test_rules_on_a_known_curve():
    lrs, loss = synthetic_curve()
    # the descent runs from 1e-4 to 1e-2: 5 % and 95 % of the drop are at 10^-3.9 and 10^-2.1
    assert suggest(lrs, loss, "valley") == pytest.approx(1e-3, rel=0.1)
    assert 1e-4 <= suggest(lrs, loss, "steepest") <= 1e-2  # constant slope inside the valley
    assert suggest(lrs, loss, "minimum") == pytest.approx(1e-3, rel=0.1)  # min at 1e-2, / 10


def test_steepest_finds_the_steepest_part():
    lrs = np.geomspace(1e-6, 1, 300)
    x = np.log10(lrs)
    loss = 1 / (1 + np.exp(4 * (x + 3)))  # a logistic drop, steepest at 1e-3
    loss = np.where(x > -1, loss + (x + 1) ** 2, loss)
    assert suggest(lrs.tolist(), loss.tolist(), "steepest") == pytest.approx(1e-3, rel=0.1)


def test_smoothing_is_bias_corrected():
    assert smooth([5.0, 5.0, 5.0]) == pytest.approx([5.0, 5.0, 5.0])
    values = smooth([1.0, 0.0], beta=0.5)
    assert values == pytest.approx([1.0, 1 / 3])


def test_confidence_labels():
    lrs, loss = synthetic_curve()
    label, spread, noise = confidence(lrs, loss, loss, {"a": 1e-3, "b": 2e-3, "c": 1.5e-3})
    assert label == "high" and spread == pytest.approx(math.log10(2)) and noise == 0
    assert confidence(lrs, loss, loss, {"a": 1e-4, "b": 1e-2})[0] == "low"


def test_unknown_rule_and_short_curves():
    with pytest.raises(ValueError, match="unknown suggestion rule 'best'"):
        suggest([1, 2, 3, 4, 5], [1, 1, 1, 1, 1], "best")
    with pytest.raises(ValueError, match="recorded only 3 points"):
        suggest([1, 2, 3], [1, 1, 1], "valley")


class _Setup:
    """A fresh training session's pieces, as the range test sees them."""

    def __init__(self, config):
        self.session = Fit(config)
        step = self.session.train_step()
        self.model, self.optimizer, self.schedule, self.objective = (
            self.session.model, step.optimizer, step.schedule, step.objective)
        self.data_rng = self.session.data_rng

    def batches(self):
        task = self.session.task
        return (task.batch(rows, self.data_rng) for rows in self.session.batches.endless())


def prepare(config):
    return _Setup(config)


def _state(setup):
    return {
        "model": {k: v.clone() for k, v in setup.model.state_dict().items()},
        "optimizer": setup.optimizer.state_dict(),
        "schedule": setup.schedule.state_dict(),
        "objective": setup.objective.state_dict(),
        "data_rng": setup.data_rng.get_state(),
        "batches": setup.session.batches.state_dict(),
        "global_rng": torch.get_rng_state(),
    }


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("overrides", [
    ["train.method=pcd", "train.schedule={name: cosine, unit: step}"],
    ["model={type: mlp}", "model.batch_norm=true", "model.dropout=0.1", "data.binarize=none",
     "train.optimizer={name: adam, lr: 0.001}"],
])
def test_range_test_restores_every_state_bit_for_bit(overrides):
    config = load_config(None, ["model.n_hidden=16", "train.metrics_examples=100", *overrides])
    torch.manual_seed(0)  # dropout draws from the global generator
    setup = prepare(config)
    batches = setup.batches()
    for _ in range(3):  # put momentum buffers, chains and generators in a non-initial state
        loss = setup.objective.loss(setup.model, next(batches))
        setup.optimizer.zero_grad()
        loss.backward()
        setup.optimizer.step()
        setup.schedule.step()
    before = copy.deepcopy(_state(setup))  # deep: the test mutates buffers in place
    result = lr_range_test(
        setup.model, setup.optimizer, batches, lambda b: setup.objective.loss(setup.model, b),
        lambda b, loss: loss.item(), iterations=30,
        stateful=[setup.schedule, setup.objective, setup.data_rng, setup.session.batches])
    assert len(result.lrs) >= 5
    assert _equal(before, _state(setup))
    # and the run continues exactly as it would have: same next update
    torch.manual_seed(0)
    reference = prepare(config)
    ref_batches = reference.batches()
    for _ in range(3):
        loss = reference.objective.loss(reference.model, next(ref_batches))
        reference.optimizer.zero_grad()
        loss.backward()
        reference.optimizer.step()
        reference.schedule.step()
    assert _equal(_state(reference)["model"], before["model"])


def test_divergence_stops_the_test_early():
    config = load_config(None, ["model={type: mlp}", "data.binarize=none",
                                "train.optimizer={name: sgd, lr: 0.1}"])
    setup = prepare(config)
    result = lr_range_test(
        setup.model, setup.optimizer, setup.batches(),
        lambda b: setup.objective.loss(setup.model, b), lambda b, loss: loss.item(),
        low=1e-4, high=1e6, iterations=200)
    assert result.stopped_early and len(result.lrs) < 200


def test_find_lr_writes_outputs_and_applies(tmp_path):
    config = load_config(None, ["model={type: mlp}", "data.binarize=none",
                                "train.optimizer={name: sgd, lr: 0.1, momentum: 0.9}"])
    result, applied = find_lr(config, tmp_path, iterations=60, apply=True, progress=False)
    assert (tmp_path / "lr_find.png").is_file() and (tmp_path / "lr_find.json").is_file()
    assert load_config(applied).train.optimizer.lr == pytest.approx(result.suggestion, rel=1e-5)
    assert load_config(applied).train.optimizer.momentum == 0.9
    assert 1e-4 < result.suggestion < 1  # a sane rate for SGD on an MLP
    assert result.caveat == ""  # classifiers carry no known caveat


def test_rbm_range_test_admits_it_is_a_weak_guide(tmp_path):
    """docs/RESULTS.md: on RBMs every rule points too low, however clean the curve looks."""
    config = load_config("rbm-digits", ["model.n_hidden=16"])
    result, _ = find_lr(config, tmp_path, iterations=20, progress=False)
    assert result.confidence == "low" and "weak guide for RBMs" in result.caveat
    assert json.loads((tmp_path / "lr_find.json").read_text())["caveat"] == result.caveat


def test_range_test_argument_errors():
    setup = prepare(load_config(None, []))
    with pytest.raises(ValueError, match="Invalid range: low=1, high=0.1"):
        lr_range_test(setup.model, setup.optimizer, iter([]), None, None, low=1, high=0.1)
    with pytest.raises(ValueError, match="Invalid number of iterations: 2"):
        lr_range_test(setup.model, setup.optimizer, iter([]), None, None, iterations=2)
