"""GANs (model.type gan): the losses' gradients against finite differences, exact loss and
penalty values, the moving average's formula, networks' sizes, a step-level exact
resume with both optimizers, the collapse and divergence verdicts, config errors, sampling
and the run's files."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from boltzkit.cli import main
from boltzkit.config import load_config
from boltzkit.errors import ConfigError, DataError
from boltzkit.estimate.mmd import mean_pairwise_distance, median_bandwidth, mmd_squared
from boltzkit.families.gan import PINNED_EPOCHS, CollapseDetector, sample_gan
from boltzkit.models.gan import (
    GAN,
    MinibatchStd,
    discriminator_loss,
    discriminator_sizes,
    ema_decay,
    generator_loss,
    gradient_penalty,
)
from boltzkit.objectives.adversarial import DiscriminatorLoss, GeneratorLoss
from boltzkit.seeding import make_generator
from boltzkit.train import Fit

TINY = ["model={type: gan, latent: 4, generator_layers: [8], discriminator_layers: [8], ema: 0.9}",
        "data.binarize=none", "data.limit=120", "train.batch_size=16", "train.epochs=1",
        "train.metrics_examples=40", "threads=1"]


def _tiny(spectral_norm: bool = False, batch_norm: bool = True, seed: int = 0) -> GAN:
    return GAN(3, latent=2, generator_layers=[4], discriminator_layers=[4], batch_norm=batch_norm,
               spectral_norm=spectral_norm, generator=torch.Generator().manual_seed(seed)).double()


def _real(n: int = 5, width: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _assert_finite_differences(loss_fn, params, h=1e-6, tolerance=1e-7):
    """Central differences of ``loss_fn()`` in every coordinate of ``params`` equal autograd."""
    grads = torch.autograd.grad(loss_fn(), params)
    for param, grad in zip(params, grads, strict=True):
        flat = param.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = loss_fn().item()
            flat[i] = old - h
            down = loss_fn().item()
            flat[i] = old
            numeric = (up - down) / (2 * h)
            assert abs(numeric - grad.view(-1)[i].item()) < tolerance * max(1.0, abs(numeric)), (param.shape, i)


# ------------------------------------------------------------------ the losses


@pytest.mark.parametrize("kind", ["non_saturating", "hinge", "wgan_gp"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_loss_gradient_equals_finite_differences(kind, spectral_norm):
    """The discriminator's objective (WGAN-GP with its penalty, a double backward) in every
    weight; spectral normalisation in eval mode, where its singular vectors stay fixed."""
    model, real = _tiny(spectral_norm), _real()
    if spectral_norm:
        model.discriminator.eval()
    noise = torch.Generator().manual_seed(2)
    start = noise.get_state()
    objective = DiscriminatorLoss(kind, 10.0, noise)

    def loss():
        noise.set_state(start)  # the same fakes and interpolation points every evaluation
        return objective.loss(model, real)

    params = [p for p in model.discriminator.parameters()]
    assert len(params) == 4
    _assert_finite_differences(loss, params)


@pytest.mark.parametrize("kind", ["non_saturating", "hinge", "wgan_gp"])
def test_generator_loss_gradient_equals_finite_differences_and_spares_the_discriminator(kind):
    model = _tiny()
    noise = torch.Generator().manual_seed(3)
    start = noise.get_state()
    objective = GeneratorLoss(kind, noise)
    batch = _real(6)

    def loss():
        noise.set_state(start)
        return objective.loss(model, batch)

    _assert_finite_differences(loss, list(model.generator.parameters()))
    loss().backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())  # restored after the pass


def test_loss_values_on_known_logits():
    real = torch.tensor([2.0, -1.0], dtype=torch.float64)
    fake = torch.tensor([0.5, -3.0], dtype=torch.float64)
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    assert discriminator_loss("non_saturating", real, fake).item() == pytest.approx(
        (softplus(-2) + softplus(1)) / 2 + (softplus(0.5) + softplus(-3)) / 2, abs=1e-12)
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert discriminator_loss("wgan_gp", real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert generator_loss("non_saturating", fake).item() == pytest.approx(
        (softplus(-0.5) + softplus(3)) / 2, abs=1e-12)
    assert generator_loss("hinge", fake).item() == generator_loss("wgan_gp", fake).item() == 1.25
    with pytest.raises(ValueError, match="unknown GAN loss 'ls'; accepted: non_saturating, hinge, wgan_gp"):
        generator_loss("ls", fake)


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_off_one():
    """``grad_x (x . w + b) = w`` wherever the interpolation lands: ``(|w| - 1)^2``."""
    critic = nn.Linear(3, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, -1.0, 2.0]]))  # |w| = 3
    penalty = gradient_penalty(lambda x: critic(x).squeeze(1), _real(4), _real(4, seed=5),
                               torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx(4.0, abs=1e-12)


def test_gradient_penalty_interpolates_between_real_and_generated_examples():
    """``D(x) = |x|^2 / 2`` has ``grad_x D = x``: the penalty is ``mean (|x_hat| - 1)^2`` at
    ``x_hat = eps x + (1 - eps) x~`` with the generator's ``eps``."""
    real, fake = _real(6), _real(6, seed=5) * 3
    penalty = gradient_penalty(lambda x: 0.5 * x.pow(2).sum(1), real, fake, torch.Generator().manual_seed(3))
    eps = torch.rand(6, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    between = eps * real + (1 - eps) * fake
    expected = ((torch.linalg.vector_norm(between, dim=1) - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), abs=1e-12)
    # not the real or the generated end alone
    for end in (real, fake):
        assert abs(penalty.item() - ((torch.linalg.vector_norm(end, dim=1) - 1) ** 2).mean().item()) > 1e-3


def test_losses_are_validated_when_built_and_the_mmd_bandwidth_must_be_positive():
    g = torch.Generator()
    for build in (lambda: DiscriminatorLoss("ls", 10.0, g), lambda: GeneratorLoss("ls", g)):
        with pytest.raises(ValueError, match="unknown GAN loss 'ls'; accepted: non_saturating, hinge, wgan_gp"):
            build()
    for weight in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match=rf"Invalid gradient penalty weight: gp_weight={weight} "
                                             r"\(expected a finite value >= 0\)"):
            DiscriminatorLoss("wgan_gp", weight, g)
    for bandwidth in (0.0, -1.0):
        with pytest.raises(ValueError, match=rf"Invalid kernel bandwidth: {bandwidth} \(expected a finite "
                                             r"sigma\^2 > 0\)"):
            mmd_squared(_real(4), _real(4, seed=2), bandwidth)


