"""``threads: auto``: one thread for small models, else the measured faster count."""

import pytest
import torch
from torch import nn

from boltzkit import load_config
from boltzkit.train import threads as threads_module
from boltzkit.train.threads import SMALL_WORK, choose_threads, largest_product, using_threads


def _model(n_in: int, n_out: int) -> nn.Module:
    return nn.Linear(n_in, n_out)


def test_auto_is_the_default_and_explicit_settings_pass_through():
    assert load_config("rbm-digits").threads == "auto"
    model = _model(784, 500)
    assert choose_threads(3, model, 100).threads == 3
    assert choose_threads(None, model, 100).threads is None
    assert choose_threads("auto", model, 100, device="cuda").threads is None  # no CUDA needed to decide


def test_largest_product_names_the_biggest_weight_matrix():
    model = nn.Sequential(nn.Linear(784, 500), nn.Linear(500, 10))
    assert largest_product(model, 64) == (64, 784, 500)


def test_small_models_get_one_thread_without_timing(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(threads_module, "_seconds", lambda *a: pytest.fail("timed a small model"))
    choice = choose_threads("auto", _model(64, 100), 64)  # 0.4 M multiply-adds
    assert 64 * 64 * 100 < SMALL_WORK and choice.threads == 1 and "too small" in choice.reason


@pytest.mark.parametrize("multi_seconds, expected", [(0.5, 2), (0.9, 1)])
def test_large_models_keep_threads_only_when_measured_faster(monkeypatch, multi_seconds, expected):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(threads_module, "_seconds",
                        lambda a, b, threads: 1.0 if threads == 1 else multi_seconds)
    choice = choose_threads("auto", _model(784, 500), 100)
    assert choice.threads == expected
    assert f"{1 / multi_seconds:.2f}x" in choice.reason


def test_using_threads_restores_the_previous_count():
    before = torch.get_num_threads()
    with using_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_timing_the_choice_leaves_the_thread_count_as_it_was():
    before = torch.get_num_threads()
    choose_threads("auto", _model(784, 500), 200)  # large enough to be timed
    assert torch.get_num_threads() == before
