"""DBNs whose top RBM sees the label (Hinton, Osindero & Teh 2006) and up-down fine-tuning:
the mixed visible layer's maths against enumeration, clamped generation against the exact
``p(v | y)``, the generative classifier against brute-force free energies, the up-down
gradients against the delta rules, resume in the middle of the up-down stage, and the
command line's ``--label``."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from boltzkit.config import load_config
from boltzkit.errors import ConfigError, DataError
from boltzkit.estimate.exact import exact_log_partition
from boltzkit.models import RBM
from boltzkit.models.dbn import DBN
from boltzkit.objectives.free_energy_gap import FreeEnergyGap
from boltzkit.objectives.updown import UpDown
from boltzkit.sampling.gibbs import ContrastiveChains
from boltzkit.train import Fit
from boltzkit.train.fit import FitInterrupted
from boltzkit.units import LabelledUnits
from helpers import all_binary, assert_resumes_exactly, brute_free_energy


def _randomized(model, scale, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def _labelled_states(n_binary, classes):
    """Every ``[h, e_y]``: all binary ``h`` (slowest) times every class, ``(2^n * classes, n + classes)``."""
    h = all_binary(n_binary).repeat_interleave(classes, 0)
    return torch.cat([h, torch.eye(classes, dtype=torch.float64).repeat(2**n_binary, 1)], 1)


def _codes(states):
    """Binary rows as integers, most significant unit first."""
    return (states * 2 ** torch.arange(states.shape[1] - 1, -1, -1, dtype=states.dtype)).sum(1).long()


# ------------------------------------------------------------------ the mixed visible layer


def test_labelled_units_partition_and_mean_equal_enumeration():
    units = _randomized(LabelledUnits(5, classes=3), 0.8, 0).double()
    a = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    states = _labelled_states(2, 3)
    assert torch.equal(units.all_states(0, int(units.configurations)), states)
    log_f = -units.self_energy(states)[None] + a @ states.T  # (B, S)
    assert torch.allclose(units.log_partition(a), torch.logsumexp(log_f, 1), atol=1e-12)
    assert torch.allclose(units.mean(a), torch.softmax(log_f, 1) @ states, atol=1e-12)
    beta = 0.4  # tempered: p proportional to exp(beta (-self_energy + x . a))
    assert torch.allclose(units.mean(a, beta), torch.softmax(beta * log_f, 1) @ states, atol=1e-12)


def test_labelled_units_samples_are_one_hot_and_follow_the_conditional():
    units = _randomized(LabelledUnits(4, classes=3), 0.8, 2).double()
    n = 20_000
    a = torch.randn(1, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64).expand(n, 4)
    x = units.sample(a, torch.Generator().manual_seed(4))
    assert bool((x[:, 1:].sum(1) == 1).all()) and set(x.unique().tolist()) == {0.0, 1.0}
    p = units.mean(a[:1])[0]
    assert bool(((x.mean(0) - p).abs() < 5 * (p * (1 - p) / n).sqrt()).all())


def test_labelled_units_biases_from_data_means_reproduce_them():
    units = LabelledUnits(5, classes=3).double()
    mean = torch.tensor([0.2, 0.7, 0.5, 0.3, 0.2], dtype=torch.float64)
    units.init_bias_from_mean(mean)
    assert torch.allclose(units.mean(torch.zeros(5, dtype=torch.float64)), mean, atol=1e-12)


@pytest.mark.parametrize("centered", [False, True])
def test_top_rbm_free_energy_and_log_z_equal_brute_force(centered):
    rbm = _randomized(RBM(5, 3, "labelled", centered=centered, visible_options={"classes": 2}).double(), 0.7, 5)
    if centered:
        with torch.no_grad():
            rbm.visible_offset.uniform_(0.1, 0.9, generator=torch.Generator().manual_seed(6))
            rbm.hidden_offset.uniform_(0.1, 0.9, generator=torch.Generator().manual_seed(7))
    states = _labelled_states(3, 2)
    assert torch.allclose(rbm.free_energy(states), brute_free_energy(rbm, states), atol=1e-10)
    assert exact_log_partition(rbm) == pytest.approx(torch.logsumexp(-brute_free_energy(rbm, states), 0).item(),
                                                     abs=1e-10)


def test_invalid_labelled_layers_and_dbns_are_refused():
    with pytest.raises(ValueError, match="Invalid labelled layer: 3 units for 3 classes"):
        LabelledUnits(3, classes=3)
    with pytest.raises(ValueError, match="Invalid DBN labels: 10 classes with 1 layer\\(s\\) over gaussian units"):
        DBN(4, [3], visible="gaussian", classes=10)
    with pytest.raises(ValueError, match="this DBN was trained without labels"):
        DBN(4, [3]).generate(2, 1, torch.Generator(), label=0)
    with pytest.raises(ValueError, match="Invalid label: 0..3 \\(expected 0 to 2\\)"):
        DBN(4, [3], classes=3).top_visible(torch.zeros(2, 4), torch.tensor([0, 3]))


# ------------------------------------------------------------------ labels in a DBN


def _labelled_dbn(centered=False, seed=8, scale=1.0):
    model = _randomized(DBN(3, [3, 2], classes=3, centered=centered).double(), scale, seed)
    if centered:
        with torch.no_grad():
            for rbm in model.rbms:
                rbm.visible_offset.uniform_(0.1, 0.9, generator=torch.Generator().manual_seed(seed))
                rbm.hidden_offset.uniform_(0.1, 0.9, generator=torch.Generator().manual_seed(seed + 1))
    return model


@pytest.mark.parametrize("centered", [False, True])
def test_clamped_top_is_the_top_rbm_given_the_label(centered):
    """``F_clamped(h) - F_top([h, e_y])`` is one constant over every ``h``: the same ``p(h | y)``."""
    model = _labelled_dbn(centered)
    h = all_binary(3)
    for label in range(3):
        y = F.one_hot(torch.full((8,), label), 3).double()
        difference = model.clamped_top(label).free_energy(h) - brute_free_energy(model.top, torch.cat([h, y], 1))
        assert torch.allclose(difference, difference[0].expand(8), atol=1e-10)


def test_label_clamped_samples_follow_the_exact_conditional():
    """A 3-3-3 DBN with 3 labels set by hand so that label ``y`` switches on top unit ``y``,
    which switches on ``h_1`` unit ``y``, which switches on pixel ``y``: the frequencies of the
    8 visible states drawn with each label clamped lie within 5 standard errors of the exact
    ``p(v | y) = sum_h1 p(h_1 | y) p(v | h_1)``, whose mode is the label's own pixel."""
    model = _randomized(DBN(3, [3, 3], classes=3).double(), 0.3, 17)
    eye = torch.eye(3, dtype=torch.float64)
    with torch.no_grad():
        model.top.weight.copy_(4.0 * torch.cat([eye, eye]))
        model.top.hidden.bias.fill_(-4.0)
        model.top.visible.bias[:3] = -2.0
        model.rbms[0].weight.copy_(6.0 * eye)
        model.rbms[0].visible.bias.fill_(-3.0)
    h1, v = all_binary(3), all_binary(3)
    logits = model.rbms[0].visible.bias + h1 @ model.rbms[0].weight.T  # (H1, 3)
    log_v_given_h = v @ logits.T - F.softplus(logits).sum(1)[None]  # (V, H1)
    n = 20_000
    for label in range(3):
        y = F.one_hot(torch.full((8,), label), 3).double()
        log_h_given_y = torch.log_softmax(-brute_free_energy(model.top, torch.cat([h1, y], 1)), 0)
        exact = torch.exp(torch.logsumexp(log_v_given_h + log_h_given_y[None], 1))
        assert exact.argmax().item() == 4 >> label  # e_label, most significant pixel first
        states, _ = model.generate(n, 20, torch.Generator().manual_seed(label), label=label)
        frequency = torch.bincount(_codes(states), minlength=8).double() / n
        assert bool(((frequency - exact).abs() < 5 * (exact * (1 - exact) / n).sqrt()).all()), label