# ------------------------------------------------------------------ the model


def test_moving_average_follows_its_formula_with_warm_up():
    model = GAN(3, latent=2, generator_layers=[4], discriminator_layers=[4], ema=0.9,
                generator=torch.Generator().manual_seed(0)).double()
    weight = model.generator.output.weight
    values = [torch.full_like(weight, v) for v in (1.0, 3.0, 7.0)]
    expected = None
    for n, value in enumerate(values):
        with torch.no_grad():
            weight.copy_(value)
        model.generator.hidden[1].running_mean.fill_(n + 0.5)
        model.update_ema()
        # the first update copies; the n-th after it keeps d_n = min(0.9, (1 + n) / (10 + n)) of the average
        d = min(0.9, (1 + n) / (10 + n))
        expected = value.clone() if n == 0 else d * expected + (1 - d) * value
        assert torch.allclose(model.ema.module.output.weight, expected, atol=1e-12)
        assert torch.equal(model.ema.module.hidden[1].running_mean, model.generator.hidden[1].running_mean)
    assert ema_decay(0.9, torch.tensor(1000)).item() == pytest.approx(0.9)
    assert model.sampler() is model.ema.module


def test_dcgan_networks_map_noise_to_images_and_images_to_logits():
    g = torch.Generator().manual_seed(0)
    for shape, channels in (((28, 28), [16, 8]), ((8, 8), [8, 4])):
        model = GAN(shape[0] * shape[1], 5, "dcgan", channels, channels[::-1], shape, generator=g)
        assert model.generator.start == (channels[0], shape[0] // 4, shape[1] // 4)
        x = model.sample(3, g)
        assert x.shape == (3, shape[0] * shape[1]) and bool(((x > 0) & (x < 1)).all())
        assert model.discriminator(x).shape == (3,)
    assert discriminator_sizes((28, 28), 2) == [(14, 14), (7, 7)]
    assert discriminator_sizes((7, 7), 2) == [(3, 3), (1, 1)]


def test_spectral_norm_divides_each_weight_by_its_largest_singular_value():
    model = GAN(6, 2, generator_layers=[4], discriminator_layers=[5], spectral_norm=True,
                generator=torch.Generator().manual_seed(0)).double()
    for _ in range(200):  # power iterations in training mode
        _ = model.discriminator.hidden[0].weight
    for layer in (model.discriminator.hidden[0], model.discriminator.output):
        assert torch.linalg.matrix_norm(layer.weight, ord=2).item() == pytest.approx(1.0, abs=1e-6)


def test_construction_draws_nothing_from_the_global_generator():
    torch.manual_seed(0)
    a = _tiny(spectral_norm=True).state_dict()
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    b = _tiny(spectral_norm=True).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's stream has not moved


# ------------------------------------------------------------------ the train step


@pytest.mark.parametrize("labels", [False, True])
def test_a_few_adversarial_steps_resume_bit_for_bit_with_both_optimizers(labels):
    """WGAN-GP, two discriminator updates per generator update, spectral norm, a moving
    average and per-step schedules on both players (and with labels, class-conditional):
    the state after 3 updates, loaded into a fresh model and step, gives exactly the
    weights and metrics of going on."""
    config = load_config(None, [*TINY, f"model.labels={str(labels).lower()}", "model.loss=wgan_gp", "model.d_steps=2", "model.spectral_norm=true",
                                "train.optimizer={name: adam, lr: 0.001, betas: [0.0, 0.9]}",
                                "train.schedule={name: cosine, unit: step}",
                                "model.discriminator_optimizer={name: rmsprop, lr: 0.002}",
                                "model.discriminator_schedule={name: exponential, unit: step, rate: 0.5}"])
    session = Fit(config)
    model, step = session.model, session.train_step()
    rows = torch.arange(len(session.task.train_x))
    batches = [session.task.batch(rows[i:i + 16], torch.Generator()) for i in range(0, 112, 16)]
    assert batches[0].shape[1] == 64 + 10 * labels
    for batch in batches[:3]:
        step(model, batch)
    saved = copy.deepcopy({"model": model.state_dict(), "step": step.state_dict()})
    for batch in batches[3:]:
        step(model, batch)
    assert step.discriminator.optimizer.state and step.generator.optimizer.state
    assert step.lr != pytest.approx(step.discriminator.lr)  # each player has its own schedule
    torch.manual_seed(99)
    again = Fit(config)
    again.model.load_state_dict(saved["model"])
    restored = again.train_step()
    restored.load_state_dict(saved["step"])
    for batch in batches[3:]:
        restored(again.model, batch)
    for key, value in model.state_dict().items():
        assert torch.equal(again.model.state_dict()[key], value), key
    assert restored.epoch_metrics() == step.epoch_metrics()
    assert restored.updates == step.updates == 7


def _collapsed(model: GAN) -> GAN:
    """Every sample the same image: the output layer ignores the noise."""
    with torch.no_grad():
        model.generator.output.weight.zero_()
    model.ema = None
    return model


class _Replay(nn.Module):
    """A 'generator' that returns training examples: the data's own spread."""

    def __init__(self, data):
        super().__init__()
        self.data = data
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, z):
        return self.data[: len(z)]


