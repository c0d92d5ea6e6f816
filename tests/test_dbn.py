"""Deep belief networks: the model's maths against brute force on tiny stacks, the
likelihood bound, generation, the MLP seeding contract, per-layer config and greedy
training resumed from the middle of a layer."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.estimate.dbn_bound import dbn_log_likelihood_bound
from boltzkit.estimate.exact import exact_log_likelihood
from boltzkit.models import MLP
from boltzkit.models.dbn import DBN
from boltzkit.train import Fit
from boltzkit.train.fit import FitInterrupted
from helpers import all_binary, assert_resumes_exactly


def _dbn(n_visible, layers, scale, seed, **options):
    model = DBN(n_visible, layers, **options).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.3 if "log_sigma" in name else scale))
    return model


def _bernoulli_log_prob(x, logits):
    """``log prod_i p(x_i)`` with ``p(x_i = 1) = sigmoid(logits_i)``, written out."""
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(-1)


def _brute_log_likelihood(model, v):
    """``log p(v)`` of a plain Bernoulli DBN by enumerating every hidden layer: the top
    RBM's joint from its energies, ``p(h_{l-1} | h_l)`` from each lower RBM's weights."""
    rbms = list(model.rbms)
    top = rbms[-1]
    below, above = all_binary(top.n_visible), all_binary(top.n_hidden)
    energy = -(below @ top.visible.bias)[:, None] - (above @ top.hidden.bias)[None] - below @ top.weight @ above.T
    log_top = torch.logsumexp(-energy, 1) - torch.logsumexp(-energy.flatten(), 0)  # log p(h_{L-1})
    log_p = log_top  # over the states of h_{L-1}, then carried down one layer at a time
    for rbm in reversed(rbms[:-1]):
        lower = all_binary(rbm.n_visible) if rbm is not rbms[0] else v
        upper = all_binary(rbm.n_hidden)
        # log p(lower) = logsumexp_upper [log p(lower | upper) + log p(upper)]
        logits = rbm.visible.bias + upper @ rbm.weight.T  # (U, n_lower)
        conditional = torch.stack([_bernoulli_log_prob(lower, row) for row in logits], 1)  # (L, U)
        log_p = torch.logsumexp(conditional + log_p[None], 1)
    return log_p


def _posterior_expectation(model, v):
    """``log sum_h q(h | v) w(v, h) - log Z_top`` for a two-layer DBN, enumerating ``h_1``."""
    h = all_binary(model.rbms[0].n_hidden)
    rows = v.repeat_interleave(len(h), 0)
    latents = [h.repeat(len(v), 1)]
    log_w = model.log_joint_over_posterior(rows, latents).reshape(len(v), len(h))
    log_q = _bernoulli_log_prob(latents[0], model.rbms[0].hidden.bias + rows @ model.rbms[0].weight)
    return torch.logsumexp(log_w + log_q.reshape(len(v), len(h)), 1)


def _log_z(rbm):
    below, above = all_binary(rbm.n_visible), all_binary(rbm.n_hidden)
    energy = -(below @ rbm.visible.bias)[:, None] - (above @ rbm.hidden.bias)[None] - below @ rbm.weight @ above.T
    return torch.logsumexp(-energy.flatten(), 0)


def _binary(n, width, seed):
    return (torch.rand(n, width, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


# ------------------------------------------------------------------ maths


def test_importance_weights_average_to_the_brute_force_likelihood():
    """``sum_h q(h | v) w(v, h) = p(v) Z_top`` exactly (the identity the bound rests on),
    checked by enumerating ``h_1`` against a brute-force sum over every layer."""
    model = _dbn(5, [4, 3], 0.9, 0)
    v = all_binary(5)
    expected = _brute_log_likelihood(model, v)
    assert torch.allclose(_posterior_expectation(model, v) - _log_z(model.top), expected, atol=1e-10)
    assert torch.allclose(torch.logsumexp(expected, 0), torch.zeros((), dtype=torch.float64), atol=1e-10)


def test_a_one_layer_dbn_weight_is_the_rbm_free_energy():
    model = _dbn(5, [3], 0.9, 1)
    v = _binary(6, 5, 0)
    assert torch.allclose(model.log_joint_over_posterior(v, []), -model.rbms[0].free_energy(v), atol=1e-12)


def test_bound_is_below_the_exact_log_likelihood_and_tightens_with_draws():
    """6-4-3 DBN, exact top log Z: with 3 draws the bound lies below the exact average
    log-likelihood beyond its own 3 s.e.; with 3000 draws it is within 3 s.e. of it, once
    the delta method's Jensen bias (half the variance of each log-mean) is taken out."""
    model = _dbn(6, [4, 3], 1.2, 2)
    v = _binary(300, 6, 1)
    exact = _brute_log_likelihood(model, v).mean().item()
    few = dbn_log_likelihood_bound(model, v, v, samples=3, generator=torch.Generator().manual_seed(0))
    assert few.log_z_method == "exact"
    assert few.mean + 3 * few.standard_error < exact
    assert few.elbo < few.mean  # the variational bound is looser
    many = dbn_log_likelihood_bound(model, v, v, samples=3000, generator=torch.Generator().manual_seed(1))
    bias = len(v) * many.standard_error**2 / 2  # mean over examples of var_i / 2
    assert abs(many.mean + bias - exact) < 3 * many.standard_error
    assert many.low <= many.mean - 3 * many.standard_error + 1e-12  # exact log Z: only the draws' width
    assert many.high == pytest.approx(many.mean + 3 * many.standard_error, abs=1e-12)


