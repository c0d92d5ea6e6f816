"""The Python API a newcomer starts with: load, model.sample, in-memory data, Dataset repr."""

import numpy as np
import pytest
import torch

import boltzkit
from boltzkit import load_config
from boltzkit.data import load_dataset
from boltzkit.errors import DataError
from boltzkit.train import fit, train
from boltzkit.train.evaluate_run import evaluate_run

FAST = {"train.epochs": 2, "model.n_hidden": 16, "train.metrics_examples": 50, "threads": 1}


def test_load_round_trips_a_run(tmp_path):
    result = train(load_config("rbm-digits", FAST), tmp_path / "run", progress=False)
    run = boltzkit.load(tmp_path / "run")
    assert run.config == result.config
    assert not run.model.training
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], tensor), name
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert run.history[-1]["val_pseudo_log_likelihood"] == pytest.approx(
        result.history[-1]["val_pseudo_log_likelihood"])


def test_rbm_sample_matches_its_exact_marginal():
    """A 4-visible RBM's samples against p(v) by enumeration (chi-square-sized tolerance)."""
    from boltzkit.estimate import exact_log_partition
    from boltzkit.models import RBM

    model = RBM(4, 3, generator=torch.Generator().manual_seed(1), init_std=1.0).double()
    n = 20_000
    v = model.sample(n, 20, generator=torch.Generator().manual_seed(2))
    assert v.shape == (n, 4) and set(v.unique().tolist()) <= {0.0, 1.0}
    states = torch.tensor([[(i >> k) & 1 for k in range(4)] for i in range(16)], dtype=torch.float64)
    p = torch.exp(-model.free_energy(states) - exact_log_partition(model))
    codes = (v * torch.tensor([1, 2, 4, 8], dtype=v.dtype)).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / n
    assert torch.allclose(freq, p.detach(), atol=4 * (0.25 / n) ** 0.5)  # 4 binomial sd at worst


def test_bm_sample_draws_visible_states():
    config = load_config("rbm-digits", {**FAST, "model": {"type": "bm", "n_hidden": 2},
                                        "data.binarize": "threshold", "train.epochs": 1})
    model = fit(config).model
    v = model.sample(5, 3, generator=torch.Generator().manual_seed(0))
    assert v.shape == (5, 64) and set(v.unique().tolist()) <= {0.0, 1.0}


def test_dataset_repr_shows_sizes_not_tensors():
    text = repr(load_dataset(load_config("rbm-digits").data))
    assert text.startswith("Dataset('digits', train 1350x64, validation 150x64, test 297x64")
    assert "tensor" not in text and len(text) < 300


def test_arrays_given_in_python_are_recorded_and_evaluate_asks_for_them(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((300, 12)) < 0.3).astype(np.float32)
    config = load_config("rbm-digits", {**FAST, "data.binarize": "none", "data.validation": 0.2})
    fitted = fit(config, x)
    assert fitted.config.data.name == "memory" and config.data.name == "digits"
    assert len(fitted.task.data.train) == 240 and fitted.model.n_visible == 12
    train(config, tmp_path / "run", dataset=x, progress=False)
    assert boltzkit.load(tmp_path / "run").config.data.name == "memory"
    with pytest.raises(DataError, match="trained on arrays given in Python"):
        evaluate_run(tmp_path / "run", "validation", progress=False)
    results = evaluate_run(tmp_path / "run", "train", data=x, progress=False, ais_runs=8, ais_betas=50)
    assert results["examples"] == 240 and np.isfinite(results["log_likelihood_exact"])
    np.savez(tmp_path / "x.npz", x=x)
    from_file = evaluate_run(tmp_path / "run", "train", data_file=str(tmp_path / "x.npz"),
                             progress=False, ais_runs=8, ais_betas=50)
    assert from_file["log_likelihood_exact"] == pytest.approx(results["log_likelihood_exact"])


def test_labels_must_match_examples():
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(DataError, match="3 training labels for 10 examples"):
        fit(load_config("rbm-digits", FAST), (x, np.zeros(3, dtype=int)))


def test_bm_samples_match_its_exact_marginal():
    """A 3-visible, 1-hidden BM with strong couplings: visible frequencies against p(v) by
    enumerating all 16 joint states (4 binomial standard deviations at worst)."""
    from boltzkit.models import BoltzmannMachine

    model = BoltzmannMachine(3, 1, init_std=1.0, generator=torch.Generator().manual_seed(3)).double()
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.5, -1.0, 0.2, 0.8], dtype=torch.float64))
    joint = torch.tensor([[(i >> k) & 1 for k in range(4)] for i in range(16)], dtype=torch.float64)
    weights = torch.exp(-model.energy(joint)).detach()
    p_visible = torch.zeros(8, dtype=torch.float64)
    for state, weight in zip(joint, weights, strict=True):
        p_visible[int(state[0] + 2 * state[1] + 4 * state[2])] += weight
    p_visible /= p_visible.sum()
    n = 20_000
    v = model.sample(n, 20, generator=torch.Generator().manual_seed(4))
    codes = (v * torch.tensor([1, 2, 4], dtype=v.dtype)).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / n
    assert torch.allclose(freq, p_visible, atol=4 * (0.25 / n) ** 0.5)
