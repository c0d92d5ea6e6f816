"""Unit families, centering, parallel tempering and general Boltzmann machines."""

import math

import pytest
import torch

from boltzkit.estimate.exact import exact_log_likelihood, exact_log_partition
from boltzkit.estimate.pseudo_likelihood import pseudo_log_likelihood
from boltzkit.models import RBM, BoltzmannMachine, coupling_mask
from boltzkit.sampling import gibbs_sweeps
from boltzkit.units import CategoricalUnits, GaussianUnits, make_units
from helpers import all_binary, brute_free_energy


def randomize(model, scale=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def gaussian_rbm(d=2, h=3, seed=0):
    model = randomize(RBM(d, h, visible="gaussian").double(), 0.5, seed)
    with torch.no_grad():
        model.visible.log_sigma.copy_(torch.linspace(-0.3, 0.3, d, dtype=torch.float64))
    return model


def categorical_rbm(groups=3, k=3, h=3, seed=0):
    return randomize(RBM(groups * k, h, visible="categorical", visible_options={"k": k}).double(), 0.8, seed)


# --------------------------------------------------------------------------- families


def test_categorical_log_partition_and_sampling():
    units = CategoricalUnits(6, k=3).double()
    with torch.no_grad():
        units.bias.copy_(torch.tensor([0.2, -1.0, 0.5, 1.0, 0.0, -0.5], dtype=torch.float64))
    a = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    states = units.all_states(0, 9)  # every one-hot configuration of the two groups
    terms = -units.self_energy(states)[None] + a @ states.T
    assert torch.allclose(units.log_partition(a), torch.logsumexp(terms, 1))
    p = units.mean(a[:1])
    assert torch.allclose(p.reshape(2, 3).sum(1), torch.ones(2, dtype=torch.float64))
    draws = units.sample(a[:1].expand(60_000, -1), torch.Generator().manual_seed(1))
    assert bool((draws.reshape(-1, 2, 3).sum(-1) == 1).all())  # one-hot per group
    freq = draws.mean(0)
    assert (freq - p[0]).abs().max() < 5 * math.sqrt(0.25 / 60_000)


def test_gaussian_units_moments_and_tempering():
    units = GaussianUnits(3).double()
    with torch.no_grad():
        units.bias.copy_(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
        units.log_sigma.copy_(torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)))
    a = torch.tensor([[1.0, 0.0, -0.5]], dtype=torch.float64).expand(100_000, -1)
    g = torch.Generator().manual_seed(0)
    x = units.sample(a, g)
    expected_mean = units.bias + units.sigma * a[0]
    assert torch.allclose(x.mean(0), expected_mean, atol=0.03)
    assert torch.allclose(x.std(0), units.sigma, rtol=0.02)
    hot = units.sample(a, g, beta=0.25)  # p_beta ~ exp(-beta E): variance sigma^2 / beta
    assert torch.allclose(hot.std(0), units.sigma * 2, rtol=0.02)


def test_gaussian_log_partition_matches_numerical_integration():
    units = GaussianUnits(1).double()
    with torch.no_grad():
        units.bias.fill_(0.7)
        units.log_sigma.fill_(math.log(1.3))
    a = torch.tensor([[0.4]], dtype=torch.float64)
    x = torch.linspace(-20, 20, 400_001, dtype=torch.float64)[:, None]
    integrand = torch.exp(-units.self_energy(x) + units.scaled(x)[:, 0] * a[0, 0])
    numeric = torch.log(torch.trapezoid(integrand, x[:, 0]))
    assert units.log_partition(a).item() == pytest.approx(numeric.item(), abs=1e-8)


@pytest.mark.parametrize("make", [gaussian_rbm, categorical_rbm])
def test_free_energy_matches_brute_force_over_hidden_states(make):
    model = make()
    v = model.visible.sample(torch.zeros(7, model.n_visible, dtype=torch.float64),
                             torch.Generator().manual_seed(3))
    assert torch.allclose(model.free_energy(v), brute_free_energy(model, v), atol=1e-10)