def test_generative_classifier_takes_the_lowest_brute_force_free_energy():
    model = _labelled_dbn(centered=True)
    v = (torch.rand(12, 3, generator=torch.Generator().manual_seed(9)) < 0.5).double()
    h = model.up(v, 1)
    brute = torch.stack([brute_free_energy(model.top, torch.cat(
        [h, F.one_hot(torch.full((12,), y), 3).double()], 1)) for y in range(3)], 1)
    assert torch.allclose(model.label_free_energies(h), brute, atol=1e-10)
    assert torch.equal(model.classify(v), brute.argmin(1))
    assert torch.allclose(model.top_free_energy(h), -torch.logsumexp(-brute, 1), atol=1e-10)


def test_bound_of_a_labelled_dbn_sums_the_labels_out():
    """With the labels summed out of the top RBM, importance weights over every ``h_1`` times
    ``q`` give the exact ``log p(v)``: ``sum_h1 p(v | h1) sum_y p(h1, y)``."""
    model = _labelled_dbn()
    v, h1 = all_binary(3), all_binary(3)
    rows, latents = v.repeat_interleave(8, 0), h1.repeat(8, 1)
    log_w = model.log_joint_over_posterior(rows, [latents]).reshape(8, 8)
    log_q = model.recognition_log_prob(0, latents, rows).reshape(8, 8)
    log_z = exact_log_partition(model.top)
    log_p = torch.logsumexp(log_w + log_q, 1) - log_z
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(0.0, abs=1e-10)  # a distribution over v
    bottom = model.rbms[0]
    logits = bottom.visible.bias + h1 @ bottom.weight.T
    log_v_given_h = v @ logits.T - F.softplus(logits).sum(1)[None]
    log_h = -model.top_free_energy(h1) - log_z
    assert torch.allclose(log_p, torch.logsumexp(log_v_given_h + log_h[None], 1), atol=1e-10)