def test_collapse_is_reported_for_a_constant_generator_and_not_for_the_data(capsys):
    session = Fit(load_config(None, TINY))
    collapsed = session.task.measure(_collapsed(session.model))
    assert collapsed["diversity"] == 0.0
    healthy_model = Fit(load_config(None, TINY)).model
    healthy_model.generator, healthy_model.ema = _Replay(session.task.monitor["train"]), None
    healthy = session.task.measure(healthy_model)
    assert healthy["diversity"] == pytest.approx(1.0) and healthy["train_mmd"] < collapsed["train_mmd"]

    step = session.train_step()  # its epoch report measures the (collapsed) model and warns
    for epoch in range(1, PINNED_EPOCHS + 1):
        metrics = step.epoch_metrics()
        assert metrics["mode_collapse"] == float(epoch >= PINNED_EPOCHS)
    assert "GAN warning, epoch 3: mode collapse" in capsys.readouterr().err
    detector = CollapseDetector()
    for _ in range(2 * PINNED_EPOCHS):
        row = dict(healthy)
        assert detector.update(row) == [] and row["mode_collapse"] == 0.0


def test_divergence_needs_a_pinned_discriminator_for_several_epochs_in_a_row():
    detector = CollapseDetector()
    pinned, fooled = {"d_real_accuracy": 1.0, "d_fake_accuracy": 0.995}, {"d_real_accuracy": 1.0,
                                                                         "d_fake_accuracy": 0.7}
    verdicts = []
    for row in [pinned, pinned, fooled, pinned, pinned, pinned, pinned]:
        row = dict(row)
        warnings = detector.update(row)
        verdicts.append(row["divergence"])
        assert bool(warnings) == bool(row["divergence"])
    assert verdicts == [0, 0, 0, 0, 0, 1, 1]
    restored = CollapseDetector()
    restored.load_state_dict(detector.state_dict())
    assert restored.update(dict(pinned)) == detector.update(dict(pinned))


