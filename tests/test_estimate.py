import math

import pytest
import torch

from boltzkit.estimate.ais import (
    _ais_result,
    ais_log_partition,
    base_rate_bias,
    default_betas,
    reverse_ais_log_likelihood,
)
from boltzkit.estimate.evaluate import evaluate_rbm
from boltzkit.estimate.exact import exact_log_likelihood, exact_log_partition
from boltzkit.estimate.multipath import multipath_log_partition
from boltzkit.models import RBM
from boltzkit.seeding import make_generator
from helpers import all_binary, brute_log_z, random_rbm


def rbm_784x15(seed=0):
    """A random 784x15 RBM with MNIST-like biases and non-trivial couplings."""
    g = torch.Generator().manual_seed(seed)
    model = RBM(784, 15, generator=g)
    with torch.no_grad():
        model.weight.normal_(0, 0.1, generator=g)
        model.visible.bias.normal_(-1.0, 0.5, generator=g)
        model.hidden.bias.normal_(0.0, 0.5, generator=g)
    return model


def sparse_data(n, width, p=0.2, seed=1):
    return (torch.rand(n, width, generator=torch.Generator().manual_seed(seed)) < p).float()


def check_spread_from_log_weights(result):
    """The interval and ESS that ``result`` reports, recomputed from its own log-weights:
    ``log Z = log Z_0 + log mean w``, ``log(mean w +- 3 s.e.)`` and ``(sum w)^2 / sum w^2``."""
    log_w = result.log_weights.to(torch.float64)
    assert len(log_w) == result.runs
    top = log_w.max()
    w = torch.exp(log_w - top)
    mean, se = w.mean().item(), w.std(unbiased=True).item() / math.sqrt(len(w))
    offset = result.log_z - math.log(mean)  # log Z_0 (+ shift) + top
    assert result.log_z == pytest.approx(
        result.log_z_base + top.item() + math.log(mean), abs=1e-9)  # uncentered model: no shift
    assert result.log_z_high == pytest.approx(offset + math.log(mean + 3 * se), abs=1e-9)
    assert result.log_z_low == pytest.approx(offset + math.log(mean - 3 * se), abs=1e-9)
    assert result.ess == pytest.approx((w.sum() ** 2 / (w**2).sum()).item(), rel=1e-9)


# --------------------------------------------------------------------------- exact


@pytest.mark.parametrize("shape", [(8, 5), (5, 9)])  # enumerate hidden, then visible
def test_exact_log_z_matches_brute_force(shape):
    model = random_rbm(*shape, scale=1.0)
    assert exact_log_partition(model) == pytest.approx(brute_log_z(model).item(), abs=1e-10)


def test_exact_log_likelihood_is_normalized():
    model = random_rbm(7, 4, scale=1.5)
    log_p = exact_log_likelihood(model, all_binary(7))
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-10)


def test_exact_chunks_agree(monkeypatch):
    import boltzkit.estimate.exact as exact

    model = random_rbm(12, 6)
    full = exact_log_partition(model)
    monkeypatch.setattr(exact, "_CHUNK_ELEMENTS", 64)
    assert exact_log_partition(model) == pytest.approx(full, abs=1e-10)


def test_enumerated_states_are_the_codes():
    from boltzkit.units import BernoulliUnits, CategoricalUnits

    assert BernoulliUnits(3).all_states(0, 8).tolist()[5] == [1.0, 0.0, 1.0]
    states = CategoricalUnits(6, k=3).all_states(0, 9)
    assert states.tolist()[5] == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # 5 = 1*3 + 2
    assert len({tuple(s) for s in states.tolist()}) == 9


def test_exact_refuses_large_models():
    with pytest.raises(ValueError, match="must have at most 2\\^25 states \\(1.07e\\+09 states here"):
        exact_log_partition(RBM(30, 40))


# --------------------------------------------------------------------------- AIS


def test_default_schedule_is_salakhutdinov_murray():
    betas = default_betas()
    assert len(betas) == 14501 and betas[0] == 0 and betas[-1] == 1
    steps = torch.diff(betas)
    assert torch.allclose(steps[:500], torch.full((500,), 1e-3, dtype=torch.float64))
    assert torch.allclose(steps[500:4500], torch.full((4000,), 1e-4, dtype=torch.float64))
    assert torch.allclose(steps[4500:], torch.full((10000,), 1e-5, dtype=torch.float64))
    for n in (2, 3, 50, 1001):
        small = default_betas(n)
        assert len(small) == n and small[0] == 0 and small[-1] == 1
        assert bool((torch.diff(small) > 0).all())
    with pytest.raises(ValueError, match="Invalid number of inverse temperatures: 1"):
        default_betas(1)