def test_bound_is_exact_when_the_top_rbm_is_the_first_transposed():
    """Hinton, Osindero & Teh (2006): a second layer with ``W^T`` and the biases swapped
    leaves the model an RBM, and ``q(h_1 | v)`` is then the true posterior: every weight
    equals ``p(v) Z_top``, so the bound is the RBM's exact log-likelihood with zero spread."""
    model = _dbn(6, [4, 6], 0.8, 3)
    first, top = model.rbms
    with torch.no_grad():
        top.weight.copy_(first.weight.T)
        top.visible.bias.copy_(first.hidden.bias)
        top.hidden.bias.copy_(first.visible.bias)
    v = _binary(50, 6, 2)
    bound = dbn_log_likelihood_bound(model, v, v, samples=4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(bound.per_example, exact_log_likelihood(first, v), atol=1e-9)
    assert bound.standard_error < 1e-6


def test_bound_refuses_a_single_draw():
    with pytest.raises(ValueError, match="Invalid samples: 1 "):
        dbn_log_likelihood_bound(_dbn(3, [2, 2], 0.5, 0), _binary(2, 3, 0), _binary(2, 3, 0), samples=1)


def test_generated_frequencies_match_the_exact_marginal():
    """Gibbs in the top RBM then one top-down pass: the frequencies of the 8 visible states
    of a 3-3-2 DBN within 5 standard errors of the exact ``p(v)``."""
    model = _dbn(3, [3, 2], 1.0, 4)
    n = 40_000
    states, means = model.generate(n, 30, torch.Generator().manual_seed(0))
    exact = torch.exp(_brute_log_likelihood(model, all_binary(3)))
    codes = (states * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    frequency = torch.bincount(codes, minlength=8).double() / n
    assert bool(((frequency - exact).abs() < 5 * (exact * (1 - exact) / n).sqrt()).all())
    assert torch.allclose(means.mean(0), states.mean(0), atol=5 * 0.5 / n**0.5)  # E[v | h_1] averages to p


def test_mlp_seeded_from_a_dbn_computes_its_up_pass():
    """Centered layers and Gaussian visible units included: the MLP's sigmoid hidden
    layers, loaded from ``hidden_affines()``, give ``E[h_l | h_{l-1}]`` layer by layer."""
    model = _dbn(5, [4, 3], 0.7, 5, visible="gaussian", centered=True)
    with torch.no_grad():
        for rbm in model.rbms:
            rbm.visible_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(6))
            rbm.hidden_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(7))
    mlp = MLP(5, [4, 3], 2, activation="sigmoid").double()
    mlp.load_pretrained_layers([(a.T, c) for a, c in model.hidden_affines()])
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    hidden = x
    for block in mlp.hidden:
        hidden = block(hidden)
    assert torch.allclose(hidden, model.up(x, 2), atol=1e-12)