# ------------------------------------------------------------------ sample statistics


def test_mmd_and_spread_equal_their_sums_term_by_term():
    x, y = _real(4, 2, seed=7), _real(5, 2, seed=8)
    sigma2 = 0.3

    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * sigma2))

    xx = sum(k(x[i], x[j]) for i in range(4) for j in range(4) if i != j) / 12
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(a, b) for a in x for b in y) / 20
    assert mmd_squared(x, y, sigma2) == pytest.approx(xx + yy - 2 * xy, abs=1e-12)
    distances = [float((x[i] - x[j]).norm()) for i in range(4) for j in range(4) if i != j]
    assert mean_pairwise_distance(x) == pytest.approx(sum(distances) / 12, abs=1e-12)
    squared = sorted(float(((x[i] - x[j]) ** 2).sum()) for i in range(4) for j in range(i + 1, 4))
    assert median_bandwidth(x) == pytest.approx(squared[2], abs=1e-12)  # torch's median: the lower middle


# ------------------------------------------------------------------ config and run


@pytest.mark.parametrize("override, message", [
    ("model.loss=least_squares", "config key 'model.loss': invalid value 'least_squares'; accepted: "
                                 "'non_saturating', 'hinge' or 'wgan_gp'"),
    ("model.ema=1.0", "config key 'model.ema': invalid value 1.0; input should be less than 1"),
    ("model.d_steps=0", "config key 'model.d_steps': invalid value 0; input should be greater than or equal to 1"),
    ("model.generator_layers=[8, 0]", "config key 'model.generator_layers': layer sizes must be >= 1, got \\[8, 0\\]"),
    ("model.discriminator_optimizer={name: adam, lr: 0.001, momentum: 0.9}",
     "config key 'model.discriminator_optimizer': 'momentum' is not an argument of torch.optim.Adam"),
    ("model.discriminator_optimizer={name: adam, lr: -1}",
     "config key 'model.discriminator_optimizer.lr': invalid value -1; input should be greater than 0"),
    ("model.discriminator_schedule={name: plateau, metric: d_loss}",
     "config key 'model.discriminator_schedule': plateau watches 'd_loss' after each epoch; it needs "
     "unit: epoch and a metric that model.type 'gan' logs with a direction: train_mmd, val_mmd"),
    ("model.discriminator_schedule={name: cosine, warmup: 2}",
     "config key 'model.discriminator_schedule': warmup is a fraction of the run"),
    ("model.architecture=dcgan", None),  # valid on its own: the data decide (below)
])
def test_config_errors_name_the_key(override, message):
    if message is None:
        assert load_config(None, [*TINY, override]).model.architecture == "dcgan"
        return
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*TINY, override])


