"""lr-find --verify: candidates from every rule, successive halving on a validation metric."""

import math

import pytest

from boltzkit import load_config
from boltzkit.train import lr_verify
from boltzkit.train.lr_find_run import find_lr
from boltzkit.train.lr_verify import candidate_rates, verify_rates


def test_candidates_merge_close_rates_and_fill_wide_gaps():
    rates = candidate_rates({"valley": 0.007, "steepest": 0.02, "minimum": 0.0093}, curve_minimum=0.05)
    assert rates == [0.007, 0.02, 0.05]  # 0.0093 merged into 0.007; no gap above half a decade
    wide = candidate_rates({"valley": 0.026, "steepest": 0.055}, curve_minimum=0.39)
    assert wide == pytest.approx([0.026, 0.055, math.sqrt(0.055 * 0.39), 0.39])


def test_successive_halving_keeps_the_best_and_counts_its_compute(monkeypatch):
    """A fake score: the validation loss is lowest at 0.01, whatever the budget; 0.3 diverges."""
    def fake_score(config, dataset, lr, epochs, metric):
        return math.nan if lr > 0.2 else abs(math.log10(lr) + 2) + 1.0 / epochs

    monkeypatch.setattr(lr_verify, "_score", fake_score)
    config = load_config("mlp-digits", ["train.epochs=8"])
    check = verify_rates(config, [0.001, 0.01, 0.05, 0.3])
    assert check.metric == "val_loss" and check.direction == "minimize"
    assert [r["epochs"] for r in check.rungs] == [2, 8]
    assert set(check.rungs[0]["results"]) == {0.001, 0.01, 0.05, 0.3}
    assert set(check.rungs[1]["results"]) == {0.01, 0.05}  # the two best of the first round
    assert check.best_lr == 0.01 and check.epochs_spent == 4 * 2 + 2 * 8
    assert "<- best" in check.table().splitlines()[2]


def test_verify_on_a_real_run_picks_the_best_final_and_applies_it(tmp_path):
    config = load_config("mlp-digits", ["train.epochs=3", "threads=1", "model.hidden_layers=[16]",
                                        "train.schedule={name: constant}"])
    result, applied = find_lr(config, tmp_path, iterations=40, verify=True, apply=True, progress=False)
    check = result.verification
    assert result.rule == "verified" and result.suggestion == check["best_lr"]
    finals = check["rungs"][-1]["results"]
    assert finals[check["best_lr"]] == min(v for v in finals.values() if not math.isnan(v))
    assert load_config(applied).train.optimizer.lr == pytest.approx(result.suggestion, rel=1e-5)
    assert (tmp_path / "lr_verify.png").is_file()


def test_a_fraction_of_an_epoch_is_measured_where_it_stopped_and_a_whole_one_equals_fit():
    import torch

    from boltzkit.data import load_dataset
    from boltzkit.train import fit

    config = load_config("mlp-digits", ["train.epochs=2", "threads=1", "model.hidden_layers=[8]"])
    dataset = load_dataset(config.data)
    half = lr_verify._score(config, dataset, 0.001, 0.5, "val_loss")
    whole = lr_verify._score(config, dataset, 0.001, 1.0, "val_loss")
    torch.manual_seed(config.seed)  # as _score seeds dropout's generator
    reference = fit(config.with_overrides({"train.optimizer.lr": 0.001, "train.epochs": 1}))
    assert whole == reference.history[-1]["val_loss"]  # the same run, whatever ran before
    assert math.isfinite(half) and half != whole