def test_base_rate_bias_uses_a_pseudocount():
    data = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    bias = base_rate_bias(data, pseudocount=1.0)
    assert bias[0].item() == pytest.approx(math.log(1 / 4))  # (0+1)/(3+2) = 0.2
    assert bias[1].item() == pytest.approx(math.log(3 / 2))  # (2+1)/(3+2) = 0.6


def test_ais_of_an_uncoupled_model_is_exact():
    """W = 0 and base = the model's own biases: every weight is equal, no variance."""
    model = random_rbm(10, 6, scale=1.0)
    with torch.no_grad():
        model.weight.zero_()
    result = ais_log_partition(model, model.visible.bias.detach(), betas=50, runs=10,
                               generator=torch.Generator().manual_seed(0))
    assert result.log_z == pytest.approx(exact_log_partition(model), abs=1e-9)
    assert result.ess == pytest.approx(10.0)  # identical weights: ESS = runs
    # no spread: the +-3 sigma interval collapses onto the estimate
    assert result.log_z_low == pytest.approx(result.log_z, abs=1e-9)
    assert result.log_z_high == pytest.approx(result.log_z, abs=1e-9)


@pytest.mark.parametrize("weights, low_is_finite", [([2.0, 3.0, 3.0, 4.0], True), ([1.0, 2.0, 3.0, 6.0], False)])
def test_ais_interval_and_ess_by_hand(weights, low_is_finite):
    """Hand-computed spread of four weights (mean 3), shifted far beyond exp's range."""
    log_w = torch.tensor(weights, dtype=torch.float64).log() + 800.0
    result = _ais_result(log_w, log_z_base=0.5, shift=-0.25, n_betas=7, seconds=0.0)
    se = {True: math.sqrt(2 / 3) / 2, False: math.sqrt(14 / 3) / 2}[low_is_finite]  # sample s.d. / sqrt(4)
    offset = 0.5 - 0.25 + 800.0
    assert result.log_z == pytest.approx(offset + math.log(3.0), abs=1e-9)
    assert result.log_z_high == pytest.approx(offset + math.log(3.0 + 3 * se), abs=1e-9)
    if low_is_finite:
        assert result.log_z_low == pytest.approx(offset + math.log(3.0 - 3 * se), abs=1e-9)
    else:  # 3 - 3 s.e. < 0: no finite lower end
        assert result.log_z_low == -math.inf
    expected_ess = sum(weights) ** 2 / sum(w * w for w in weights)  # 144/38 and 144/50
    assert result.ess == pytest.approx(expected_ess, rel=1e-12)
    assert result.runs == 4 and result.n_betas == 7 and result.log_z_base == 0.5


def test_ais_ess_of_one_dominant_weight_is_one():
    log_w = torch.tensor([0.0] + [-60.0] * 99, dtype=torch.float64)
    result = _ais_result(log_w, log_z_base=0.0, shift=0.0, n_betas=2, seconds=0.0)
    assert result.ess == pytest.approx(1.0, abs=1e-20)
    assert result.log_z == pytest.approx(math.log(1 / 100), abs=1e-12)


def test_without_a_generator_ais_draws_from_the_global_generator():
    """generator=None means PyTorch's global generator (not a hidden fixed seed)."""
    model = random_rbm(8, 5, scale=0.5).float()
    base = base_rate_bias(sparse_data(50, 8))
    data = sparse_data(4, 8, seed=2)

    def run(global_seed, generator=None):
        torch.manual_seed(global_seed)
        ais = ais_log_partition(model, base, betas=30, runs=6, generator=generator)
        rev = reverse_ais_log_likelihood(model, data, base, betas=30, runs=2, generator=generator)
        return ais.log_weights, rev.per_example

    with torch.random.fork_rng(devices=[]):
        a, b, c = run(5), run(5), run(6)
        explicit = run(6, torch.Generator().manual_seed(5))  # the same stream, passed explicitly
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    assert torch.equal(a[0], explicit[0]) and torch.equal(a[1], explicit[1])