@pytest.mark.parametrize("overrides, message", [
    (["data.name=potts"], "config key 'model.architecture': dcgan needs image-shaped data and Potts chain "
                          ".* has none \\(set data.image_shape: \\[height, width\\]\\); accepted for it: mlp"),
    (["model.generator_layers=[8, 8, 8, 8]"],
     "config key 'model.generator_layers': 4 upsampling layers need image sides that are multiples of 16; "
     "the images are 8x8"),
    (["model.discriminator_layers=[4, 4, 4, 4]"],
     "config key 'model.discriminator_layers': 4 stride-2 convolutions shrink 8x8 images to nothing"),
])
def test_dcgan_that_does_not_fit_the_images_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Fit(load_config(None, [*TINY, "model.architecture=dcgan", *overrides]))


def test_samples_come_from_the_moving_average_in_eval_mode_and_tempering_is_refused():
    model = _tiny()
    model.ema = None
    model.train()
    g = torch.Generator().manual_seed(4)
    states, means = sample_gan(model, 7, 1000, g)
    assert model.training  # the caller's mode is restored
    model.eval()
    assert torch.equal(states, model.sample(7, torch.Generator().manual_seed(4))) and states is means
    assert torch.equal(sample_gan(model, 7, 1, torch.Generator().manual_seed(4), temperatures=1)[0], states)
    with pytest.raises(ValueError, match="parallel tempering does not apply; drop --pt"):
        sample_gan(model, 7, 1, g, temperatures=2)


def test_samples_of_the_moving_average_use_batch_norm_statistics_of_its_own_weights():
    model = GAN(3, latent=2, generator_layers=[4], discriminator_layers=[4], ema=0.9,
                generator=torch.Generator().manual_seed(0)).double()
    g = torch.Generator().manual_seed(5)
    for _ in range(3):  # the live generator moves away from its average, and so do its statistics
        with torch.no_grad():
            for p in model.generator.parameters():
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))
            model.generator(model.noise(64, g))
        model.update_ema()
    model.train()
    states, means = sample_gan(model, 7, 1000, torch.Generator().manual_seed(4))
    assert model.training and states is means
    average, norm = model.ema.module, model.ema.module.hidden[1]
    # the statistics are the averages of the batch means and unbiased variances of the
    # average's own pre-norm activations on the fixed noise (4 batches of 256)
    replay = make_generator(0, "gan.ema.batch_norm")
    with torch.no_grad():
        pre = [average.hidden[0](model.noise(256, replay)) for _ in range(4)]
    assert torch.allclose(norm.running_mean, torch.stack([a.mean(0) for a in pre]).mean(0), atol=1e-12)
    assert torch.allclose(norm.running_var, torch.stack([a.var(0) for a in pre]).mean(0), atol=1e-12)
    assert norm.momentum == 0.1  # restored for training
    assert not torch.allclose(norm.running_mean, model.generator.hidden[1].running_mean, atol=1e-3)
    average.eval()
    with torch.no_grad():
        assert torch.equal(states, average(model.noise(7, torch.Generator().manual_seed(4))))