def test_categorical_exact_log_z_enumerates_visible_states():
    model = categorical_rbm(groups=3, k=3, h=6)  # 27 visible vs 64 hidden states
    v = model.visible.all_states(0, 27)
    h = all_binary(6)
    joint = torch.stack([model.energy(v, hh.expand(27, -1)) for hh in h])
    assert exact_log_partition(model) == pytest.approx(torch.logsumexp(-joint.flatten(), 0).item(), abs=1e-10)
    assert torch.logsumexp(exact_log_likelihood(model, v), 0).item() == pytest.approx(0.0, abs=1e-10)


def test_gaussian_exact_log_z_is_a_normalized_density():
    model = gaussian_rbm(d=2, h=3)
    grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    v = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    density = torch.exp(exact_log_likelihood(model, v)).reshape(801, 801)
    mass = torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid)
    assert mass.item() == pytest.approx(1.0, abs=1e-6)


def test_categorical_pseudo_likelihood_matches_brute_force():
    model = categorical_rbm(groups=3, k=3, h=4)
    v = model.visible.all_states(0, 27)
    f = model.free_energy(v)
    groups = v.reshape(27, 3, 3)
    expected = torch.zeros(27, dtype=torch.float64)
    for g in range(3):
        alternatives = []
        for k in range(3):
            w = groups.clone()
            w[:, g] = 0
            w[:, g, k] = 1
            alternatives.append(-model.free_energy(w.reshape(27, 9)))
        expected += -f - torch.logsumexp(torch.stack(alternatives, 1), 1)
    assert torch.allclose(pseudo_log_likelihood(model, v), expected, atol=1e-10)


def test_invalid_family_options():
    with pytest.raises(ValueError, match="10 units do not split into groups of k=3"):
        make_units("categorical", 10, k=3)


# --------------------------------------------------------------------------- centering


def centered_pair(seed=0):
    plain = randomize(RBM(6, 4).double(), 0.8, seed)
    centered = RBM(6, 4, centered=True).double()
    centered.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        centered.visible_offset.copy_(torch.tensor([0.1, 0.5, 0.9, 0.3, 0.6, 0.2], dtype=torch.float64))
        centered.hidden_offset.copy_(torch.tensor([0.4, 0.5, 0.6, 0.7], dtype=torch.float64))
    return plain, centered


def test_offset_updates_leave_the_model_distribution_unchanged():
    _, model = centered_pair()
    v = all_binary(6)
    before = model.free_energy(v)
    log_z = exact_log_partition(model)
    hidden_before = model.hidden_mean(v)
    data = v[torch.randperm(64, generator=torch.Generator().manual_seed(0))[:20]]
    model.update_offsets(data, rate=0.3)
    after = model.free_energy(v)
    assert not torch.allclose(before, after)  # offsets and biases moved...
    assert torch.allclose(before - before[0], after - after[0], atol=1e-10)  # ...the distribution did not
    assert torch.allclose(exact_log_likelihood(model, v), -before - log_z, atol=1e-10)
    assert torch.allclose(model.hidden_mean(v), hidden_before, atol=1e-12)


def test_centered_free_energy_and_gradient():
    plain, centered = centered_pair(1)
    v = all_binary(6)
    assert torch.allclose(centered.free_energy(v), brute_free_energy(centered, v), atol=1e-10)
    # the centered gradient: dF/dW = -(v - mu)^T (E[h|v] - lambda)
    centered.zero_grad()
    centered.free_energy(v).sum().backward()
    p = centered.hidden_mean(v)
    expected = -(v - centered.visible_offset).T @ (p - centered.hidden_offset)
    assert torch.allclose(centered.weight.grad, expected, atol=1e-10)
    assert torch.allclose(pseudo_log_likelihood(centered, v[:10]),
                          _pl_brute(centered, v[:10]), atol=1e-10)