def test_ais_within_0_1_nats_random_784x15():
    model = rbm_784x15()
    base = base_rate_bias(sparse_data(2000, 784))
    result = ais_log_partition(model, base, runs=100, generator=torch.Generator().manual_seed(0))
    exact = exact_log_partition(model)
    assert abs(result.log_z - exact) < 0.1
    assert result.log_z_low < exact < result.log_z_high  # the estimator's own +-3 sigma covers it
    assert result.n_betas == 14501 and result.runs == 100
    check_spread_from_log_weights(result)


def test_ais_within_0_1_nats_random_20x200():
    model = random_rbm(20, 200, scale=0.3, seed=3).float()
    base = base_rate_bias(sparse_data(500, 20, p=0.4))
    result = ais_log_partition(model, base, runs=100, generator=torch.Generator().manual_seed(1))
    assert abs(result.log_z - exact_log_partition(model)) < 0.1
    check_spread_from_log_weights(result)


def test_ais_within_0_1_nats_trained_on_digits(tmp_path):
    from boltzkit.config import load_config
    from boltzkit.train import train

    config = load_config(None, ["model.n_hidden=15", "train.epochs=10", "train.metrics_examples=50"])
    result = train(config, tmp_path / "run", progress=False)
    model = result.model
    assert model.weight.abs().max() > 0.5  # trained: strong couplings, not the initial noise
    from boltzkit.data import load_dataset

    data = load_dataset(config.data, config.seed)
    ais = ais_log_partition(model, base_rate_bias(data.train), runs=100,
                            generator=torch.Generator().manual_seed(0))
    assert abs(ais.log_z - exact_log_partition(model)) < 0.1


@pytest.mark.slow
def test_ais_within_0_1_nats_trained_784x15_on_mnist(tmp_path, mnist_path):
    from boltzkit.config import load_config
    from boltzkit.train import train

    config = load_config("rbm-mnist", [
        "data.name=npz", f"data.path={mnist_path}", "model.n_hidden=15", "train.epochs=3",
        "data.limit=20000", "train.metrics_examples=100"])
    result = train(config, tmp_path / "run", progress=False)
    from boltzkit.data import load_dataset

    data = load_dataset(config.data, config.seed)
    ais = ais_log_partition(result.model, base_rate_bias(data.train), runs=100,
                            generator=torch.Generator().manual_seed(0))
    assert abs(ais.log_z - exact_log_partition(result.model)) < 0.1


def test_same_seed_same_numbers():
    model = random_rbm(20, 30, scale=0.3).float()
    base = base_rate_bias(sparse_data(100, 20))
    data = sparse_data(10, 20, seed=5)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        ais = ais_log_partition(model, base, betas=300, runs=16, generator=g)
        rev = reverse_ais_log_likelihood(model, data, base, betas=300, runs=2, generator=g)
        return ais.log_z, rev.per_example

    (a, ra), (b, rb), (c, rc) = run(0), run(0), run(1)
    assert a == b and torch.equal(ra, rb)
    assert a != c and not torch.equal(ra, rc)


# --------------------------------------------------------------------------- reverse AIS


def test_reverse_ais_is_conservative_and_close_784x15():
    model = rbm_784x15(seed=4)
    data = sparse_data(60, 784, seed=7)
    base = base_rate_bias(sparse_data(2000, 784))
    reverse = reverse_ais_log_likelihood(model, data, base, betas=3001, runs=2,
                                         generator=torch.Generator().manual_seed(0))
    exact = exact_log_likelihood(model, data)
    diff = reverse.per_example - exact
    stderr = diff.std() / math.sqrt(len(diff))
    assert diff.mean() <= 3 * stderr  # never above the exact value beyond its error
    assert diff.mean() > -1.0  # and not uselessly low
    assert reverse.runs == 2 and len(reverse.per_example) == 60 and reverse.n_betas == 3001
    # the summary is the mean of the per-example estimates and its standard error
    per_example = reverse.per_example
    assert reverse.mean == pytest.approx(per_example.mean().item(), abs=1e-12)
    assert reverse.standard_error == pytest.approx(per_example.std().item() / math.sqrt(60), rel=1e-12)


def test_reverse_ais_on_an_uncoupled_model_is_exact():
    model = random_rbm(10, 4, scale=1.0)
    with torch.no_grad():
        model.weight.zero_()
    data = all_binary(10)[::37]
    reverse = reverse_ais_log_likelihood(model, data, model.visible.bias.detach(), betas=20,
                                         generator=torch.Generator().manual_seed(0))
    assert torch.allclose(reverse.per_example, exact_log_likelihood(model, data), atol=1e-9)