def test_a_run_writes_a_grid_per_epoch_samples_and_overwrite_clears_them(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    for item in [*TINY, "train.epochs=2"]:
        args += ["--set", item]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert {p.name for p in out.glob("*.png")} == {"samples.png", "curves.png"}
    assert main(["sample", str(out), "--n", "9"]) == 0
    assert (out / "samples-n9-k1000-s0.npz").is_file()
    assert main([*args[:4], "--overwrite", *args[4:-1], "train.epochs=1"]) == 0
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png"]


def test_dynamic_binarization_resamples_every_batch_and_monitors_binary_images():
    session = Fit(load_config(None, [*TINY, "data.binarize=dynamic"]))
    task = session.task
    rows = torch.arange(16)
    draws = torch.stack([task.batch(rows, torch.Generator().manual_seed(s)) for s in range(400)])
    assert bool(((draws == 0) | (draws == 1)).all())
    grey = task.train_x[rows]
    assert bool(((grey > 0) & (grey < 1)).any())  # there is something to binarize
    se = (grey * (1 - grey) / 400).sqrt().clamp_min(1e-3)
    assert bool(((draws.mean(0) - grey).abs() < 5 * se).all())  # frequencies follow the grey levels
    assert all(bool(((m == 0) | (m == 1)).all()) for m in task.monitor.values())


# ------------------------------------------------------------------ minibatch standard deviation


def test_minibatch_std_appends_each_groups_mean_feature_spread():
    x = torch.rand(7, 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = MinibatchStd(3)(x)
    assert out.shape == (7, 3, 3, 3) and torch.equal(out[:, :2], x)
    for rows in ([0, 1, 2], [3, 4, 5], [6]):  # two full groups and the last, shorter one
        group = x[rows].reshape(len(rows), -1)
        expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[rows, 2], expected.expand(len(rows), 3, 3))


def test_minibatch_std_groups_do_not_see_each_other():
    """With halves that are multiples of G, a generated example never changes a real one's
    statistic: the discriminator's real logits stay independent of the fakes."""
    model = GAN(16, 2, architecture="dcgan", generator_layers=[4], discriminator_layers=[3, 5],
                image_shape=(4, 4), minibatch_std=2, generator=torch.Generator().manual_seed(0)).double()
    real, fake = _real(4, 16), _real(4, 16, seed=2)
    first = model.discriminator(torch.cat([real, fake]))
    second = model.discriminator(torch.cat([real, torch.zeros_like(fake)]))
    assert torch.equal(first[:4], second[:4]) and not torch.allclose(first[4:], second[4:])
    assert isinstance(model.discriminator.hidden[2], MinibatchStd)
    assert model.discriminator.hidden[3].in_channels == 3 + 1


@pytest.mark.parametrize("architecture", ["mlp", "dcgan"])
def test_minibatch_std_discriminator_loss_gradient_equals_finite_differences(architecture):
    model = GAN(16, 2, architecture=architecture, generator_layers=[4], discriminator_layers=[3, 4],
                image_shape=(4, 4), minibatch_std=2, generator=torch.Generator().manual_seed(0)).double()
    real, fake = _real(4, 16), _real(4, 16, seed=2)
    params = list(model.discriminator.parameters())

    def loss():
        logits = model.discriminator(torch.cat([real, fake]))
        return discriminator_loss("non_saturating", logits[:4], logits[4:])

    _assert_finite_differences(loss, params)


def test_minibatch_std_batch_size_must_be_a_multiple_of_the_group():
    with pytest.raises(ConfigError, match=r"train.batch_size.*16 is not a multiple of model.minibatch_std=3"):
        Fit(load_config(None, [*TINY, "model.minibatch_std=3"]))
    with pytest.raises(ConfigError, match="minibatch_std"):
        load_config(None, [*TINY, "model.minibatch_std=1"])
    session = Fit(load_config(None, [*TINY, "model.minibatch_std=4"]))
    assert any(isinstance(m, MinibatchStd) for m in session.model.discriminator.modules())


# ------------------------------------------------------------------ class-conditional


def _conditional(classes: int = 3, seed: int = 0, **options) -> GAN:
    return GAN(3, latent=2, generator_layers=[4], discriminator_layers=[4], classes=classes,
               generator=torch.Generator().manual_seed(seed), **options).double()


def _labelled(n: int = 6, classes: int = 3, seed: int = 1) -> torch.Tensor:
    """Rows ``[x, onehot(y)]`` with classes ``0, 1, ..., classes - 1, 0, ...``."""
    one_hot = torch.nn.functional.one_hot(torch.arange(n) % classes, classes).double()
    return torch.cat([_real(n, seed=seed), one_hot], dim=1)


def test_projection_discriminator_adds_the_class_embedding_dot_the_features():
    """``D(x, y) = w^T phi(x) + b + e_y^T phi(x)`` with ``e_y`` column ``y`` of the
    embedding; the same image scores differently under different classes."""
    model = _conditional()
    rows = _labelled()
    x, y = rows[:, :3], torch.arange(6) % 3
    base = model.discriminator.base
    features = base.features(x)
    expected = (features @ base.output.weight.T).squeeze(1) + base.output.bias \
        + (features * model.discriminator.embed.weight[:, y].T).sum(1)
    assert torch.allclose(model.discriminator(rows), expected, atol=1e-12)
    relabelled = torch.cat([x, rows[:, 3:].roll(1, dims=1)], dim=1)
    assert (model.discriminator(relabelled) - expected).abs().min() > 1e-6


@pytest.mark.parametrize("kind", ["non_saturating", "wgan_gp"])
def test_conditional_losses_gradients_equal_finite_differences(kind):
    """Both players of a class-conditional GAN, every weight (the class embedding and the
    generator's class inputs included)."""
    model, rows = _conditional(), _labelled()
    for objective, network in ((DiscriminatorLoss(kind, 10.0, torch.Generator().manual_seed(2)),
                                model.discriminator),
                               (GeneratorLoss(kind, torch.Generator().manual_seed(3)), model.generator)):
        start = objective.generator.get_state()

        def loss(objective=objective, start=start):
            objective.generator.set_state(start)
            return objective.loss(model, rows)

        _assert_finite_differences(loss, list(network.parameters()))
    assert len(list(model.discriminator.parameters())) == 5  # base's two layers and the embedding


def test_generated_rows_carry_the_classes_of_their_real_rows():
    model, rows = _conditional(), _labelled()
    objective = DiscriminatorLoss("non_saturating", 0.0, torch.Generator().manual_seed(2))
    objective.loss(model, rows)
    assert objective.fakes.shape == rows.shape
    assert torch.equal(objective.fakes[:, 3:], rows[:, 3:])
    # and the generator saw them: other classes, same noise, other images
    noise = model.noise(6, torch.Generator().manual_seed(4), rows[:, 3:])
    assert torch.equal(noise[:, 2:], rows[:, 3:])
    other = torch.cat([noise[:, :2], noise[:, 2:].roll(1, dims=1)], dim=1)
    assert not torch.allclose(model.generator(noise), model.generator(other))


def test_gradient_penalty_of_a_conditional_critic_is_taken_in_x_only():
    """``D([x, c]) = x . w + c . u``: ``grad_x = w``, so ``(|w| - 1)^2`` whatever ``u``; a
    gradient over the class columns too would give ``(sqrt(|w|^2 + |u|^2) - 1)^2``."""
    critic = nn.Linear(5, 1, bias=False).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[2.0, -1.0, 2.0, 4.0, 4.0]]))  # |w| = 3, |u| = 4*sqrt(2)
    rows = _labelled(4, classes=2)
    penalty = gradient_penalty(lambda r: critic(r).squeeze(1), rows[:, :3], _real(4, seed=5),
                               torch.Generator().manual_seed(0), rows[:, 3:])
    assert penalty.item() == pytest.approx(4.0, abs=1e-12)