def test_mlp_affines_leave_the_label_out_and_follow_the_recognition_weights():
    model = _randomized(DBN(4, [3, 2], classes=2, recognition=True).double(), 0.7, 10)
    v = torch.rand(5, 4, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    (a1, c1), (a2, c2) = model.hidden_affines()
    assert a2.shape == (3, 2)
    h1 = torch.sigmoid(v @ a1 + c1)
    assert torch.allclose(h1, model.up(v, 1))  # tied: the RBMs' own weights
    assert torch.allclose(torch.sigmoid(h1 @ a2 + c2), model.top.hidden_mean(torch.cat([h1, torch.zeros(5, 2,
                          dtype=torch.float64)], 1)))
    model.untie()
    assert torch.allclose(model.up(v, 1), h1)  # untie copies: the same function
    with torch.no_grad():
        model.recognition[0].weight.add_(0.5)
    generative = model.down(torch.ones(5, 3, dtype=torch.float64), 1, torch.Generator().manual_seed(0))[1]
    assert torch.allclose(model.hidden_affines()[0][0], model.recognition[0].weight)
    assert torch.allclose(model.up(v, 1), torch.sigmoid(v @ model.recognition[0].weight + model.recognition[0].bias))
    assert torch.allclose(generative, model.rbms[0].visible_mean(torch.ones(5, 3, dtype=torch.float64)))
    model.untie()  # a second call keeps the trained recognition weights
    assert torch.allclose(model.hidden_affines()[0][0], model.recognition[0].weight)


# ------------------------------------------------------------------ up-down


@pytest.mark.parametrize("classes", [0, 2])
def test_updown_gradients_are_the_wake_sleep_delta_rules(classes):
    """A 4-3-3-2 DBN, untied: the surrogate's gradients are the wake delta rule on the
    generative weights, CD on the top RBM from the wake states (labels included) and the
    sleep delta rule on the recognition weights; the RBMs' hidden biases below the top get none."""
    model = _randomized(DBN(4, [3, 3, 2], classes=classes, recognition=True).double(), 0.8, 12)
    model.untie()
    with torch.no_grad():  # recognition weights apart from the generative ones
        for layer in model.recognition:
            layer.weight.add_(torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(13),
                                          dtype=torch.float64))
    b = 7
    x = (torch.rand(b, 4, generator=torch.Generator().manual_seed(14)) < 0.5).double()
    y = F.one_hot(torch.arange(b) % 2, 2).double() if classes else torch.zeros(b, 0, dtype=torch.float64)
    objective = UpDown(FreeEnergyGap(ContrastiveChains(2, torch.Generator().manual_seed(15))),
                       torch.Generator().manual_seed(16))
    objective.loss(model, torch.cat([x, y], 1)).backward()
    wake, sleep = objective.wake, objective.sleep
    for layer in range(2):
        rbm, recognition = model.rbms[layer], model.recognition[layer]
        p = torch.sigmoid(rbm.visible.bias + wake[layer + 1] @ rbm.weight.T)
        assert torch.allclose(rbm.weight.grad, -(wake[layer] - p).T @ wake[layer + 1] / b, atol=1e-12)
        assert torch.allclose(rbm.visible.bias.grad, -(wake[layer] - p).mean(0), atol=1e-12)
        assert rbm.hidden.bias.grad is None
        q = torch.sigmoid(sleep[layer] @ recognition.weight + recognition.bias)
        assert torch.allclose(recognition.weight.grad, -sleep[layer].T @ (sleep[layer + 1] - q) / b, atol=1e-12)
        assert torch.allclose(recognition.bias.grad, -(sleep[layer + 1] - q).mean(0), atol=1e-12)
    top, negatives = model.top, objective.top.negatives
    positives = torch.cat([wake[-1], y], 1)
    m_data, m_model = top.hidden_mean(positives), top.hidden_mean(negatives)
    assert torch.allclose(top.weight.grad, -(positives.T @ m_data - negatives.T @ m_model) / b, atol=1e-12)
    assert torch.allclose(top.hidden.bias.grad, -(m_data - m_model).mean(0), atol=1e-12)
    assert torch.allclose(top.visible.bias.grad, -(positives - negatives).mean(0), atol=1e-12)
    # the sleep phase starts from the top RBM's negatives and ends in probabilities
    assert torch.equal(sleep[-1], negatives[:, :3])
    assert bool(((sleep[0] > 0) & (sleep[0] < 1)).all()) and set(sleep[1].unique().tolist()) <= {0.0, 1.0}


