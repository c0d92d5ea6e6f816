"""Autoencoders: loss gradients against finite differences, corruption statistics, the KL
sparsity penalty against its formula, tied decoders as adjoints, greedy stages, seeding an
MLP through ``model.pretrained``, evaluation, the range test's proxy, and the errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from boltzkit.cli import main
from boltzkit.config import load_config
from boltzkit.errors import ConfigError, DataError
from boltzkit.models.autoencoder import Autoencoder, bernoulli_cross_entropy, corrupt, kl_sparsity
from boltzkit.objectives.reconstruction import Reconstruction
from boltzkit.train import Fit, train

TINY = ["train.epochs=1", "data.limit=150", "train.metrics_examples=40", "threads=1", "data.binarize=none"]


def _randomized(model: Autoencoder, seed: int, scale: float = 0.7) -> Autoencoder:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def _finite_difference_gradients(loss_of, params, eps=1e-6):
    """Central differences of the scalar ``loss_of()`` for every entry of ``params``."""
    grads = []
    with torch.no_grad():
        for p in params:
            grad = torch.zeros_like(p)
            flat, out = p.view(-1), grad.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                up = loss_of().item()
                flat[i] = old - eps
                down = loss_of().item()
                flat[i] = old
                out[i] = (up - down) / (2 * eps)
            grads.append(grad)
    return grads


VARIANTS = {
    # name: (model, objective options, input shape)
    "dense, untied, cross-entropy, masking": (
        lambda: Autoencoder(5, [3], tied=False), dict(corruption="masking", level=0.3), (6, 5)),
    "dense, tied, cross-entropy, gaussian noise, sparse": (
        lambda: Autoencoder(5, [4], tied=True),
        dict(corruption="gaussian", level=0.4, sparsity_target=0.2, sparsity_weight=0.7), (6, 5)),
    "dense, 2 layers, tanh, squared error": (
        lambda: Autoencoder(5, [4, 3], activation="tanh", reconstruction="gaussian", tied=True),
        dict(corruption="gaussian", level=0.2), (6, 5)),
    "dense, 2 layers, sigmoid, sparse on both, untied": (
        lambda: Autoencoder(5, [4, 3], tied=False),
        dict(corruption="masking", level=0.2, sparsity_target=0.1, sparsity_weight=0.3), (6, 5)),
    "layer 2 alone, sigmoid codes, cross-entropy": (
        lambda: Autoencoder(5, [4, 3], tied=True),
        dict(corruption="masking", level=0.25, depth=2, sparsity_weight=0.5, sparsity_target=0.3), (6, 4)),
    "layer 2 alone, tanh codes, squared error": (
        lambda: Autoencoder(5, [4, 3], activation="tanh", tied=False),
        dict(corruption="gaussian", level=0.3, depth=2), (6, 4)),
    "conv, untied, cross-entropy": (
        lambda: Autoencoder(20, [2], architecture="conv", image_shape=(5, 4), tied=False),
        dict(corruption="masking", level=0.2), (3, 20)),
    "conv, 2 layers, tied, squared error": (
        lambda: Autoencoder(16, [2, 2], architecture="conv", image_shape=(4, 4), reconstruction="gaussian"),
        dict(corruption="gaussian", level=0.3), (3, 16)),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_loss_gradients_equal_finite_differences(name):
    """float64: autograd of every loss variant (the same corruption at each evaluation)
    against central differences, every parameter entry."""
    make, options, shape = VARIANTS[name]
    model = _randomized(make().double(), seed=len(name))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    level = options.pop("level")
    options = {"level": level, **options}

    def loss_of():
        objective = Reconstruction(options["corruption"], options["level"], torch.Generator().manual_seed(2),
                                   options.get("sparsity_target", 0.05), options.get("sparsity_weight", 0.0),
                                   options.get("depth"))
        return objective.loss(model, x)

    params = [p for p in model.parameters()]
    model.zero_grad()
    loss_of().backward()
    numeric = _finite_difference_gradients(loss_of, params)
    for (key, p), expected in zip(model.named_parameters(), numeric, strict=True):
        assert p.grad is not None or not expected.abs().max() > 0, key
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.allclose(got, expected, atol=1e-7, rtol=1e-6), key


def test_masking_zeroes_its_fraction_within_the_standard_error():
    level, n = 0.3, 200_000
    x = torch.ones(n)
    zeroed = (corrupt(x, "masking", level, torch.Generator().manual_seed(0)) == 0).double().mean().item()
    assert abs(zeroed - level) < 4 * math.sqrt(level * (1 - level) / n)
    x = torch.rand(n, generator=torch.Generator().manual_seed(1)) + 0.1
    masked = corrupt(x, "masking", level, torch.Generator().manual_seed(2))
    assert torch.equal(masked[masked != 0], x[masked != 0])  # kept values are unchanged


def test_gaussian_corruption_adds_noise_of_the_given_std():
    std, n = 0.4, 200_000
    x = torch.full((n,), 0.5, dtype=torch.float64)
    noise = corrupt(x, "gaussian", std, torch.Generator().manual_seed(0)) - x
    assert abs(noise.mean().item()) < 4 * std / math.sqrt(n)
    # the sample variance's standard error is std^2 sqrt(2 / (n - 1)) for Gaussian noise
    assert abs(noise.var().item() - std**2) < 4 * std**2 * math.sqrt(2 / (n - 1))


def test_no_corruption_returns_the_input_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    x = torch.rand(4, 3)
    assert corrupt(x, "none", 0.5, g) is x and corrupt(x, "masking", 0.0, g) is x
    assert torch.equal(g.get_state(), state)


def test_corruption_is_reproducible_from_the_generator_state():
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    x = torch.rand(5, 6)
    first = corrupt(x, "masking", 0.5, g)
    g.set_state(state)
    assert torch.equal(corrupt(x, "masking", 0.5, g), first)
    assert not torch.equal(corrupt(x, "masking", 0.5, g), first)


def test_kl_sparsity_equals_the_direct_formula_and_stays_finite_at_saturation():
    a = torch.randn(7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    rho = 0.1
    q = torch.sigmoid(a).mean(0)
    direct = (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()
    assert kl_sparsity(a, rho).item() == pytest.approx(direct.item(), rel=1e-12)
    dead = torch.full((3, 2), -800.0, dtype=torch.float64)  # sigmoid underflows to 0: the formula is inf
    penalty = kl_sparsity(dead, rho).item()
    assert math.isfinite(penalty) and penalty == pytest.approx(2 * rho * 800.0, rel=0.01)


def test_cross_entropy_from_logits_equals_the_direct_formula_and_stays_finite():
    r = torch.tensor([[-3.0, 0.5, 2.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.3, 1.0]], dtype=torch.float64)
    p = torch.sigmoid(r)
    direct = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum()
    assert bernoulli_cross_entropy(r, x).item() == pytest.approx(direct.item(), rel=1e-12)
    assert bernoulli_cross_entropy(torch.tensor([[-200.0]]), torch.tensor([[1.0]])).item() == 200.0


@pytest.mark.parametrize("make", [
    lambda: Autoencoder(6, [4], tied=True),
    lambda: Autoencoder(30, [3], architecture="conv", image_shape=(5, 6), kernel_size=3, tied=True),
], ids=["dense", "conv"])
def test_a_tied_decoder_is_the_adjoint_of_the_encoder(make):
    """``<enc(x) - b, g> = <x, dec(g) - c>``: the decoder applies ``W^T`` (the transposed
    convolution) of the same weights."""
    model = _randomized(make().double(), 3)
    layer = model.layers[0]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, *layer.in_shape, generator=g, dtype=torch.float64)
    code = torch.randn(2, *layer.out_shape, generator=g, dtype=torch.float64)
    bias_out = layer.encoder.bias.reshape(-1, *[1] * (len(layer.out_shape) - 1))
    bias_in = layer.decoder_bias.reshape(-1, *[1] * (len(layer.in_shape) - 1))
    left = ((layer.encode(x) - bias_out) * code).sum()
    right = (x * (layer.decode(code) - bias_in)).sum()
    assert left.item() == pytest.approx(right.item(), rel=1e-12)
    assert not any("decoder_weight" in key for key in model.state_dict())


def test_greedy_stages_train_only_their_layer_and_metrics_follow_the_stack():
    config = load_config(None, [*TINY, "train.epochs=1", "model={type: autoencoder, hidden_layers: [10, 6], "
                                "stacked: true, joint_epochs: 1, corruption: masking}"])
    session = Fit(config)
    snapshots = []
    session.run(on_epoch_end=lambda epoch, metrics: snapshots.append(
        {k: v.clone() for k, v in session.model.state_dict().items()}))
    assert [row["stage"] for row in session.history] == ["layer1", "layer2", "joint"]
    first, second, joint = snapshots
    layer1 = [k for k in first if k.startswith("layers.0.")]
    assert all(torch.equal(first[k], second[k]) for k in layer1)  # stage 2 left layer 1 alone
    assert not all(torch.equal(second[k], joint[k]) for k in layer1)  # the joint stage moved it
    # layer-1 metrics reconstruct through layer 1 only; later ones through both layers
    model = session.task.build_model()
    model.load_state_dict(first)
    x = session.task.monitor["val"]
    with torch.no_grad():
        expected = model.reconstruction_loss(x, 1).mean().item()
    assert session.history[0]["val_reconstruction_loss"] == pytest.approx(expected, rel=1e-6)


def test_an_mlp_seeded_from_a_stacked_autoencoder_computes_its_codes(tmp_path):
    out = tmp_path / "sda"
    train(load_config(None, [*TINY, "model={type: autoencoder, hidden_layers: [12, 8], stacked: true, "
                                    "corruption: masking}"]), out, progress=False)
    from boltzkit.train.run_dir import load_run_model

    encoder = load_run_model(out).model
    mlp = Fit(load_config(None, [*TINY, f"model={{type: mlp, hidden_layers: [12, 8, 5], activation: sigmoid, "
                                        f"pretrained: {out}}}"]))
    x = mlp.task.train_x[:30]
    with torch.no_grad():
        codes = mlp.model.hidden[1](mlp.model.hidden[0](x))
        assert torch.equal(codes, encoder.encode(x))


def test_seeding_an_mlp_of_another_activation_or_from_a_conv_encoder_is_refused(tmp_path):
    out = tmp_path / "ae"
    train(load_config(None, [*TINY, "model={type: autoencoder, hidden_layers: [8]}"]), out, progress=False)
    with pytest.raises(DataError, match=f"{out}: its encoder computes sigmoid units, and model.activation "
                                        "is 'relu'; seeded layers must compute the same function: set "
                                        "model.activation=sigmoid"):
        Fit(load_config(None, [*TINY, f"model={{type: mlp, hidden_layers: [8], pretrained: {out}}}"]))
    conv = tmp_path / "conv"
    train(load_config(None, [*TINY, "model={type: autoencoder, architecture: conv, channels: [2]}"]), conv,
          progress=False)
    with pytest.raises(DataError, match="a convolutional encoder cannot seed an MLP's dense layers"):
        Fit(load_config(None, [*TINY, f"model={{type: mlp, hidden_layers: [8], activation: sigmoid, "
                                      f"pretrained: {conv}}}"]))


def test_evaluate_reports_the_clean_reconstruction_loss_with_its_standard_error(tmp_path, capsys):
    out = tmp_path / "ae"
    train(load_config(None, [*TINY, "model={type: autoencoder, hidden_layers: [8], corruption: gaussian, "
                                    "corruption_level: 0.2, reconstruction: gaussian}"]), out, progress=False)
    assert main(["evaluate", str(out), "--quiet"]) == 0
    results = json.loads((out / "evaluation.json").read_text())
    from boltzkit.data import load_dataset
    from boltzkit.train.run_dir import load_run_model

    trained = load_run_model(out)
    test = load_dataset(trained.config.data, trained.config.seed, unit_interval=False).test
    with torch.no_grad():
        losses = 0.5 * (trained.model(test) - test).pow(2).sum(1)
    assert results["examples"] == len(test)
    assert results["reconstruction_loss"] == pytest.approx(losses.mean().item(), rel=1e-5)
    assert results["reconstruction_loss_stderr"] == pytest.approx(
        losses.std().item() / len(test) ** 0.5, rel=1e-5)
    assert main(["sample", str(out)]) == 2  # not a generative model
    assert "holds a model.type 'autoencoder', which cannot be sampled" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--k", "20", "--quiet"]) == 2  # a VAE's option, not ignored
    assert ("boltzkit evaluate: --k does not apply to model.type 'autoencoder' (its options: none)"
            in capsys.readouterr().err)


def test_the_range_test_proxy_corrupts_its_probe_the_same_way_every_call(tmp_path):
    from boltzkit.train.lr_find_run import find_lr

    config = load_config("ae-digits", ["threads=1", "model.hidden_layers=[16]"])
    session = Fit(config)
    probe = session.task.probe(64)
    first = session.task.proxy_loss(session.model, probe).item()
    assert session.task.proxy_loss(session.model, probe).item() == first
    result, _ = find_lr(config, tmp_path, iterations=20, probe=64, progress=False)
    assert len(result.lrs) == 20 and result.losses[0] == pytest.approx(first, rel=1e-6)


@pytest.mark.parametrize("overrides, message", [
    (["model.corruption=masking", "model.corruption_level=1.5"],
     "config key 'model.corruption_level': masking zeroes each input with probability corruption_level; "
     "accepted: 0 <= corruption_level < 1, got 1.5"),
    (["model.activation=relu", "model.sparsity_weight=0.1"],
     "config key 'model.sparsity_weight': the KL sparsity penalty needs sigmoid units"),
    (["model.joint_epochs=2"], "config key 'model.joint_epochs': joint_epochs \\(2\\) fine-tunes a greedily "
                               "trained stack; set model.stacked=true"),
    (["model.kernel_size=4"], "config key 'model.kernel_size': expected an odd kernel size"),
    (["model.hidden_layers=[8, 0]"], "config key 'model.hidden_layers': expected at least one layer, each >= 1"),
    (["model.reconstruction=poisson"], "config key 'model.reconstruction': invalid value 'poisson'; "
                                       "accepted: 'bernoulli' or 'gaussian'"),
])
def test_invalid_settings_name_the_key_and_what_is_accepted(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("ae-digits", overrides)


def test_a_convolutional_autoencoder_needs_images():
    with pytest.raises(ConfigError, match="config key 'model.architecture': conv needs image-shaped data, "
                                          "and these 6 features have no image shape"):
        Fit(load_config(None, [*TINY, "data.name=potts", "data.potts={length: 3, states: 2}",
                               "model={type: autoencoder, architecture: conv}"]))


@pytest.mark.parametrize("build, message", [
    (lambda: Autoencoder(4, [3], architecture="rnn"), "unknown architecture 'rnn'"),
    (lambda: Autoencoder(4, []), "Invalid sizes: 4 features, hidden layers \\[\\]"),
    (lambda: Autoencoder(12, [2], architecture="conv", image_shape=(3, 3)),
     "needs image_shape \\[height, width\\] with height \\* width = 12 features"),
    (lambda: Reconstruction("gaussian", -0.1, torch.Generator()), "Invalid gaussian corruption level: -0.1"),
    (lambda: Reconstruction("salt", 0.1, torch.Generator()), "unknown corruption 'salt'"),
    (lambda: Autoencoder(4, [3], activation="relu").sparsity_penalty([torch.zeros(2, 3)], 0.1),
     "the KL sparsity penalty needs sigmoid hidden units"),
    (lambda: kl_sparsity(torch.zeros(2, 3), 1.0), "Invalid sparsity target: 1.0"),
])
def test_invalid_constructions_of_the_maths(build, message):
    with pytest.raises(ValueError, match=message):
        build()