def test_unconditional_noise_draws_classes_from_the_prior():
    model = _conditional()
    model.set_class_prior(torch.tensor([6.0, 3.0, 1.0], dtype=torch.float64))
    assert torch.allclose(model.class_prior, torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64))
    n = 30_000
    noise = model.noise(n, torch.Generator().manual_seed(5))
    one_hot = noise[:, 2:]
    assert torch.equal(one_hot.sum(1), torch.ones(n, dtype=torch.float64))
    shares = one_hot.mean(0)
    stderr = (model.class_prior * (1 - model.class_prior) / n).sqrt()
    assert ((shares - model.class_prior).abs() < 4 * stderr).all(), shares
    chosen = model.sample(5, torch.Generator().manual_seed(6), label=2)
    assert chosen.shape == (5, 3)
    with pytest.raises(ValueError, match="label 3 is not a class of this GAN .it has 3; accepted: 0 to 2"):
        model.sample(5, torch.Generator(), label=3)
    with pytest.raises(ValueError, match="trained without classes: it cannot draw a chosen label"):
        _tiny().sample(5, torch.Generator(), label=0)
    with pytest.raises(ValueError, match="a class prior needs 3 non-negative weights"):
        model.set_class_prior(torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="Invalid number of classes: 1"):
        _conditional(classes=1)
    assert "class_prior" not in _tiny().state_dict()  # unconditional checkpoints are unchanged