TINY = ["model={type: dbn, layers: [8, 6], labels: true, updown_epochs: 2, updown_k: 2, propagate: samples}",
        "data.limit=200", "train.batch_size=25", "train.epochs=1", "train.metrics_examples=40", "threads=1",
        "device=cpu", "train.method=cd"]


def test_updown_stage_resumed_in_the_middle_of_an_epoch_ends_bit_for_bit():
    """Stopped inside the up-down stage's first and second epochs (CD chains, wake and sleep
    draws and the data order in flight), restored into a fresh session: the same losses and
    exactly the same weights, recognition weights included."""
    config = load_config(None, TINY)
    full = Fit(config)
    full.run()
    assert [row["stage"] for row in full.history] == ["layer1", "layer2", "updown", "updown"]
    assert {"val_label_accuracy", "wake_nll", "sleep_nll"} <= set(full.history[-1])
    per_epoch = full.batches.per_epoch
    for stop in (2 * per_epoch + 3, 3 * per_epoch + 1):
        cut = Fit(config)
        with pytest.raises(FitInterrupted):
            cut.run(should_stop=lambda cut=cut, stop=stop: cut.state.step == stop)
        assert cut.stages[cut.state.stage].name == "updown"
        state = copy.deepcopy(cut.state_dict())
        assert_resumes_exactly(config, state, full)
    assert bool(full.model.untied)
    assert not torch.equal(full.model.recognition[0].weight, full.model.rbms[0].hidden_affine()[0])