def test_without_offsets_is_the_same_distribution():
    """The plain copy of a centered model: free energies differ by one constant, the same
    conditionals, offsets zero; the centered model itself is left untouched."""
    _, centered = centered_pair(2)
    before = {k: v.clone() for k, v in centered.state_dict().items()}
    plain = centered.without_offsets()
    v = all_binary(6)
    gap = centered.free_energy(v) - plain.free_energy(v)
    assert torch.allclose(gap, gap[0].expand_as(gap), atol=1e-10)
    assert not plain.centered and not plain.hidden_offset.any() and not plain.visible_offset.any()
    assert torch.allclose(plain.hidden_mean(v), centered.hidden_mean(v), atol=1e-12)
    h = all_binary(4)
    assert torch.allclose(plain.visible_mean(h), centered.visible_mean(h), atol=1e-12)
    assert all(torch.equal(before[k], t) for k, t in centered.state_dict().items())


@pytest.mark.parametrize("build", [lambda: centered_pair(3)[1],
                                   lambda: randomize(RBM(5, 4, visible="gaussian").double(), 0.5, seed=5)])
def test_hidden_affine_reproduces_the_hidden_means(build):
    """What a pretrained feed-forward layer computes: sigmoid(v A + c) = E[h | v]."""
    model = build()
    v = model.visible.sample(torch.zeros(8, model.n_visible, dtype=torch.float64), torch.Generator().manual_seed(0))
    weight, bias = model.hidden_affine()
    assert torch.allclose(torch.sigmoid(v @ weight + bias), model.hidden_mean(v), atol=1e-12)


def _pl_brute(model, v):
    total = torch.zeros(len(v), dtype=v.dtype)
    for i in range(v.shape[1]):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        total += -torch.nn.functional.softplus(model.free_energy(v) - model.free_energy(flipped))
    return total


# --------------------------------------------------------------------------- tempering


def test_parallel_tempering_swap_rates_and_exact_marginal():
    from boltzkit.sampling.tempering import ParallelTempering, temperature_ladder

    model = randomize(RBM(5, 4).double(), 1.5, seed=4)  # strong couplings: slow plain Gibbs
    betas = temperature_ladder(6, 0.2)
    assert betas[0] == 1 and betas[-1] == pytest.approx(0.2)
    sampler = ParallelTempering(betas, 4000, torch.Generator().manual_seed(0))
    sampler.start(model, all_binary(5))
    counts = torch.zeros(32, dtype=torch.float64)
    codes = 2 ** torch.arange(4, -1, -1, dtype=torch.float64)
    for step in range(60):
        v = sampler.step(model)
        if step >= 20:
            counts += torch.bincount((v @ codes).long(), minlength=32).double()
    rates = sampler.acceptance_rates()
    assert bool(((rates >= 0) & (rates <= 1)).all()) and bool((rates > 0).all())
    exact = torch.exp(exact_log_likelihood(model, all_binary(5)))
    assert (counts / counts.sum() - exact).abs().max() < 0.01


def test_tempering_state_round_trip_and_errors():
    from boltzkit.sampling.tempering import ParallelTempering, temperature_ladder

    model = randomize(RBM(5, 4).double(), 1.0)
    a = ParallelTempering(temperature_ladder(3, 0.5), 8, torch.Generator().manual_seed(0))
    a.start(model, all_binary(5))
    a.step(model, 2)
    b = ParallelTempering(temperature_ladder(3, 0.5), 8, torch.Generator().manual_seed(9))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.step(model), b.step(model))
    with pytest.raises(ValueError, match="must decrease strictly from 1"):
        ParallelTempering(torch.tensor([0.5, 1.0]), 4, torch.Generator())
    with pytest.raises(ValueError, match="Invalid min_beta: 1.5"):
        temperature_ladder(4, 1.5)