def test_a_labelled_run_feeds_classes_and_learns_the_training_frequencies(tmp_path):
    config = load_config(None, [*TINY, "model.labels=true"])
    session = Fit(config)
    task, model = session.task, session.model
    rows = torch.arange(16)
    batch = task.batch(rows, torch.Generator())
    labels = task.data.train_labels[:16]
    assert batch.shape == (16, 64 + 10)
    assert torch.equal(batch[:, :64], task.train_x[rows])
    assert torch.equal(batch[:, 64:].argmax(1), labels) and torch.equal(batch[:, 64:].sum(1), torch.ones(16))
    counts = torch.bincount(task.data.train_labels, minlength=10).double()
    assert torch.allclose(model.class_prior.double(), counts / counts.sum())
    with pytest.raises(DataError, match="model.labels is true and this data set has no labels"):
        Fit(load_config(None, [*TINY, "model.labels=true", "data.name=potts",
                               "data.potts={length: 4, states: 2, examples: 100}"]))


@pytest.mark.parametrize("labels", [False, True])
def test_sample_by_label_on_the_command_line(tmp_path, capsys, labels):
    out = tmp_path / "run"
    overrides = [*TINY, f"model.labels={str(labels).lower()}"]
    assert main(["train", "--out", str(out), "--quiet", *sum((["--set", o] for o in overrides), [])]) == 0
    capsys.readouterr()
    code = main(["sample", str(out), "--label", "4", "--n", "6", "--threads", "1"])
    printed = capsys.readouterr()
    if labels:
        assert code == 0
        assert "means = their expected values (a GAN's two are the same images)" in printed.out
        assert "Gibbs" not in printed.out
        assert (out / "samples_by_label.png").exists()
        assert len(list(out.glob("samples-n6-*-y4.npz"))) == 1
    else:
        assert code != 0
        assert "trained without labels (model.labels: false)" in printed.err
        assert not (out / "samples_by_label.png").exists()


def test_a_class_conditional_gan_draws_the_class_asked_for():
    """The digits preset with labels, 30 epochs (seconds): samples of each class lie
    nearest to that class's mean training image far more often than chance (0.1), the
    rate of a generator that ignores its class input."""
    session = Fit(load_config("gan-digits", ["model.labels=true", "train.epochs=30", "threads=1",
                                             "train.metrics_examples=100", "train.checkpoint_every=0"]))
    session.run()
    x, y = session.task.data.train.double(), session.task.data.train_labels
    means = torch.stack([x[y == k].mean(0) for k in range(10)])
    for label in range(10):
        samples, _ = sample_gan(session.model, 100, 1, torch.Generator().manual_seed(label), label=label)
        nearest = torch.cdist(samples.double(), means).argmin(1)
        assert (nearest == label).double().mean() >= 0.5, label
