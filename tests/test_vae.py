"""The VAE family: every loss's gradient against finite differences; the importance-
weighted bound against exact log-likelihoods (a linear-Gaussian VAE, whose marginal is
N(b, W W^T + S^2), and a one-latent Bernoulli VAE integrated by quadrature), its rise
with k, its k = 1 case; the evaluation, figures and command line."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from boltzkit.cli import main
from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.estimate.variational import evaluate_vae, format_vae_report, vae_bounds
from boltzkit.families.vae import latent_grid_means, sample_vae
from boltzkit.models.vae import VAE, gaussian_kl_to_standard
from boltzkit.objectives.variational import VariationalBound
from boltzkit.train import Fit, fit
from boltzkit.train.fit import FitInterrupted
from helpers import assert_resumes_exactly

TINY = ["data.limit=150", "train.epochs=1", "train.metrics_examples=40", "threads=1"]


def _randomize(model: VAE, scale: float, seed: int) -> VAE:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model


def _data(model: VAE, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if model.decoder_name == "bernoulli":
        return (torch.rand(n, model.n_features, generator=g) < 0.4).double()
    return torch.randn(n, model.n_features, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------ gradients


MODELS = {
    "mlp, bernoulli": lambda: VAE(6, 2, [5], activation="tanh"),
    "mlp, gaussian, learned variance": lambda: VAE(6, 2, [5], decoder="gaussian", activation="elu"),
    "mlp, gaussian, fixed variance": lambda: VAE(6, 3, [], decoder="gaussian", learn_variance=False),
    "conv, bernoulli, 3x4 images": lambda: VAE(12, 2, [2, 3], architecture="conv", image_shape=(3, 4)),
}
LOSSES = {"elbo": ("elbo", 1), "elbo, 3 samples": ("elbo", 3), "iwae, k=4": ("iwae", 4)}


def _finite_differences(loss, param: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    numeric = torch.zeros_like(param)
    flat, out = param.data.view(-1), numeric.view(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            saved = flat[i].item()
            flat[i] = saved + h
            up = loss().item()
            flat[i] = saved - h
            down = loss().item()
            flat[i] = saved
            out[i] = (up - down) / (2 * h)
    return numeric


@pytest.mark.parametrize("bound", LOSSES)
@pytest.mark.parametrize("architecture", MODELS)
def test_loss_gradients_match_central_finite_differences(architecture, bound):
    """Autograd of the training loss (reparametrised noise replayed from the same
    generator state) against central differences, for every parameter, in float64."""
    model = _randomize(MODELS[architecture]().double(), 0.5, 0)
    x = _data(model, 4, 1)
    kind, k = LOSSES[bound]

    def loss():
        return VariationalBound(kind, k, torch.Generator().manual_seed(7)).loss(model, x)

    model.zero_grad()
    loss().backward()
    for name, param in model.named_parameters():
        numeric = _finite_differences(loss, param)
        assert torch.allclose(param.grad, numeric, rtol=1e-5, atol=1e-7), name
        assert numeric.abs().max() > 1e-4, f"{name}: the loss does not depend on it"


# ------------------------------------------------------------------ exact likelihoods


def _linear_gaussian(seed: int, d: int = 4, latent: int = 2) -> VAE:
    """``x = W z + b + s * noise``: no hidden layers, a Gaussian decoder with learned ``s``."""
    return _randomize(VAE(d, latent, [], decoder="gaussian").double(), 0.7, seed)


def _exact_linear_gaussian(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """``log N(x; b, W W^T + diag(s^2))``."""
    linear = model.decoder[0]
    covariance = linear.weight @ linear.weight.T + torch.diag(model.decoder_std() ** 2)
    return torch.distributions.MultivariateNormal(linear.bias, covariance).log_prob(x)


def _set_exact_posterior(model: VAE, seed: int) -> None:
    """Equal decoder deviations ``s`` and orthogonal columns of ``W``: the posterior
    ``N(Sigma W^T (x - b) / s^2, Sigma)``, ``Sigma = (I + W^T W / s^2)^-1``, is diagonal,
    so the encoder (one linear layer) can represent it exactly."""
    g = torch.Generator().manual_seed(seed)
    d, latent = model.n_features, model.latent
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    weight = q[:, :latent] * torch.tensor([1.5, 0.6], dtype=torch.float64)
    with torch.no_grad():
        model.decoder[0].weight.copy_(weight)
        model.decoder_std_raw.fill_(0.3)
        s2 = model.decoder_std()[0] ** 2
        sigma = 1.0 / (1.0 + (weight**2).sum(0) / s2)
        gain = sigma[:, None] * weight.T / s2  # (L, D)
        encoder = model.encoder[0]
        encoder.weight.zero_()
        encoder.weight[:latent] = gain
        encoder.bias[:latent] = -gain @ model.decoder[0].bias
        encoder.bias[latent:] = 0.5 * torch.log(sigma)


def test_with_the_exact_posterior_every_importance_weight_is_the_likelihood():
    """log w_j = log p(x) for every noise draw, so the sampled-KL ELBO, every IWAE_k and
    the chunked evaluation (several chunks of samples and of examples) all equal the
    closed form (the closed-form-KL ELBO only in expectation: its reconstruction term
    still varies with the noise)."""
    model = _linear_gaussian(0)
    _set_exact_posterior(model, 1)
    x = _data(model, 5, 2)
    exact = _exact_linear_gaussian(model, x)
    noise = torch.randn(7, 5, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(model.log_weights(x, noise), exact.expand(7, -1), atol=1e-10)
    assert torch.allclose(model.elbo(x, noise=noise, analytic_kl=False), exact, atol=1e-10)
    bounds = vae_bounds(model, x, 10, torch.Generator().manual_seed(4), chunk_elements=3 * 4)
    for name in ("iwae", "elbo"):
        assert torch.allclose(bounds[name], exact, atol=1e-10), name
    assert torch.allclose(bounds["ess"], torch.full((5,), 10.0, dtype=torch.float64))


def _repeated_bounds(model: VAE, x: torch.Tensor, k: int, repetitions: int, seed: int) -> tuple[float, float]:
    """Mean over ``repetitions`` independent draws of the average IWAE_k of ``x``, and its
    standard error."""
    values = model.iwae_bound(x.repeat(repetitions, 1), k, torch.Generator().manual_seed(seed))
    per_draw = values.reshape(repetitions, len(x)).mean(1)
    return per_draw.mean().item(), per_draw.std().item() / math.sqrt(repetitions)


def _check_rises_and_bounds(model: VAE, x: torch.Tensor, exact: float, ks=(1, 4, 16, 64),
                            repetitions: int = 400) -> list[float]:
    estimates = [_repeated_bounds(model, x, k, repetitions, seed=k) for k in ks]
    for (low, low_se), (high, high_se) in zip(estimates, estimates[1:], strict=False):
        assert high - low > 3 * math.hypot(low_se, high_se), estimates
    for mean, se in estimates:
        assert mean <= exact + 3 * se, (mean, se, exact)
    return [mean for mean, _ in estimates]


def test_iwae_rises_with_k_and_stays_below_the_linear_gaussian_likelihood():
    model = _linear_gaussian(5)
    x = _data(model, 3, 6)
    exact = _exact_linear_gaussian(model, x).mean().item()
    means = _check_rises_and_bounds(model, x, exact)
    assert exact - means[-1] < (exact - means[0]) / 4  # the gap closes roughly as 1/k


def _quadrature_log_likelihood(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """``log integral N(z; 0, 1) p(x | z) dz`` for one latent dimension, on a fine grid
    over [-12, 12] (the integrand is smooth and negligible outside)."""
    z = torch.linspace(-12, 12, 24_001, dtype=torch.float64)[:, None]
    log_prior = -0.5 * (z[:, 0] ** 2 + math.log(2 * math.pi))
    log_lik = model.log_likelihood(x, model.decode(z)[:, None, :].expand(-1, len(x), -1))  # (Z, B)
    return torch.logsumexp(log_prior[:, None] + log_lik, 0) + math.log(24 / 24_000)


def test_iwae_rises_with_k_and_stays_below_a_bernoulli_likelihood_by_quadrature():
    model = _randomize(VAE(5, 1, [3], activation="tanh").double(), 1.0, 8)
    x = _data(model, 3, 9)
    exact = _quadrature_log_likelihood(model, x).mean().item()
    _check_rises_and_bounds(model, x, exact)


def test_iwae_with_one_sample_is_the_single_sample_elbo_whose_mean_is_the_closed_form_elbo():
    model = _randomize(VAE(6, 2, [5]).double(), 0.6, 11)
    x = _data(model, 4, 12)
    noise = torch.randn(1, 4, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    single = model.elbo(x, noise=noise, analytic_kl=False)
    assert torch.allclose(model.iwae_bound(x, 1, noise=noise), single, atol=1e-12)
    # the closed-form KL changes the estimator, not its expectation
    many = torch.randn(4000, 4, 2, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    sampled = torch.stack([model.elbo(x, noise=eps[None], analytic_kl=False) for eps in many])
    closed = torch.stack([model.elbo(x, noise=eps[None]) for eps in many])
    difference = (sampled - closed).mean(1)
    assert abs(difference.mean().item()) < 4 * difference.std().item() / math.sqrt(len(many))
    assert difference.std() > 1e-3  # the two estimators do differ draw by draw


def test_closed_form_kl_equals_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mean, log_std.exp()),
                                                 torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(gaussian_kl_to_standard(mean, log_std), expected, atol=1e-6)


# ------------------------------------------------------------------ evaluation


def test_evaluation_reports_bounds_nll_and_errors_consistently():
    model = _randomize(VAE(6, 2, [5]).double(), 0.6, 15)
    x = _data(model, 40, 16)
    results = evaluate_vae(model, x, k=30, generator=torch.Generator().manual_seed(17))
    assert set(results) == {"examples", "features", "latent", "decoder", "k", "elbo", "elbo_stderr",
                            "iwae_bound", "iwae_bound_stderr", "nll", "nll_stderr", "iwae_mc_stderr",
                            "iwae_mc_reliable", "iwae_ess_mean", "iwae_ess_min", "log_jacobian", "kl",
                            "active_units", "seconds"}
    bounds = vae_bounds(model, x, 30, torch.Generator().manual_seed(17))
    assert results["iwae_bound"] == pytest.approx(bounds["iwae"].mean().item(), abs=1e-12)
    assert results["nll"] == -results["iwae_bound"]
    assert results["nll_stderr"] == pytest.approx(bounds["iwae"].std().item() / math.sqrt(40))
    assert bool((bounds["elbo"] <= bounds["iwae"] + 1e-12).all())  # Jensen, sample by sample
    assert bool(((bounds["ess"] >= 1 - 1e-9) & (bounds["ess"] <= 30 + 1e-9)).all())
    mean, log_std = model.encode(x)
    assert results["kl"] == pytest.approx(gaussian_kl_to_standard(mean, log_std).mean().item())


def test_the_stated_monte_carlo_error_matches_the_spread_over_seeds_where_the_ess_is_high():
    # weights near uniform (ESS close to k): the delta method holds, and 1/ESS - 1/k is far
    # from 1/ESS (the formula without -1/k would state about 7 times the spread)
    model = _randomize(VAE(6, 2, [5]).double(), 0.1, 18)
    x = _data(model, 20, 19)
    seeds = 400
    runs = [evaluate_vae(model, x, k=50, generator=torch.Generator().manual_seed(s)) for s in range(seeds)]
    assert sum(r["iwae_ess_mean"] for r in runs) / seeds > 0.95 * 50  # the regime this test is about
    spread = torch.tensor([r["iwae_bound"] for r in runs]).std().item()
    stated = sum(r["iwae_mc_stderr"] for r in runs) / seeds
    # the spread's own relative standard error is 1 / sqrt(2 (seeds - 1)): 3.5 %
    assert abs(spread / stated - 1) < 4 / math.sqrt(2 * (seeds - 1)), (spread, stated)


def test_the_monte_carlo_error_is_flagged_where_some_ess_is_far_below_k(capsys):
    # heavier-tailed weights: the delta method understates the spread (by about 30 % here)
    model = _randomize(VAE(6, 2, [5]).double(), 0.5, 18)
    x = _data(model, 20, 19)
    results = evaluate_vae(model, x, k=50, generator=torch.Generator().manual_seed(0))
    assert results["iwae_ess_min"] < 0.5 * 50 and results["iwae_mc_reliable"] == 0.0
    assert "the delta-method Monte Carlo error understates the spread" in format_vae_report(results, "t")


# ------------------------------------------------------------------ sampling and figures


def test_ancestral_samples_follow_the_decoder():
    model = _randomize(VAE(4, 2, [3], decoder="gaussian").double(), 0.5, 20)
    g = torch.Generator().manual_seed(21)
    decoded = model.decode(torch.randn(1, 2, generator=g, dtype=torch.float64)).expand(40_000, -1)
    draws, means = model.sample_given(decoded, g)
    assert torch.allclose(draws.mean(0), means[0], atol=5 * model.decoder_std().max().item() / 200)
    assert torch.allclose(draws.std(0), model.decoder_std(), rtol=0.03)
    binary = _randomize(VAE(4, 2, [3]).double(), 0.5, 22)
    draws, means = binary.sample_given(binary.decode(torch.zeros(40_000, 2, dtype=torch.float64)), g)
    se = (means[0] * (1 - means[0]) / 40_000).sqrt()
    assert bool(((draws.mean(0) - means[0]).abs() < 5 * se).all())
    with pytest.raises(ValueError, match="parallel tempering does not apply"):
        sample_vae(binary, 4, 1, g, temperatures=3)


def test_latent_map_decodes_the_prior_quantiles_row_by_row():
    model = _randomize(VAE(6, 2, [5]).double(), 0.6, 23)
    grid = latent_grid_means(model, 3)
    corner = torch.full((1, 2), -1.6448536269514722, dtype=torch.float64)  # Phi^-1(0.05)
    assert torch.allclose(grid[4], model.mean_of(model.decode(torch.zeros(1, 2, dtype=torch.float64)))[0])
    assert torch.allclose(grid[0], model.mean_of(model.decode(corner))[0])
    one_row_down = torch.tensor([[-1.6448536269514722, 0.0]], dtype=torch.float64)
    assert torch.allclose(grid[3], model.mean_of(model.decode(one_row_down))[0])


# ------------------------------------------------------------------ the family


def _train(tmp_path, *overrides):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    for item in [*TINY, "model={type: vae, latent: 3, hidden_layers: [8], monitor_k: 4}", *overrides]:
        args += ["--set", item]
    assert main(args) == 0
    return out


def test_evaluate_and_sample_from_the_command_line(tmp_path, capsys):
    out = _train(tmp_path)
    assert not (out / "latent_map.png").exists()  # three latent dimensions: no map
    assert main(["evaluate", str(out), "--k", "20", "--split", "validation", "--quiet"]) == 0
    report = capsys.readouterr().out
    results = json.loads((out / "evaluation.json").read_text())
    assert results["k"] == 20 and results["model_type"] == "vae" and results["split"] == "validation"
    assert re.search(rf"\nNLL \(-IWAE_20\) +{results['nll']:.3f} nats  \+- {results['nll_stderr']:.3f}\n", report)
    from boltzkit.data import load_dataset
    from boltzkit.train.run_dir import load_run_model

    trained = load_run_model(out)
    validation = load_dataset(trained.config.data, trained.config.seed).validation
    assert results["examples"] == len(validation)
    again = evaluate_vae(trained.model, validation, k=20, generator=torch.Generator().manual_seed(0))
    assert results["elbo"] == pytest.approx(again["elbo"], abs=2 * again["elbo_stderr"])
    assert main(["evaluate", str(out), "--ais-runs", "5", "--quiet"]) == 2
    assert "--ais-runs does not apply to model.type 'vae' (its options: --k)" in capsys.readouterr().err
    assert main(["sample", str(out), "--n", "9", "--out", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in tmp_path.glob("s.*")) == ["s.npz", "s.png"]
    assert main(["sample", str(out), "--pt", "3"]) == 2
    assert "parallel tempering does not apply; drop --pt" in capsys.readouterr().err


def test_an_rbm_refuses_the_vae_option(tmp_path, capsys):
    out = tmp_path / "rbm"
    assert main(["train", "--out", str(out), "--quiet", *sum((["--set", o] for o in
                 [*TINY, "model.n_hidden=4"]), [])]) == 0
    assert main(["evaluate", str(out), "--k", "10", "--quiet"]) == 2
    assert ("--k does not apply to model.type 'rbm' (its options: --ais-betas, --ais-runs, "
            "--reverse-examples, --reverse-runs)") in capsys.readouterr().err


def test_range_test_records_the_fixed_noise_proxy():
    from boltzkit.train.lr_find_run import find_lr

    config = load_config("vae-digits", TINY)
    fresh = Fit(config)
    expected = fresh.task.proxy_loss(fresh.model.eval(), fresh.task.probe(32)).item()
    assert fresh.task.proxy_loss(fresh.model, fresh.task.probe(32)).item() == expected  # same noise
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        result, _ = find_lr(config, out, iterations=10, probe=32, progress=False)
    assert result.losses[0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("overrides, message", [
    (["model={type: vae, architecture: conv}", "data.name=potts"],
     "config key 'model.architecture': conv needs images, and the 18 features of "),
    (["model={type: vae, architecture: conv, hidden_layers: []}"],
     "config key 'model': model.architecture conv needs at least one entry in model.hidden_layers"),
    (["model={type: vae, objective: vimco}"],
     "config key 'model.objective': invalid value 'vimco'; accepted: 'elbo' or 'iwae'"),
    (["model={type: vae, k: 0}"], "config key 'model.k': invalid value 0; input should be greater than"),
])
def test_invalid_vae_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Fit(load_config(None, [*TINY, *overrides]))


def test_a_convolutional_gaussian_vae_resumes_mid_epoch_with_the_same_weights():
    """The registry checks resumption on an MLP VAE with IWAE; here the other paths: conv
    networks, a Gaussian decoder with learned variance, a multi-sample ELBO."""
    config = load_config(None, [*TINY, "train.epochs=2", "train.batch_size=25", "data.binarize=none",
                                "model={type: vae, architecture: conv, hidden_layers: [3], latent: 2, "
                                "decoder: gaussian, objective: elbo, k: 2, monitor_k: 3}"])
    full = Fit(config)
    full.run()
    cut = Fit(config)
    with pytest.raises(FitInterrupted):
        cut.run(should_stop=lambda: cut.state.step == cut.batches.per_epoch + 2)
    state = cut.state_dict()
    assert_resumes_exactly(config, state, full)


def test_evaluation_chunks_are_sized_by_the_largest_layer_output():
    from boltzkit.estimate.variational import activations_per_example

    assert activations_per_example(VAE(64, 2, [7, 3])) == 64  # the D outputs
    assert activations_per_example(VAE(64, 2, [90])) == 90  # a hidden layer
    # 5 feature maps of 4 x 4 after the first stride-2 convolution of an 8 x 8 image
    assert activations_per_example(VAE(64, 2, [5], architecture="conv", image_shape=(8, 8))) == 80


def test_a_gaussian_decoder_on_standardized_data_reports_densities_of_the_raw_data():
    # x = (y - mu) / s  =>  log p_Y(y) = log p_X(x) - sum_i log s_i
    from boltzkit.seeding import make_generator

    result = fit(load_config(None, [*TINY, "model={type: vae, latent: 2, hidden_layers: [8], decoder: gaussian}",
                                    "data.binarize=none", "data.standardize=true"]))
    task, model = result.task, result.model
    results, report = task.evaluate(model, "test", k=10)
    std = task.data.feature_std.double()
    assert bool((std != 1).any())
    standardized = evaluate_vae(model, task.split("test"), k=10, generator=make_generator(0, "evaluate"))
    jacobian = -std.log().sum().item()
    assert results["log_jacobian"] == pytest.approx(jacobian)
    assert results["iwae_bound"] == pytest.approx(standardized["iwae_bound"] + jacobian, abs=1e-9)
    assert results["elbo"] == pytest.approx(standardized["elbo"] + jacobian, abs=1e-9)
    assert results["nll"] == pytest.approx(standardized["nll"] - jacobian, abs=1e-9)
    assert f"the standardization's log Jacobian {jacobian:.3f} is included" in report


def test_the_monitored_iwae_bound_draws_fresh_noise_for_every_chunk():
    from boltzkit.seeding import make_generator

    # monitor_k 8192: chunks of 65536 // 8192 = 8 examples, 2 chunks of the 15
    session = Fit(load_config(None, [*TINY, "model={type: vae, latent: 2, hidden_layers: [4], monitor_k: 8192}"]))
    task, model = session.task, session.model
    assert len(task.monitor_val) == 15
    with torch.no_grad():
        noise = make_generator(task.config.seed, "metrics.iwae", task.device)
        expected = torch.cat([model.iwae_bound(chunk, 8192, noise) for chunk in task.monitor_val.split(8)])
    assert task.epoch_metrics(model, 1)["val_iwae_bound"] == pytest.approx(expected.mean().item(), abs=1e-6)