# --------------------------------------------------------------------------- evaluate_rbm


def test_evaluate_rbm_uses_its_seeded_generator_and_the_estimators():
    """Every number comes from the estimators, multi-path AIS and reverse AIS drawing (in
    that order) from make_generator(seed, "evaluate"): the same seed gives the same numbers."""
    model = random_rbm(10, 6, scale=0.5, seed=2)
    data, train_data = all_binary(10)[::40], sparse_data(200, 10, p=0.4).double()
    options = dict(ais_runs=8, ais_betas=200, reverse_examples=5, reverse_runs=2)
    results = evaluate_rbm(model, data, train_data, seed=3, **options)

    base = base_rate_bias(train_data)
    g = make_generator(3, "evaluate")
    multi = multipath_log_partition(model, train_data, 200, 8, g)
    ais = multi.best
    assert multi.log_z == ais.log_z  # the data bound is far below here
    reverse = reverse_ais_log_likelihood(model, data[:5], base, 200, 2, g)
    mean_neg_f = -model.free_energy(data).mean().item()
    assert results["log_z_ais"] == ais.log_z and results["ais_ess"] == ais.ess
    assert results["ais_path"] == multi.chosen and results["ais_reliable"] == multi.reliable
    assert results["log_z_ais_low"] == ais.log_z_low and results["log_z_ais_high"] == ais.log_z_high
    assert results["log_likelihood_ais"] == pytest.approx(mean_neg_f - ais.log_z, abs=1e-12)
    assert results["log_likelihood_ais_low"] == pytest.approx(mean_neg_f - ais.log_z_high, abs=1e-12)
    assert results["log_likelihood_ais_high"] == pytest.approx(mean_neg_f - ais.log_z_low, abs=1e-12)
    assert results["log_likelihood_reverse_ais"] == reverse.mean
    assert results["log_likelihood_reverse_ais_stderr"] == reverse.standard_error
    assert results["log_z_exact"] == pytest.approx(brute_log_z(model).item(), abs=1e-9)
    assert results["log_likelihood_exact"] == pytest.approx(
        exact_log_likelihood(model, data).mean().item(), abs=1e-12)

    again, other = evaluate_rbm(model, data, train_data, seed=3, **options), evaluate_rbm(
        model, data, train_data, seed=4, **options)
    assert again["log_z_ais"] == results["log_z_ais"]
    assert again["log_likelihood_reverse_ais"] == results["log_likelihood_reverse_ais"]
    assert other["log_z_ais"] != results["log_z_ais"]
    assert other["log_likelihood_reverse_ais"] != results["log_likelihood_reverse_ais"]


def test_invalid_ais_arguments():
    model = random_rbm(5, 3)
    base = torch.zeros(5)
    with pytest.raises(ValueError, match="Invalid number of AIS runs: 0"):
        ais_log_partition(model, base, runs=0)
    with pytest.raises(ValueError, match="must increase strictly from 0 to 1"):
        ais_log_partition(model, base, betas=torch.tensor([0.0, 0.5, 0.4, 1.0]))
    with pytest.raises(ValueError, match="Invalid number of reverse AIS runs: 0"):
        reverse_ais_log_likelihood(model, torch.zeros(2, 5, dtype=torch.float64), base, runs=0)
    gaussian = RBM(5, 3, visible="gaussian")
    with pytest.raises(ValueError, match="needs Bernoulli visible and hidden units; this RBM has "
                                         "gaussian visible and bernoulli hidden units"):
        ais_log_partition(gaussian, base, betas=10)
    with pytest.raises(ValueError, match="Invalid pseudocount: 0"):
        base_rate_bias(torch.zeros(3, 5), pseudocount=0)


# --------------------------------------------------------------------------- several paths