# --------------------------------------------------------------------------- general BM


def test_bipartite_boltzmann_machine_is_an_rbm():
    rbm = randomize(RBM(4, 3).double(), 0.9, seed=5)
    bm = BoltzmannMachine(4, 3, coupling_mask(4, 3, "bipartite")).double()
    with torch.no_grad():
        bm.weight.zero_()
        bm.weight[:4, 4:] = rbm.weight
        bm.bias.copy_(torch.cat([rbm.visible.bias, rbm.hidden.bias]))
    s = all_binary(7)
    assert torch.allclose(bm.energy(s), rbm.energy(s[:, :4], s[:, 4:]), atol=1e-12)
    # same surrogate loss on the same samples gives the same gradients
    data, model_samples = s[::5], s[3::7]
    rbm_loss = rbm.energy(data[:, :4], data[:, 4:]).mean() - rbm.energy(model_samples[:, :4], model_samples[:, 4:]).mean()
    bm_loss = bm.energy(data).mean() - bm.energy(model_samples).mean()
    rbm_loss.backward()
    bm_loss.backward()
    assert torch.allclose(bm.weight.grad[:4, 4:], rbm.weight.grad, atol=1e-12)
    assert torch.allclose(bm.bias.grad, torch.cat([rbm.visible.bias.grad, rbm.hidden.bias.grad]))
    from boltzkit.estimate.exact_bm import bm_log_likelihood, bm_log_partition

    assert bm_log_partition(bm) == pytest.approx(exact_log_partition(rbm), abs=1e-10)
    v = all_binary(4)
    assert torch.allclose(bm_log_likelihood(bm, v), exact_log_likelihood(rbm, v), atol=1e-10)


def test_full_bm_masks_and_gibbs_marginal():
    mask = coupling_mask(3, 2)
    assert bool(mask.diagonal().logical_not().all()) and torch.equal(mask, mask.T)
    bm = randomize(BoltzmannMachine(3, 2).double(), 0.8, seed=2)
    from boltzkit.estimate.exact_bm import bm_log_partition

    states = all_binary(5)
    exact = torch.softmax(-bm.energy(states), 0)
    chains = gibbs_sweeps(bm, torch.zeros(20_000, 5, dtype=torch.float64), range(5), 30,
                          torch.Generator().manual_seed(0))
    codes = (chains * 2 ** torch.arange(4, -1, -1, dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(codes, minlength=32).double() / len(chains)
    assert (freq - exact).abs().max() < 0.012
    assert bm_log_partition(bm) == pytest.approx(torch.logsumexp(-bm.energy(states), 0).item())
    with pytest.raises(ValueError, match="mask must be a symmetric"):
        BoltzmannMachine(3, 2, torch.ones(5, 5, dtype=torch.bool))


def test_training_a_tiny_bm_raises_its_exact_likelihood(tmp_path):
    import numpy as np

    from boltzkit.config import load_config
    from boltzkit.train import train

    rng = np.random.default_rng(0)
    prototypes = np.array([[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]])
    x = prototypes[rng.integers(0, 2, 400)]
    x = np.abs(x - (rng.random(x.shape) < 0.05)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    for positive in ("meanfield", "gibbs"):
        config = load_config(None, [
            "model={type: bm}", "model.n_hidden=3", "data.name=npz", f"data.path={tmp_path / 'd.npz'}",
            "train.epochs=15", "train.batch_size=20", "train.k=2", f"train.positive={positive}",
            "train.optimizer={name: sgd, lr: 0.05, momentum: 0.5}", "train.schedule={name: constant}",
            "data.validation=0.2"])
        history = train(config, tmp_path / positive, progress=False).history
        first, last = history[0]["val_log_likelihood"], max(h["val_log_likelihood"] for h in history[-5:])
        assert last > first + 0.5, (positive, first, last)
        assert last > 8 * math.log(0.5) + 1.5  # clearly better than the uniform model