def test_up_and_down_check_the_depth():
    model = _dbn(3, [2], 0.5, 0)
    with pytest.raises(ValueError, match=r"Invalid depth: 2 \(expected 0 to 1\)"):
        model.up(_binary(1, 3, 0), 2)
    with pytest.raises(ValueError, match=r"Invalid depth: 0 \(expected 1 to 1\)"):
        model.truncated(0)


# ------------------------------------------------------------------ config


TINY = ["model={type: dbn, layers: [8, 6]}", "data.limit=200", "train.batch_size=25", "train.epochs=2",
        "train.metrics_examples=40", "threads=1", "device=cpu"]


@pytest.mark.parametrize("override, message", [
    ("[{}, {optimizer.lr: -1}]",
     "config key 'model.layer_overrides[1].optimizer.lr': invalid value -1; input should be greater than 0"),
    ("[{epochs: 0}]",
     "config key 'model.layer_overrides[0].epochs': invalid value 0; input should be greater than or equal to 1"),
    ("[{method: gibbs}]",
     "config key 'model.layer_overrides[0].method': invalid value 'gibbs'; accepted: 'cd', 'pcd' or 'pt'"),
    ("[{batch_size: 10}]",
     "config key 'model.layer_overrides[0].batch_size': not a per-layer key; accepted: method, k, pt, "
     "n_chains, epochs, optimizer, schedule, gradient, clip_grad_norm, clip_grad_value"),
    ("[{}, {}, {}]", "config key 'model.layer_overrides': 3 mappings for 2 layers"),
])
def test_layer_overrides_are_validated_as_train_sections(override, message):
    with pytest.raises(ConfigError, match=f"^{_escape(message)}"):
        load_config(None, [*TINY, f"model.layer_overrides={override}"])


def test_layer_overrides_are_validated_again_against_the_runs_own_train_section():
    """``optimizer.momentum`` is fine for the default SGD, not for the run's Adam."""
    config = load_config(None, [*TINY, "train.optimizer={name: adam, lr: 0.001}",
                                "model.layer_overrides=[{}, {optimizer.momentum: 0.5}]"])
    with pytest.raises(ConfigError, match=_escape("config key 'model.layer_overrides[1].optimizer': 'momentum' "
                                                  "is not an argument of torch.optim.Adam")):
        Fit(config)


def test_early_stopping_is_refused():
    with pytest.raises(ConfigError, match="config key 'train.early_stopping': not available for model.type 'dbn'"):
        Fit(load_config(None, [*TINY, "train.early_stopping={}"]))


def _escape(text):
    import re

    return re.escape(text)


# ------------------------------------------------------------------ training


def test_layer_overrides_set_each_layers_epochs_method_and_rate():
    config = load_config(None, [*TINY, "model.layer_overrides=[{}, {epochs: 3, method: cd, optimizer.lr: 0.2}]"])
    session = Fit(config)
    assert [(s.name, s.epochs) for s in session.stages] == [("layer1", 2), ("layer2", 3)]
    first, second = (stage.build_step() for stage in session.stages)
    assert type(first.objective.inner.sampler).__name__ == "PersistentChains"
    assert type(second.objective.inner.sampler).__name__ == "ContrastiveChains"
    assert second.optimizer.param_groups[0]["momentum"] == first.optimizer.param_groups[0]["momentum"]
    assert (first.lr, second.lr) == (config.train.optimizer.lr, 0.2)
    # each step updates its own layer only
    assert {id(p) for g in second.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in session.model.rbms[1].parameters()}


