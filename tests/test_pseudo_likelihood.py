import math

import pytest
import torch

from boltzkit.estimate import pseudo_log_likelihood, reconstruction_error
from helpers import all_binary, random_rbm


def _brute_pl(model, v):
    """sum_i log p(v_i | v_-i) from free energies of v and v with unit i flipped."""
    total = torch.zeros(len(v), dtype=v.dtype)
    f = model.free_energy(v)
    for i in range(v.shape[1]):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        f_flip = model.free_energy(flipped)
        total += torch.log(torch.exp(-f) / (torch.exp(-f) + torch.exp(-f_flip)))
    return total


def test_pseudo_likelihood_matches_brute_force():
    model = random_rbm(7, 5, scale=0.8)
    v = all_binary(7)
    assert torch.allclose(pseudo_log_likelihood(model, v), _brute_pl(model, v), atol=1e-9)


def test_pseudo_likelihood_is_chunked_consistently(monkeypatch):
    import boltzkit.estimate.pseudo_likelihood as module

    model = random_rbm(9, 6)
    v = all_binary(9)[::7]
    full = pseudo_log_likelihood(model, v)
    monkeypatch.setattr(module, "_CHUNK_ELEMENTS", 1)  # one unit per chunk
    assert torch.allclose(pseudo_log_likelihood(model, v), full, atol=1e-12)


def test_stochastic_pseudo_likelihood_is_unbiased():
    model = random_rbm(8, 5, scale=0.6)
    v = all_binary(8)[:40]
    exact = pseudo_log_likelihood(model, v).mean()
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([pseudo_log_likelihood(model, v, n_units=1, generator=g).mean()
                         for _ in range(400)])
    se = draws.std() / len(draws) ** 0.5
    assert abs(draws.mean() - exact) < 4 * se
    assert draws.std() > 0  # a random estimator, not the exact sum in disguise
    # drawing all D units without replacement and scaling by D / D is the exact sum
    every = pseudo_log_likelihood(model, v, n_units=8, generator=g)
    assert torch.allclose(every, pseudo_log_likelihood(model, v), atol=1e-12)
    with pytest.raises(ValueError, match="Invalid n_units: 9 \\(expected 1..8\\)"):
        pseudo_log_likelihood(model, v, n_units=9, generator=g)


def test_pseudo_likelihood_of_a_uniform_model_is_d_log_half():
    model = random_rbm(6, 3, scale=0.0)
    v = all_binary(6)
    expected = torch.full((len(v),), 6 * math.log(0.5), dtype=torch.float64)
    assert torch.allclose(pseudo_log_likelihood(model, v), expected)


def test_reconstruction_error_definition():
    """Squared error of the mean-field reconstruction sigmoid(b + sigmoid(c + v W) W^T)."""
    model = random_rbm(5, 3)
    v = all_binary(5)
    W, b, c = model.weight, model.visible.bias, model.hidden.bias
    recon = torch.sigmoid(b + torch.sigmoid(c + v @ W) @ W.T)
    assert torch.allclose(reconstruction_error(model, v), ((v - recon) ** 2).sum(1), atol=1e-12)
