import pytest
import torch

from boltzkit.models import RBM
from boltzkit.sampling import sample_chains
from helpers import all_binary, brute_free_energy, random_rbm


def test_free_energy_matches_enumeration_over_hidden_states():
    model = random_rbm(6, 5, scale=1.0)
    v = all_binary(6)
    assert torch.allclose(model.free_energy(v), brute_free_energy(model, v), atol=1e-10)


def test_free_energy_accepts_precomputed_hidden_input():
    model = random_rbm(5, 4)
    v = all_binary(5)
    assert torch.equal(model.free_energy(v), model.free_energy(v, model.hidden_input(v)))
    # the input passed is the one used: F = -b.v - sum_j softplus(c_j + a_j) for any given a
    a = torch.randn(len(v), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = -(v @ model.visible.bias) - torch.nn.functional.softplus(a + model.hidden.bias).sum(1)
    assert torch.allclose(model.free_energy(v, a), expected, atol=1e-12)


def test_energy_of_a_known_state():
    model = random_rbm(3, 2)
    v = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    h = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    W, b, c = model.weight, model.visible.bias, model.hidden.bias
    expected = -(v @ b) - (h @ c) - (v @ W @ h.T).squeeze(1)
    assert torch.allclose(model.energy(v, h), expected)


def test_conditionals_match_the_joint_distribution():
    """p(h_j = 1 | v) from the model equals the ratio of joint probabilities."""
    model = random_rbm(4, 3)
    vs, hs = all_binary(4), all_binary(3)
    for v in vs:
        energies = torch.stack([model.energy(v[None], h[None])[0] for h in hs])
        p_h = torch.softmax(-energies, dim=0)  # p(h | v) over all hidden states
        marginal = (p_h[:, None] * hs).sum(dim=0)
        assert torch.allclose(model.hidden_mean(v[None])[0], marginal, atol=1e-10)
    for h in hs:
        energies = torch.stack([model.energy(v[None], h[None])[0] for v in vs])
        p_v = torch.softmax(-energies, dim=0)
        marginal = (p_v[:, None] * vs).sum(dim=0)
        assert torch.allclose(model.visible_mean(h[None])[0], marginal, atol=1e-10)


def test_sampled_unit_frequencies_match_conditionals():
    model = random_rbm(5, 4, scale=0.7)
    g = torch.Generator().manual_seed(0)
    v = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]], dtype=torch.float64).expand(100_000, -1)
    h = model.sample_hidden(v, g)
    p = model.hidden_mean(v[:1])[0]
    se = torch.sqrt(p * (1 - p) / len(v))
    assert torch.all((h.mean(0) - p).abs() < 5 * se)
    h0 = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64).expand(100_000, -1)
    vs = model.sample_visible(h0, g)
    p = model.visible_mean(h0[:1])[0]
    se = torch.sqrt(p * (1 - p) / len(h0))
    assert torch.all((vs.mean(0) - p).abs() < 5 * se)


def test_gibbs_chains_reach_the_exact_marginal():
    """Long Gibbs chains on a tiny RBM visit visible states with probability exp(-F)/Z."""
    model = random_rbm(4, 3, scale=0.8, seed=2)
    vs = all_binary(4)
    exact = torch.softmax(-model.free_energy(vs), dim=0)
    g = torch.Generator().manual_seed(1)
    v, _ = sample_chains(model, torch.zeros(20_000, 4, dtype=torch.float64), 30, g)
    codes = (v * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / len(v)
    se = torch.sqrt(exact * (1 - exact) / len(v))
    assert torch.all((freq - exact).abs() < 5 * se)  # every state within 5 standard errors


def test_init_is_seeded_and_scaled():
    a = RBM(30, 20, init_std=0.05, generator=torch.Generator().manual_seed(4))
    b = RBM(30, 20, init_std=0.05, generator=torch.Generator().manual_seed(4))
    c = RBM(30, 20, init_std=0.05, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    n = a.weight.numel()  # 5 standard errors of a normal sample's s.d. and mean
    assert a.weight.std().item() == pytest.approx(0.05, rel=5 / (2 * n) ** 0.5)
    assert a.weight.mean().abs().item() < 5 * 0.05 / n**0.5
    assert torch.all(a.hidden.bias == 0) and torch.all(a.visible.bias == 0)


def test_init_from_data_sets_visible_log_odds():
    model = RBM(3, 2)
    model.init_from_data(torch.tensor([0.25, 0.5, 1.0]))
    expected = torch.logit(torch.tensor([0.25, 0.5, 1 - 1e-3]))
    assert torch.allclose(model.visible.bias, expected, atol=1e-5)


def test_invalid_construction():
    with pytest.raises(ValueError, match="Invalid init_std: -1"):
        RBM(3, 2, init_std=-1)
    with pytest.raises(ValueError, match="Invalid number of units: 0"):
        RBM(3, 0)
