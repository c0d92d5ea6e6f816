"""The checks every model family passes, kept as one registry: a new family added to
FAMILIES gets them all (see ../shared/DESIGN.md, "Tests that every model family passes")."""

import pytest
import torch

from boltzkit.estimate.ais import ais_base, ais_log_partition, reverse_ais_log_likelihood
from boltzkit.estimate.exact import exact_log_likelihood, exact_log_partition
from boltzkit.estimate.exact_bm import bm_log_likelihood, bm_log_partition
from boltzkit.models import RBM, BoltzmannMachine
from helpers import all_binary


def _randomize(model, scale, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.3 if "log_sigma" in name else scale))
    return model


def _centered():
    model = _randomize(RBM(6, 4, centered=True).double(), 0.8, 1)
    with torch.no_grad():
        model.visible_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(2))
        model.hidden_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(3))
    return model


FAMILIES = {
    "bernoulli rbm": lambda: _randomize(RBM(6, 4).double(), 0.8, 0),
    "centered rbm": _centered,
    "gaussian rbm": lambda: _randomize(RBM(3, 4, visible="gaussian").double(), 0.5, 4),
    "categorical rbm": lambda: _randomize(RBM(6, 4, visible="categorical", visible_options={"k": 3}).double(), 0.8, 5),
    "softmax-hidden rbm": lambda: _randomize(RBM(5, 6, hidden="categorical", hidden_options={"k": 3}).double(), 0.8, 6),
    "boltzmann machine": lambda: _randomize(BoltzmannMachine(4, 3).double(), 0.8, 7),
}
RBMS = [name for name in FAMILIES if name.endswith("rbm")]


def _hidden_states(model):
    return model.hidden.all_states(0, int(model.hidden.configurations))


def _visible_batch(model, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, BoltzmannMachine):
        return (torch.rand(n, model.n_visible, generator=g) < 0.5).double()
    return model.visible.sample(torch.zeros(n, model.n_visible, dtype=torch.float64), g)


@pytest.mark.parametrize("name", FAMILIES)
def test_free_energy_is_minus_log_sum_over_hidden_states(name):
    model = FAMILIES[name]()
    v = _visible_batch(model)
    if isinstance(model, BoltzmannMachine):
        log_z = bm_log_partition(model)
        h = all_binary(model.n_hidden)
        joint = torch.cat([v[:, None].expand(-1, len(h), -1), h[None].expand(len(v), -1, -1)], 2)
        expected = torch.logsumexp(-model.energy(joint), 1) - log_z
        assert torch.allclose(bm_log_likelihood(model, v, log_z), expected, atol=1e-10)
        return
    h = _hidden_states(model)
    energies = torch.stack([model.energy(v, hh.expand(len(v), -1)) for hh in h], 1)
    assert torch.allclose(model.free_energy(v), -torch.logsumexp(-energies, 1), atol=1e-10)


@pytest.mark.parametrize("name", RBMS)
def test_autograd_gradient_of_free_energy_is_the_posterior_statistic(name):
    """dF(v)/dtheta = E_{h|v}[dE(v, h)/dtheta] for every parameter, by enumeration."""
    model = FAMILIES[name]()
    v = _visible_batch(model, n=1)
    model.zero_grad()
    model.free_energy(v).sum().backward()
    autograd = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    h = _hidden_states(model)
    posterior = torch.softmax(-torch.stack([model.energy(v, hh[None])[0] for hh in h]).detach(), 0)
    expected = {k: torch.zeros_like(g) for k, g in autograd.items()}
    for weight, hh in zip(posterior, h, strict=True):
        model.zero_grad()
        model.energy(v, hh[None]).sum().backward()
        for k, p in model.named_parameters():
            if k in expected:
                expected[k] += weight * p.grad
    for k in autograd:
        assert torch.allclose(autograd[k], expected[k], atol=1e-10), k


@pytest.mark.parametrize("name", RBMS)
def test_sample_frequencies_match_the_conditionals(name):
    model = FAMILIES[name]()
    g = torch.Generator().manual_seed(1)
    h = model.hidden.sample(torch.zeros(1, model.n_hidden, dtype=torch.float64), g).expand(80_000, -1)
    v = model.sample_visible(h, g)
    mean = model.visible_mean(h[:1])[0]
    tolerance = 5 * (v.std(0) / 80_000**0.5) + 1e-3
    assert bool(((v.mean(0) - mean).abs() < tolerance).all())
    hidden = model.sample_hidden(v[:80_000:1], g)
    assert torch.allclose(hidden.mean(0), model.hidden_mean(v).mean(0), atol=0.01)


@pytest.mark.parametrize("name", RBMS)
def test_exact_log_z_agrees_with_ais(name):
    """Forward AIS (base rate for binary units, decoupled layers otherwise; centered models
    through their plain equivalent) within 0.1 nats of the exact log Z."""
    model = FAMILIES[name]().float()
    data = _visible_batch(model, n=200).float()
    ais = ais_log_partition(model, ais_base(model, data), betas=3000, runs=50)
    assert abs(ais.log_z - exact_log_partition(model)) < 0.1


@pytest.mark.parametrize("name", RBMS)
def test_reverse_ais_is_conservative_and_close(name):
    """Reverse AIS on model samples: below the exact log-likelihood within its error, and
    within 0.1 nats of it on average (the annealing path is short for these models)."""
    model = FAMILIES[name]().float()
    data = _visible_batch(model, n=200, seed=1).float()
    reverse = reverse_ais_log_likelihood(model, data[:40], ais_base(model, data), betas=1000, runs=4,
                                         generator=torch.Generator().manual_seed(2))
    exact = exact_log_likelihood(model, data[:40]).mean().item()
    assert reverse.mean <= exact + 3 * reverse.standard_error
    assert abs(reverse.mean - exact) < 0.1


@pytest.mark.parametrize("name", FAMILIES)
def test_state_dict_round_trip_gives_the_same_next_sample(name):
    model = FAMILIES[name]()
    clone = FAMILIES[name]()
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)  # make sure the load really overwrites
    clone.load_state_dict(model.state_dict())
    v = _visible_batch(model)
    if isinstance(model, BoltzmannMachine):
        s = torch.cat([v, torch.zeros(len(v), model.n_hidden, dtype=v.dtype)], 1)
        a = model.gibbs(s, range(model.n_units), 2, torch.Generator().manual_seed(5))
        b = clone.gibbs(s, range(model.n_units), 2, torch.Generator().manual_seed(5))
    else:
        a = model.sample_hidden(v, torch.Generator().manual_seed(5))
        b = clone.sample_hidden(v, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("build, message", [
    (lambda: RBM(0, 3), "Invalid number of units: 0"),
    (lambda: RBM(5, 3, visible="categorical", visible_options={"k": 2}), "5 units do not split into groups of k=2"),
    (lambda: RBM(4, 3, visible="poisson"), "Unknown unit family 'poisson'"),
    (lambda: RBM(4, 3, init_std=-1.0), "Invalid init_std: -1.0"),
    (lambda: BoltzmannMachine(0, 2), "Invalid sizes: 0 visible"),
    (lambda: BoltzmannMachine(2, 2, torch.eye(4, dtype=torch.bool)), "mask must be a symmetric"),
])
def test_invalid_constructions(build, message):
    with pytest.raises(ValueError, match=message):
        build()
