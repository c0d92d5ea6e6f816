import math

import pytest
import torch

from boltzkit.units import BernoulliUnits, bernoulli, make_units
from helpers import all_binary


def test_bernoulli_log_partition_matches_enumeration():
    units = BernoulliUnits(4).double()
    with torch.no_grad():
        units.bias.copy_(torch.tensor([0.3, -1.2, 2.0, 0.0], dtype=torch.float64))
    a = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xs = all_binary(4)
    # log sum_x exp(-self_energy(x) + x . a) over all 16 states, per row of a
    terms = -units.self_energy(xs)[None, :] + a @ xs.T
    assert torch.allclose(units.log_partition(a), torch.logsumexp(terms, dim=1))


def test_bernoulli_mean_is_conditional_probability():
    """p(x_i = 1 | a) = sigmoid(beta (b_i + a_i)), with a bias that matters."""
    units = BernoulliUnits(3).double()
    with torch.no_grad():
        units.bias.copy_(torch.tensor([0.5, -1.0, 3.0], dtype=torch.float64))
    a = torch.tensor([[0.0, 1.0, -2.0]], dtype=torch.float64)  # b + a = (0.5, 0, 1)
    e = math.e
    expected = torch.tensor([[1 / (1 + e**-0.5), 0.5, 1 / (1 + e**-1)]], dtype=torch.float64)
    assert torch.allclose(units.mean(a), expected, atol=1e-15)
    tempered = torch.tensor([[1 / (1 + e**-0.25), 0.5, 1 / (1 + e**-0.5)]], dtype=torch.float64)
    assert torch.allclose(units.mean(a, beta=0.5), tempered, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bernoulli_sampling_frequencies(dtype):
    p = torch.tensor([0.0, 0.001, 0.2, 0.5, 0.9, 1.0], dtype=dtype)
    n = 200_000
    samples = bernoulli(p.expand(n, -1), torch.Generator().manual_seed(3))
    freq = samples.mean(dim=0)
    tol = 5 * torch.sqrt(p * (1 - p) / n) + 1e-6  # 5 standard errors
    assert torch.all((freq - p).abs() <= tol), (freq, p)
    assert samples.dtype == dtype
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert freq[0] == 0 and freq[-1] == 1  # the endpoints are exact


def test_bernoulli_same_generator_state_same_samples():
    p = torch.full((10, 10), 0.5)
    g = torch.Generator().manual_seed(7)
    a, a_next = bernoulli(p, g), bernoulli(p, g)
    b = bernoulli(p, torch.Generator().manual_seed(7))
    c = bernoulli(p, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)  # the generator's state decides the draw...
    assert not torch.equal(a, a_next) and not torch.equal(a, c)  # ...and nothing else


def test_init_bias_from_mean_gives_log_odds_and_clips():
    units = BernoulliUnits(3)
    units.init_bias_from_mean(torch.tensor([0.5, 0.0, 0.9]))
    assert units.bias[0].item() == pytest.approx(0.0, abs=1e-6)
    assert units.bias[1].item() == pytest.approx(math.log(1e-3 / (1 - 1e-3)), rel=1e-4)
    assert units.bias[2].item() == pytest.approx(math.log(9.0), rel=1e-4)


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="Unknown unit family 'gauss'; accepted: bernoulli"):
        make_units("gauss", 3)
    with pytest.raises(ValueError, match="Invalid number of units: 0"):
        make_units("bernoulli", 0)


def test_a_layer_too_large_to_count_has_infinitely_many_states():
    """2^2000 overflows a float: a 2000-unit layer (a DBN's top) must count as never enumerable."""
    from boltzkit.estimate.exact import enumerable
    from boltzkit.models import RBM

    assert BernoulliUnits(2000).configurations == math.inf
    assert not enumerable(RBM(1500, 2000), 20)