def test_labels_need_labelled_data():
    with pytest.raises(DataError, match="model.labels is true and this data set has no labels"):
        Fit(load_config(None, [*TINY, "data.name=potts", "data.potts={length: 4, states: 2, examples: 100}"]))


def test_labels_over_a_one_layer_gaussian_dbn_are_refused():
    with pytest.raises(ConfigError, match="config key 'model.labels': true needs the top RBM's other visible "
                                          "units binary, and a one-layer DBN over gaussian units has none"):
        load_config(None, ["model={type: dbn, layers: [8], visible: gaussian, labels: true}"])


def test_a_dbn_without_recognition_weights_saves_the_keys_it_always_had():
    assert set(DBN(4, [3, 2]).state_dict()) == {
        f"rbms.{i}.{name}" for i in range(2) for name in
        ("weight", "visible_offset", "hidden_offset", "visible.bias", "hidden.bias")} | {"data_initialised"}
    assert {"untied", "recognition.0.weight"} <= set(DBN(4, [3, 2], recognition=True).state_dict())


def test_updown_keys_are_validated():
    with pytest.raises(ConfigError, match="model.updown_epochs"):
        load_config(None, [*TINY, "model.updown_epochs=-1"])
    with pytest.raises(ConfigError, match="model.updown_k"):
        load_config(None, [*TINY, "model.updown_k=0"])


# ------------------------------------------------------------------ command line


@pytest.mark.slow
def test_command_line_samples_by_label_and_refuses_what_it_cannot(tmp_path, capsys):
    import numpy as np

    from boltzkit.cli import main

    fast = ["--set", "train.epochs=1", "--set", "model.layers=[12, 6]", "--set", "train.metrics_examples=50",
            "--set", "threads=1", "--set", "device=cpu", "--set", "data.limit=300", "--quiet"]
    labelled, plain = tmp_path / "labelled", tmp_path / "plain"
    assert main(["train", "dbn-digits", "--out", str(labelled), "--set", "model.labels=true", *fast]) == 0
    assert (labelled / "samples_by_label.png").is_file()
    assert main(["sample", str(labelled), "--n", "6", "--steps", "5", "--label", "3"]) == 0
    assert np.load(labelled / "samples-n6-k5-s0-y3.npz")["samples"].shape == (6, 64)
    capsys.readouterr()
    assert main(["sample", str(labelled), "--n", "2", "--steps", "2", "--label", "10"]) == 2
    assert "--label: 10 is not a class of" in capsys.readouterr().err
    assert main(["train", "dbn-digits", "--out", str(plain), *fast]) == 0
    assert not (plain / "samples_by_label.png").exists()
    capsys.readouterr()
    assert main(["sample", str(plain), "--n", "2", "--steps", "2", "--label", "1"]) == 2
    assert "was trained without labels (model.labels: false)" in capsys.readouterr().err
    rbm = tmp_path / "rbm"
    assert main(["train", "rbm-digits", "--out", str(rbm), "--set", "model.n_hidden=4", *fast[:2], *fast[6:]]) == 0
    capsys.readouterr()
    assert main(["sample", str(rbm), "--n", "2", "--steps", "2", "--label", "1"]) == 2
    assert "holds a model.type 'rbm', which cannot be sampled by label" in capsys.readouterr().err


def test_up_down_refuses_a_dbn_whose_recognition_weights_are_tied():
    from boltzkit.models.dbn import DBN
    from boltzkit.objectives.updown import UpDown

    model = DBN(4, [3, 2], generator=torch.Generator().manual_seed(0), recognition=True)
    objective = UpDown(FreeEnergyGap(ContrastiveChains(1, torch.Generator())), torch.Generator())
    with pytest.raises(ValueError, match="up-down needs untied recognition weights"):
        objective.loss(model, torch.zeros(2, 4))
    model.untie()
    assert torch.isfinite(objective.loss(model, torch.zeros(2, 4)))