@pytest.mark.parametrize("visible", [100, pytest.param(784, marks=pytest.mark.slow)])
def test_no_model_of_the_zoo_is_confidently_wrong(visible):
    """21 enumerable RBMs (random weights up to sharply multimodal, isolated prototype
    modes, CD-1-trained): the conservative multi-path estimate is within 0.1 nats of its
    interval around the exact log Z, or it is flagged unreliable. The short schedule
    (1,000 betas, 50 runs) makes failures common: each must be flagged."""
    from boltzkit.estimate.multipath import reverse_verdict
    from boltzkit.estimate.zoo import estimator_zoo

    flagged = 0
    for name, model, data in estimator_zoo(n_visible=visible):
        exact = exact_log_partition(model)
        multi = multipath_log_partition(model, data, betas=1000, runs=50,
                                        generator=torch.Generator().manual_seed(0))
        low, high = multi.interval
        assert (low - 0.1 <= exact <= high + 0.1) or not multi.reliable, (name, exact, multi.verdict)
        assert exact >= multi.data_bound - 1e-6  # the data bound is a true lower bound
        flagged += not multi.reliable
        # reverse AIS on 30 examples: off the exact values by no more than what its verdict
        # tolerates (3 standard errors of the paired differences, forward AIS's interval,
        # 0.1 nats), or flagged
        test = data[:30]
        reverse = reverse_ais_log_likelihood(model, test, base_rate_bias(data), 1000, 1,
                                             torch.Generator().manual_seed(1))
        forward = -model.free_energy(test).double() - multi.log_z
        reliable, verdict = reverse_verdict(reverse.per_example, forward, multi)
        errors = reverse.per_example.double() - exact_log_likelihood(model, test).double()
        tolerated = 3 * errors.std() / 30**0.5 + (high - low) + 0.1
        assert abs(errors.mean()) <= tolerated or not reliable, (name, verdict)
    assert flagged >= 2  # the zoo does contain estimates that must be flagged


def test_paths_agree_on_a_small_model_and_the_transposed_model_has_the_same_log_z():
    from boltzkit.estimate.multipath import transposed
    from boltzkit.models import RBM

    centered = RBM(8, 5, centered=True).double()
    with torch.no_grad():
        centered.weight.normal_(0, 0.7, generator=torch.Generator().manual_seed(1))
        centered.visible_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(2))
        centered.hidden_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(3))
    assert exact_log_partition(transposed(centered)) == pytest.approx(
        exact_log_partition(centered.without_offsets()), abs=1e-9)
    data = sparse_data(300, 8, p=0.4)
    model = centered.float()
    multi = multipath_log_partition(model, data, betas=2000, runs=100, generator=torch.Generator().manual_seed(0))
    assert set(multi.paths) == {"base rate", "uniform", "hidden base rate"}
    for path in multi.paths.values():  # each path, the hidden side's through the centering shift
        assert abs(path.log_z - exact_log_partition(model)) < 0.1
    assert multi.reliable and multi.verdict.startswith("no sign of trouble")
    again = multipath_log_partition(model, data, betas=2000, runs=100, generator=torch.Generator().manual_seed(0))
    other = multipath_log_partition(model, data, betas=2000, runs=100, generator=torch.Generator().manual_seed(1))
    assert again.to_dict() | {"paths": None} == multi.to_dict() | {"paths": None}
    assert [p.log_z for p in again.paths.values()] == [p.log_z for p in multi.paths.values()]  # seeds reproduce
    assert [p.log_z for p in other.paths.values()] != [p.log_z for p in multi.paths.values()]


def test_paths_below_the_data_bound_are_flagged_and_the_bound_is_reported():
    """Three sharp modes where the data are; a one-jump "annealing" from the base rate
    misses them, and the data's own bound log sum exp(-F(v)) says so."""
    from boltzkit.estimate.multipath import data_log_z_bound
    from boltzkit.models import RBM

    model = RBM(12, 3)
    patterns = torch.tensor([[1.0] * 4 + [0.0] * 8, [0.0] * 4 + [1.0] * 4 + [0.0] * 4, [0.0] * 8 + [1.0] * 4])
    with torch.no_grad():
        model.weight.copy_((patterns.T * 2 - 1) * 12)
        model.hidden.bias.copy_(-patterns.sum(1) * 12 + 24)
        model.visible.bias.zero_()
    data = patterns.repeat(50, 1)
    bound = data_log_z_bound(model, data)
    on_the_data = torch.logsumexp(-model.double().free_energy(patterns.double()), 0).item()
    assert on_the_data <= bound <= exact_log_partition(model) < on_the_data + 0.01  # modes hold the mass
    model = model.float()
    multi = multipath_log_partition(model, data, betas=2, runs=3, generator=torch.Generator().manual_seed(0))
    assert multi.best.log_z < bound - 10
    assert multi.log_z == bound and not multi.reliable
    assert "below the data's own lower bound on log Z by" in multi.verdict
