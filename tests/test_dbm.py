"""Deep Boltzmann machines against exact enumeration on tiny models."""

from __future__ import annotations

import pytest
import torch

from boltzkit import load
from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.estimate.dbm import (
    _DBMPath,
    data_log_z_bound,
    dbm_ais_log_partition,
    dbm_log_likelihood,
    dbm_log_partition,
    evaluate_dbm,
    variational_bounds,
)
from boltzkit.models.dbm import DBM
from boltzkit.objectives.dbm import DBMLearning, ModifiedRBMPretraining, pretraining_factors
from boltzkit.sampling.dbm import DBMChains, draw_dbm_samples
from boltzkit.sampling.tempering import temperature_ladder
from boltzkit.train import Fit, train
from boltzkit.units import bernoulli
from helpers import all_binary, random_dbm


def tiny_dbm(sizes=(5, 4, 3), seed=0, centered=False, scale=0.8) -> DBM:
    return random_dbm(sizes, seed, centered, scale)


def split_states(model: DBM, flat: torch.Tensor) -> list[torch.Tensor]:
    bounds = torch.tensor([0, *model.sizes]).cumsum(0).tolist()
    return [flat[:, a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def exact_joint(model: DBM) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every joint state (as a layer list) and its probability, by brute force."""
    states = split_states(model, all_binary(sum(model.sizes)))
    return states, torch.softmax(-model.energy(states), 0)


def binary_batch(n, d, seed):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


@pytest.mark.parametrize("centered", [False, True])
def test_exact_log_z_and_likelihood_equal_brute_force_on_a_10_6_4_dbm(centered):
    """The odd layer enumerated, v and h2 summed out in closed form, against the sum over all
    2^20 joint states."""
    model = tiny_dbm((10, 6, 4), 1, centered, scale=0.5)
    states = split_states(model, all_binary(20))
    energies = model.energy(states).detach()
    brute_log_z = torch.logsumexp(-energies, 0).item()
    assert dbm_log_partition(model) == pytest.approx(brute_log_z, abs=1e-9)
    v = binary_batch(4, 10, 2)
    codes = (v * 2 ** torch.arange(9, -1, -1, dtype=torch.float64)).sum(1).long()
    per_v = torch.logsumexp(-energies.view(2**10, 2**10), dim=1) - brute_log_z  # rows: v codes
    assert torch.allclose(dbm_log_likelihood(model, v), per_v[codes], atol=1e-9)


def test_free_energy_sums_out_either_parity():
    model = tiny_dbm((4, 3, 2, 3), 2)
    joint, _ = exact_joint(model)
    energies = model.energy(joint).detach()
    for summed in ([0, 2], [1, 3]):
        kept = [d for d in range(4) if d not in summed]
        # group the joint states by their kept layers and sum exp(-E) by brute force
        keys = torch.cat([joint[d] for d in kept], 1)
        unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
        brute = torch.full((len(unique),), -torch.inf, dtype=torch.float64)
        brute = brute.scatter_reduce(0, inverse, -energies, "amax")
        brute = torch.zeros(len(unique), dtype=torch.float64).index_add_(
            0, inverse, torch.exp(-energies - brute[inverse])).log() + brute
        states = [None] * 4
        for i, d in enumerate(kept):
            start = sum(model.sizes[k] for k in kept[:i])
            states[d] = unique[:, start:start + model.sizes[d]]
        assert torch.allclose(-model.free_energy(states, summed), brute, atol=1e-10)
    with pytest.raises(ValueError, match="adjacent layers \\[0, 1\\] cannot be summed out"):
        model.free_energy(joint, [0, 1])


def test_mean_field_reaches_a_fixed_point_and_bounds_the_exact_likelihood():
    model = tiny_dbm((6, 5, 4), 3, scale=1.2)
    v = binary_batch(16, 6, 4)
    states, sweeps = model.mean_field(v, max_iter=500, tol=1e-12)
    assert sweeps < 500
    for depth in (1, 2):
        assert torch.allclose(states[depth], torch.sigmoid(model.layer_input(states, depth)), atol=1e-10)
    log_z = dbm_log_partition(model)
    bound = model.variational_bound(states).detach() - log_z
    exact = dbm_log_likelihood(model, v, log_z)
    gap = exact - bound  # = KL(q || p(h | v)) >= 0
    assert bool((gap > 0).all())
    # the gap is the KL divergence from q to the exact posterior, computed by enumeration
    hidden = split_states(model, torch.cat([torch.zeros(2**9, 6, dtype=torch.float64), all_binary(9)], 1))
    for b in range(3):
        full = [v[b].expand(2**9, -1), hidden[1], hidden[2]]
        log_post = -model.energy(full).detach()
        log_post = log_post - torch.logsumexp(log_post, 0)
        log_q = sum((h * torch.log(mu[b]) + (1 - h) * torch.log1p(-mu[b])).sum(1)
                    for h, mu in zip(hidden[1:], states[1:], strict=True)).detach()
        kl = (log_q.exp() * (log_q - log_post)).sum()
        assert gap[b].item() == pytest.approx(kl.item(), abs=1e-9)


def test_mean_field_sweeps_never_lower_the_bound():
    model = tiny_dbm((6, 5, 4, 3), 5, scale=1.5)
    v = binary_batch(32, 6, 6)
    previous = None
    for sweeps in range(1, 8):
        bound = model.variational_bound(model.mean_field(v, max_iter=sweeps, tol=0.0)[0]).detach()
        if previous is not None:
            assert bool((bound >= previous - 1e-12).all())
        previous = bound
    start = model.variational_bound(model.recognition(v)).detach()
    assert bool((previous >= start - 1e-12).all())


@pytest.mark.parametrize("centered", [False, True])
def test_ais_log_z_within_its_interval_of_the_exact_value(centered):
    model = tiny_dbm((10, 6, 4), 7, centered, scale=0.6).float()
    ais = dbm_ais_log_partition(model, None, 2000, 200, torch.Generator().manual_seed(0))
    exact = dbm_log_partition(model)
    assert ais.log_z_low <= exact <= ais.log_z_high
    assert abs(ais.log_z - exact) < 0.05
    assert ais.ess > 150  # a short, easy path: the weights barely differ


@pytest.mark.parametrize("sizes", [(6, 5, 4), (6, 5, 4, 3)])
@pytest.mark.parametrize("centered", [False, True])
def test_ais_energy_from_the_even_inputs_equals_the_energy(sizes, centered):
    """AIS takes ``E(x_even = 0, x_odd)`` from the even layers' inputs, without products of
    its own; it equals :meth:`DBM.energy` (2 and 3 hidden layers, centered or not)."""
    model = tiny_dbm(sizes, 4, centered)
    path = _DBMPath(model, None)
    states = path.start(7, torch.Generator().manual_seed(0))
    zeros = [s if s is not None else torch.zeros(7, n, dtype=torch.float64) for s, n in zip(states, sizes, strict=True)]
    energy, _, _ = path.log_f_pieces(states)
    assert torch.allclose(energy, model.energy(zeros), atol=1e-12)


def test_offsets_move_without_changing_the_distribution():
    model = tiny_dbm((4, 3, 3), 8, centered=True)
    joint, p = exact_joint(model)
    energies = model.energy(joint).detach()
    targets = [torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n)) for n in model.sizes]
    model.set_offsets(targets)
    assert all(torch.equal(mu, t) for mu, t in zip(model.offsets(), targets, strict=True))
    moved = model.energy(joint).detach()
    assert (moved - energies).std().item() < 1e-12  # a constant shift only
    plain = model.without_offsets()
    assert not plain.centered and all(float(mu.abs().max()) == 0 for mu in plain.offsets())
    assert torch.allclose(torch.softmax(-plain.energy(joint).detach(), 0), p, atol=1e-12)
    before = [mu.clone() for mu in model.offsets()]
    model.update_offsets(joint, 0.25)  # toward the mean of the enumerated states (0.5 each)
    for mu, old in zip(model.offsets(), before, strict=True):
        assert torch.allclose(mu, old + 0.25 * (0.5 - old))


def exact_statistics(model: DBM) -> dict[str, torch.Tensor]:
    """``E_p[-dE/dtheta]``: pair products of neighbouring layers and layer means."""
    joint, p = exact_joint(model)
    stats = {f"weights.{d}": (joint[d] * p[:, None]).T @ joint[d + 1] for d in range(model.n_layers - 1)}
    stats |= {f"biases.{d}": p @ joint[d] for d in range(model.n_layers)}
    return stats


def chain_statistics(states: list[torch.Tensor]) -> tuple[dict, dict]:
    n = len(states[0])
    stats, errors = {}, {}
    for d in range(len(states) - 1):
        products = states[d][:, :, None] * states[d + 1][:, None, :]
        stats[f"weights.{d}"], errors[f"weights.{d}"] = products.mean(0), products.std(0) / n**0.5
    for d, x in enumerate(states):
        stats[f"biases.{d}"], errors[f"biases.{d}"] = x.mean(0), x.std(0) / n**0.5
    return stats, errors


@pytest.mark.parametrize("tempered", [False, True])
def test_chain_statistics_match_the_brute_force_model_expectation(tempered):
    """The negative phase of the DBM gradient: after burn-in, independent chains (plain or
    tempered) estimate ``E_p[x_{l-1} x_l^T]`` and ``E_p[x_l]`` within 5 standard errors."""
    model = tiny_dbm((5, 4, 3), 9, scale=1.0)
    betas = temperature_ladder(4, 0.4) if tempered else None
    chains = DBMChains(20_000, 40, torch.Generator().manual_seed(1), betas)
    start = model.base_states(20_000, torch.Generator().manual_seed(2))
    states = chains.step(model, start)
    estimate, error = chain_statistics(states)
    exact = exact_statistics(model)
    for key, value in exact.items():
        assert bool(((estimate[key] - value).abs() <= 5 * error[key] + 1e-3).all()), key
    if tempered:
        assert 0 < chains.epoch_metrics()["pt_swap_rate_min"] <= 1


def test_dbm_gradient_is_data_mean_field_minus_chain_statistics():
    """The surrogate's autograd gradient (with a sparsity penalty on) equals the analytic
    update: -(<x x'>_{v, mu} - <x x'>_chains) and -(<x>_{v, mu} - <x>_chains) + cost (q - p)."""
    model = tiny_dbm((5, 4, 3), 10)
    v = binary_batch(8, 5, 11)
    for statistic in ("unit", "layer"):
        objective = DBMLearning(DBMChains(6, 2, torch.Generator().manual_seed(3)), 20, 1e-8,
                                sparsity_target=0.2, sparsity_cost=0.5, sparsity_statistic=statistic)
        for _ in range(2):  # the second time from persistent chains
            model.zero_grad()
            objective.loss(model, v).backward()
            data, _ = chain_statistics(objective.positive)
            chains, _ = chain_statistics(objective.negatives)
            for key, param in model.named_parameters():
                expected = -(data[key] - chains[key])
                depth = int(key.split(".")[1])
                if key.startswith("biases") and depth > 0:
                    q = objective.positive[depth].mean(0)
                    q = q.mean().expand_as(q) if statistic == "layer" else q
                    expected = expected + 0.5 * (q - 0.2)
                assert torch.allclose(param.grad, expected, atol=1e-12), (statistic, key)


def test_pretraining_doubles_the_weights_where_a_layer_gets_a_second_neighbour():
    assert [pretraining_factors(d, 3) for d in (1, 2, 3)] == [(2.0, 1.0), (2.0, 2.0), (1.0, 2.0)]
    model = tiny_dbm((5, 4, 3), 12)
    x = binary_batch(8, 5, 13)
    objective = ModifiedRBMPretraining(1, 1, torch.Generator().manual_seed(4))
    model.zero_grad()
    objective.loss(model, x).backward()
    replay = torch.Generator().manual_seed(4)
    w, b0, b1 = model.weights[0].detach(), model.biases[0].detach(), model.biases[1].detach()
    h_data = torch.sigmoid(2 * x @ w + b1)  # bottom-up doubled: h1 will also hear h2
    h = bernoulli(h_data, replay)
    x_model = bernoulli(torch.sigmoid(h @ w.T + b0), replay)
    h_model = torch.sigmoid(2 * x_model @ w + b1)
    assert torch.equal(objective.negatives, x_model)
    assert torch.allclose(model.weights[0].grad, -(x.T @ h_data - x_model.T @ h_model) / 8, atol=1e-12)
    assert torch.allclose(model.biases[0].grad, -(x - x_model).mean(0), atol=1e-12)
    assert model.weights[1].grad is None and model.biases[2].grad is None
    top = ModifiedRBMPretraining(2, 1, torch.Generator().manual_seed(8))
    model.zero_grad()
    top.loss(model, h_data).backward()
    assert model.biases[1].grad is None  # the lower bias was learned by the RBM below
    replay = torch.Generator().manual_seed(8)
    w, b2 = model.weights[1].detach(), model.biases[2].detach()
    h_top = torch.sigmoid(h_data @ w + b2)  # the top layer hears h1 once ...
    x_model = bernoulli(torch.sigmoid(2 * bernoulli(h_top, replay) @ w.T + b1), replay)  # ... h1 it twice
    h_model = torch.sigmoid(x_model @ w + b2)
    assert torch.allclose(model.weights[1].grad, -(h_data.T @ h_top - x_model.T @ h_model) / 8, atol=1e-12)


@pytest.mark.slow
def test_samples_of_a_tiny_dbm_match_its_exact_marginal():
    _assert_samples_match(steps=60)


@pytest.mark.parametrize("temperatures", [0, 3])
def test_samples_match_the_exact_marginal_quickly(temperatures):
    _assert_samples_match(steps=25, n=20_000, temperatures=temperatures)


def _assert_samples_match(steps, n=60_000, temperatures=0):
    model = tiny_dbm((4, 3, 3), 14, scale=1.0).float()
    states, means = draw_dbm_samples(model, n, steps, torch.Generator().manual_seed(5), temperatures)
    exact = dbm_log_likelihood(model, all_binary(4)).exp()
    codes = (states.double() * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    frequency = torch.bincount(codes, minlength=16).double() / n
    error = (exact * (1 - exact) / n).sqrt()
    assert bool(((frequency - exact).abs() < 5 * error + 1e-3).all())
    assert bool(((means > 0) & (means < 1)).all()) and means.shape == states.shape


def test_evaluation_reports_the_bound_ais_and_exact_values():
    model = tiny_dbm((8, 5, 3), 15, scale=0.6).float()
    v = binary_batch(50, 8, 16).float()
    results = evaluate_dbm(model, v, v, ais_runs=100, ais_betas=1000, exact_max_units=10,
                           seed_generator=torch.Generator().manual_seed(6))
    exact_log_z = dbm_log_partition(model)
    assert results["log_z_exact"] == pytest.approx(exact_log_z, abs=1e-9)
    ais = results["ais"]
    assert ais["log_z_low"] <= exact_log_z <= ais["log_z_high"]
    bounds, _ = variational_bounds(model, v)
    assert results["log_likelihood_bound_exact_log_z"] == pytest.approx(bounds.mean().item() - exact_log_z)
    assert results["log_likelihood_bound_exact_log_z"] < results["log_likelihood_exact"]
    assert results["log_likelihood_bound"] == pytest.approx(bounds.mean().item() - ais["log_z"])
    # only log Z is estimated: the interval is the bound minus log Z's interval
    assert results["log_likelihood_bound_low"] == pytest.approx(bounds.mean().item() - ais["log_z_high"])
    assert results["log_likelihood_bound_high"] == pytest.approx(bounds.mean().item() - ais["log_z_low"])
    assert results["warnings"] == [] and results["ais_reliable"] is True


def test_ais_warns_when_its_weights_degenerate():
    model = tiny_dbm((30, 10, 10), 17, scale=3.0).float()
    v = binary_batch(20, 30, 18).float()
    results = evaluate_dbm(model, v, v, ais_runs=20, ais_betas=10, exact_max_units=0,
                           seed_generator=torch.Generator().manual_seed(7))
    assert any("effective sample size" in w for w in results["warnings"])
    assert results["ais_reliable"] is False and "effective sample size" in results["ais_verdict"]


FAST = ["model={type: dbm, layers: [8, 6]}", "train.epochs=1", "data.limit=200",
        "train.batch_size=25", "train.metrics_examples=50", "threads=1", "data.binarize=threshold"]


@pytest.mark.parametrize("overrides, message", [
    (["model.layers=[8]"], "a DBM needs at least two hidden layers"),
    (["model.layers=[8, 0]"], "every size must be between 1 and 100000"),
    (["model.centered=true", "model.pretrain_epochs=2"], "centered DBMs train without pretraining"),
    (["model.sparsity={target: 1.5}"], "model.sparsity.target"),
])
def test_invalid_dbm_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*FAST, *overrides])


def test_contrastive_divergence_is_refused():
    with pytest.raises(ConfigError, match="'train.method': a DBM's negative phase needs persistent chains"):
        Fit(load_config(None, [*FAST, "train.method=cd"]))


def test_max_norm_caps_every_hidden_unit_after_each_update():
    config = load_config(None, [*FAST, "model.max_norm=0.05", "model.init_std=0.1",
                                "train.optimizer={name: sgd, lr: 0.5}"])
    session = Fit(config)
    session.run()
    for weight in session.model.weights:
        assert float(torch.linalg.vector_norm(weight.detach(), dim=0).max()) <= 0.05 + 1e-6


def test_chains_refuse_a_checkpoint_of_another_ladder():
    saved = DBMChains(4, 1, torch.Generator(), temperature_ladder(3, 0.5)).state_dict()
    with pytest.raises(ValueError, match="inverse temperatures \\[1, 0.707, 0.5\\], this run asks for "
                                         "\\[1\\] \\(no tempering\\): train.method and train.pt"):
        DBMChains(4, 1, torch.Generator()).load_state_dict(saved)


def test_early_stopping_is_refused_with_pretraining():
    with pytest.raises(ConfigError, match="'train.early_stopping': not available with model.pretrain_epochs"):
        Fit(load_config(None, [*FAST, "model.pretrain_epochs=1", "train.early_stopping={}"]))


@pytest.mark.parametrize("variant", [["model.pretrain_epochs=1"], ["model.centered=true"]])
def test_an_mlp_seeded_from_a_dbm_run_computes_its_bottom_up_pass(tmp_path, variant):
    train(load_config(None, [*FAST, *variant]), tmp_path / "dbm", progress=False)
    mlp = train(load_config(None, ["model={type: mlp, hidden_layers: [8, 6], activation: sigmoid}",
                                   f"model.pretrained={tmp_path / 'dbm'}", "model.freeze_pretrained=true",
                                   "train.epochs=1", "data.limit=200", "threads=1"]),
                tmp_path / "mlp", progress=False).model
    dbm = load(tmp_path / "dbm").model
    x = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    hidden = x
    for block in mlp.eval().hidden:
        hidden = block(hidden)
    assert torch.allclose(hidden, dbm.recognition(x)[-1], atol=1e-6)


def test_the_data_bound_on_log_z_is_certain_and_catches_a_failed_ais(monkeypatch):
    """``log Z >= logsumexp`` of the distinct examples' mean-field bounds: below the exact log Z
    always, and close to it when the examples are every visible state of a weakly coupled
    model; an AIS run too short to find the mass is caught by it."""
    weak = tiny_dbm((6, 4, 3), 20, scale=0.3)
    every = all_binary(6)
    exact = dbm_log_partition(weak)
    rows = torch.cat([every, every[:5]])
    bound = data_log_z_bound(weak, rows)  # duplicates count once
    assert exact - 0.05 < bound <= exact
    # the rows' own bounds, passed in, count each distinct row once too (not re-run)
    row_bounds, _ = variational_bounds(weak, rows)
    with monkeypatch.context() as patch:
        patch.setattr("boltzkit.estimate.dbm.variational_bounds", lambda *a: pytest.fail("mean field re-run"))
        assert data_log_z_bound(weak, rows, row_bounds) == pytest.approx(bound, abs=1e-9)
    assert torch.logsumexp(row_bounds, 0).item() > bound + 1e-3
    strong = tiny_dbm((12, 8, 6), 21, scale=3.0).float()
    v = strong.sample(400, 200, generator=torch.Generator().manual_seed(0))  # data from the model's modes
    results = evaluate_dbm(strong, v, v, ais_runs=4, ais_betas=3, exact_max_units=8,
                           seed_generator=torch.Generator().manual_seed(1))
    assert results["log_z_data_lower_bound"] <= results["log_z_exact"] + 1e-6
    assert results["ais"]["log_z"] < results["log_z_data_lower_bound"]
    assert results["ais_reliable"] is False and "certain lower bound" in results["ais_verdict"]
    assert results["log_likelihood_bound_ceiling"] == pytest.approx(
        results["variational_bound_unnormalized"] - results["log_z_data_lower_bound"])