def test_one_layer_dbn_trains_exactly_as_an_rbm():
    rbm = Fit(load_config(None, ["model.n_hidden=8", *TINY[1:]]))
    dbn = Fit(load_config(None, ["model={type: dbn, layers: [8]}", *TINY[1:]]))
    rbm.run()
    dbn.run()
    for key, value in rbm.model.state_dict().items():
        assert torch.equal(dbn.model.rbms[0].state_dict()[key], value), key


def test_skip_to_stage_trains_that_stage_alone():
    """What the zoo's calibration relies on: after ``skip_to_stage(1)`` only layer 2 learns."""
    session = Fit(load_config(None, TINY))
    before = [copy.deepcopy(rbm.state_dict()) for rbm in session.model.rbms]
    session.skip_to_stage(1)
    session.run()
    assert session.epochs_done == sum(s.epochs for s in session.stages)
    assert all(torch.equal(v, before[0][k]) for k, v in session.model.rbms[0].state_dict().items())
    assert not torch.equal(session.model.rbms[1].weight, before[1]["weight"])
    with pytest.raises(ValueError, match=r"stage 2 does not exist: this run has stages 0 to 1 \(layer1, layer2\)"):
        session.skip_to_stage(2)


def test_upper_layers_start_from_the_data_they_see():
    """Layer 2's visible biases are the log-odds of ``E[h_1]`` over the training data, set
    once when its stage starts (a rebuilt step leaves trained biases alone)."""
    session = Fit(load_config(None, TINY))
    model = session.model
    assert model.data_initialised.tolist() == [True, False]
    session.stages[1].build_step()
    mean = model.up(session.task.train_x, 1).mean(0).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(model.rbms[1].visible.bias, torch.log(mean / (1 - mean)), atol=1e-5)
    with torch.no_grad():
        model.rbms[1].visible.bias.add_(1.0)
    session.stages[1].build_step()
    assert torch.allclose(model.rbms[1].visible.bias, torch.log(mean / (1 - mean)) + 1.0, atol=1e-5)


@pytest.mark.parametrize("propagate", ["samples", "probabilities"])
def test_greedy_training_resumed_in_the_middle_of_layer_2_ends_bit_for_bit(propagate):
    """Stopped inside layer 2's first and second epochs (PCD chains, the propagation
    draws and the data order all in flight), restored into a fresh session: the same
    losses and exactly the same weights as the uninterrupted run."""
    config = load_config(None, [*TINY, f"model.propagate={propagate}", "eval.every=1",
                                "eval.quick_ais={runs: 4, betas: 30}", "eval.exact_max_units=6"])
    full = Fit(config)
    full.run()
    per_epoch = full.batches.per_epoch
    for stop in (2 * per_epoch + 3, 3 * per_epoch + 1):
        cut = Fit(config)
        with pytest.raises(FitInterrupted):
            cut.run(should_stop=lambda cut=cut, stop=stop: cut.state.step == stop)
        assert cut.state.stage == 1
        state = copy.deepcopy(cut.state_dict())
        assert_resumes_exactly(config, state, full)


def test_in_training_metrics_give_the_likelihood_of_the_stack_built_so_far():
    config = load_config(None, [*TINY, "eval.every=1", "eval.exact_max_units=8"])
    session = Fit(config)
    session.run()
    layer1, layer2 = session.history[1], session.history[3]
    assert (layer1["stage"], layer2["stage"]) == ("layer1", "layer2")
    assert "val_log_likelihood" in layer1 and "val_log_likelihood_bound" in layer2  # exact, then the bound
    monitor = session.task.monitor_val
    exact = _brute_log_likelihood(session.model.double(), monitor.double()).mean().item()
    bound = dbn_log_likelihood_bound(session.model, monitor.double(), session.task.data.train, samples=2000,
                                     exact_max_units=8, generator=torch.Generator().manual_seed(0))
    assert bound.mean <= exact + 3 * bound.standard_error
    assert layer2["val_log_likelihood_bound"] <= exact + 0.05  # 10 draws: a little looser still
    assert math.isfinite(layer2["bound_log_z"])


# ------------------------------------------------------------------ command line


@pytest.mark.slow
def test_command_line_trains_samples_evaluates_and_seeds_an_mlp(tmp_path, capsys):
    """``train`` (the dbn-digits preset, briefly), ``sample``, ``evaluate`` (a 6-unit top RBM:
    exact log Z), ``lr-find`` on layer 1, then an MLP whose first two layers start from the
    DBN's (the ``model.pretrained`` path, frozen so the weights stay comparable)."""
    import json

    import numpy as np

    from boltzkit.cli import main
    from boltzkit.train import train

    out = tmp_path / "dbn"
    fast = ["--set", "train.epochs=2", "--set", "model.layers=[12, 6]", "--set", "train.metrics_examples=50",
            "--set", "threads=1", "--set", "device=cpu", "--quiet"]
    assert main(["train", "dbn-digits", "--out", str(out), *fast]) == 0
    for name in ("samples.png", "filters.png", "curves.png", "model.safetensors"):
        assert (out / name).is_file(), name
    assert main(["sample", str(out), "--n", "9", "--steps", "20", "--seed", "3"]) == 0
    samples = np.load(out / "samples-n9-k20-s3.npz")["samples"]
    assert samples.shape == (9, 64) and set(np.unique(samples)) <= {0.0, 1.0}
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "validation", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "log-likelihood lower bound" in printed and "top RBM log Z, exact" in printed
    results = json.loads((out / "evaluation.json").read_text())
    assert results["layers"] == [64, 12, 6] and results["bound_samples"] == 100
    assert main(["evaluate", str(out), "--reverse-examples", "5"]) == 2
    assert main(["lr-find", "dbn-digits", "--out", str(tmp_path / "lr"), "--iterations", "20", "--probe", "64",
                 *fast]) == 0
    assert json.loads((tmp_path / "lr" / "lr_find.json").read_text())["suggestion"] > 0

    from boltzkit.train.run_dir import load_run_model

    dbn = load_run_model(out).model
    mlp = train(load_config(None, ["model={type: mlp, hidden_layers: [12, 6, 10], activation: sigmoid}",
                                   f"model.pretrained={out}", "model.freeze_pretrained=true",
                                   "data.binarize=none", "train.epochs=1", "threads=1", "device=cpu",
                                   "train.metrics_examples=50"]), tmp_path / "mlp", progress=False).model
    for block, rbm in zip(mlp.hidden, dbn.rbms, strict=False):
        assert torch.equal(block[0].weight, rbm.weight.T) and torch.equal(block[0].bias, rbm.hidden.bias)


def test_gaussian_visible_dbn_records_the_data_statistics_and_bounds_a_density():
    """Real-valued (standardized) digits: the run keeps the features' mean and spread (for
    images of samples), and the bound is a finite log density."""
    config = load_config(None, [*TINY, "model.visible=gaussian", "data.standardize=true", "data.binarize=none",
                                "train.optimizer={name: sgd, lr: 0.002}", "train.epochs=1"])
    session = Fit(config)
    session.run()
    assert len(session.task.data_info["feature_mean"]) == 64
    results, report = session.task.evaluate(session.model, "validation", ais_runs=4, ais_betas=50, samples=4)
    assert math.isfinite(results["bound_mean"]) and results["top_log_z_method"] == "exact"
    assert "log-likelihood lower bound" in report
