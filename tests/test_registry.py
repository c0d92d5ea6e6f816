"""The checks every model family passes, kept as one registry (../shared/DESIGN.md, "Tests
that every model family passes"). A family gets them all from one entry in CASES: a tiny
model, what its marginal, conditionals and loss gradients are by brute force, what "the
same next sample" means for it, its invalid inputs and a brief training config. Checks a
family cannot have (no latent variables, no AIS) are not generated for it: each case
says which of its family's capabilities they follow from."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F

import toy_family
from boltzkit.config import load_config
from boltzkit.errors import ConfigError
from boltzkit.estimate.ais import ais_base, ais_log_partition, reverse_ais_log_likelihood
from boltzkit.estimate.dbm import dbm_log_likelihood, dbm_log_partition
from boltzkit.estimate.exact import exact_log_likelihood, exact_log_partition
from boltzkit.estimate.exact_bm import bm_log_likelihood, bm_log_partition
from boltzkit.families import family_names, get_family, unregister
from boltzkit.models import MLP, RBM, BoltzmannMachine
from boltzkit.models.autoencoder import Autoencoder, corrupt
from boltzkit.models.dbm import DBM
from boltzkit.models.dbn import DBN
from boltzkit.models.gan import GAN
from boltzkit.models.vae import VAE
from boltzkit.objectives import BoltzmannMachineLearning, CrossEntropy, FreeEnergyGap
from boltzkit.objectives.adversarial import DiscriminatorLoss
from boltzkit.objectives.dbm import DBMLearning, ModifiedRBMPretraining
from boltzkit.objectives.reconstruction import Reconstruction
from boltzkit.objectives.variational import VariationalBound
from boltzkit.sampling import (
    ContrastiveChains,
    ParallelTempering,
    PersistentChains,
    gibbs_sweeps,
    temperature_ladder,
)
from boltzkit.sampling.dbm import DBMChains
from boltzkit.train import Fit
from boltzkit.train.fit import FitInterrupted
from helpers import all_binary, assert_resumes_exactly


@pytest.fixture(scope="module", autouse=True)
def _toy_family_registered():
    """A family defined in the tests (no edit anywhere else), registered for this module only."""
    toy_family.register_toy()
    yield
    unregister(toy_family.NAME)


def _randomize(model, scale, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (0.3 if "log_sigma" in name else scale))
    return model


# ------------------------------------------------------------------ per-family references


def _rbm_visible(model, n, seed):
    return model.visible.sample(torch.zeros(n, model.n_visible, dtype=torch.float64),
                                torch.Generator().manual_seed(seed))


def _binary_visible(model, n, seed):
    width = model.n_visible if hasattr(model, "n_visible") else model.theta.shape[1]
    return (torch.rand(n, width, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


def _rbm_brute_log_marginal(model, v):
    """``log sum_h exp(-E(v, h))`` by enumerating the hidden layer."""
    h = model.hidden.all_states(0, int(model.hidden.configurations))
    energies = torch.stack([model.energy(v, hh.expand(len(v), -1)) for hh in h], 1)
    return torch.logsumexp(-energies, 1)


def _bm_brute_log_marginal(model, v):
    h = all_binary(model.n_hidden)
    joint = torch.cat([v[:, None].expand(-1, len(h), -1), h[None].expand(len(v), -1, -1)], 2)
    return torch.logsumexp(-model.energy(joint), 1)


def _mixture_brute_log_marginal(model, v):
    """``log sum_k pi_k prod_i mu_ki^v_i (1 - mu_ki)^(1 - v_i)`` term by term."""
    pi, mu = torch.softmax(model.logits, 0), torch.sigmoid(model.theta)
    terms = [pi[k] * torch.prod(mu[k] ** v * (1 - mu[k]) ** (1 - v), dim=1) for k in range(len(pi))]
    return torch.log(torch.stack(terms, 1).sum(1))


def _rbm_posterior_gradients(model, v):
    """``mean_b E_{h|v_b}[dE(v_b, h)/dtheta]`` by enumeration (autograd on each energy)."""
    h = model.hidden.all_states(0, int(model.hidden.configurations))
    totals = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for row in v:
        row = row[None]
        posterior = torch.softmax(-torch.stack([model.energy(row, hh[None])[0] for hh in h]).detach(), 0)
        for weight, hh in zip(posterior, h, strict=True):
            model.zero_grad()
            model.energy(row, hh[None]).sum().backward()
            for k, p in model.named_parameters():
                if p.grad is not None:
                    totals[k] += weight * p.grad / len(v)
    return totals


def _rbm_gap_gradient(model, objective, v_data):
    """The free-energy gap's gradient: data minus model posterior statistics of dE/dtheta."""
    positive = _rbm_posterior_gradients(model, v_data)
    negative = _rbm_posterior_gradients(model, objective.negatives)
    return {k: positive[k] - negative[k] for k in positive}


def _bm_gradient(model, objective, v_data, generator_state):
    """``dE/dW_ij = -s_i s_j`` (existing couplings), ``dE/db = -s``: data minus chains."""
    replay = torch.Generator().manual_seed(0)
    replay.set_state(generator_state)
    twin = BoltzmannMachineLearning(objective.k, objective.n_chains, objective.positive,
                                    objective.positive_steps, replay)
    s_data, s_model = twin.positive_states(model, v_data), objective.chains
    pair = s_data.T @ s_data / len(s_data) - s_model.T @ s_model / len(s_model)
    return {"weight": -pair * model.mask, "bias": -(s_data.mean(0) - s_model.mean(0))}


def _mlp_gradient(model, objective, batch):
    """Output layer of a cross-entropy classifier: ``(softmax - onehot)^T a / B``."""
    x, y = batch
    a = x
    for block in model.hidden:
        a = block(a)
    residual = torch.softmax(model.output(a), 1) - F.one_hot(y, model.output.out_features).double()
    return {"output.weight": residual.T @ a / len(x), "output.bias": residual.mean(0)}


def _mixture_gradient(model, objective, v):
    """``-mean_b r_bk (v_b - mu_k)`` for theta, ``-mean_b (r_bk - pi_k)`` for the logits."""
    mu, pi = torch.sigmoid(model.theta), torch.softmax(model.logits, 0)
    log_terms = torch.log(pi) + v @ torch.log(mu).T + (1 - v) @ torch.log(1 - mu).T
    r = torch.softmax(log_terms, 1)
    return {"theta": -(r.T @ v - r.sum(0)[:, None] * mu) / len(v), "logits": -(r - pi).mean(0)}


def _rbm_objectives(n_chains=5):
    return {
        "cd-2": lambda g: FreeEnergyGap(ContrastiveChains(2, g)),
        "pcd-1": lambda g: FreeEnergyGap(PersistentChains(n_chains, g, steps=1)),
        "pt-1": lambda g: FreeEnergyGap(ParallelTempering(temperature_ladder(3, 0.4), n_chains, g)),
    }


def _rbm_next_sample(model, v, g):
    return model.sample_hidden(v, g)


def _bm_next_sample(model, v, g):
    s = torch.cat([v, torch.zeros(len(v), model.n_hidden, dtype=v.dtype)], 1)
    return gibbs_sweeps(model, s, range(model.n_units), 2, g)


def _mlp_next_sample(model, batch, g):
    torch.manual_seed(int(torch.randint(1 << 30, (1,), generator=g)))  # dropout draws globally
    return model.train()(batch[0])


def _mixture_next_sample(model, v, g):
    return model.sample(len(v), g)[0]


def _dbm_data_statistics(states, offsets=None):
    """Layer means and the (centered) pair products of neighbouring layers."""
    n = len(states[0])
    c = [x - mu for x, mu in zip(states, offsets, strict=True)] if offsets is not None else states
    stats = {f"weights.{d}": c[d].T @ c[d + 1] / n for d in range(len(states) - 1)}
    return stats | {f"biases.{d}": x.mean(0) for d, x in enumerate(states)}


def _dbm_gradient(model, objective, batch):
    """Joint learning: ``-(<x_l x_l+1>_{v, mean field} - <x_l x_l+1>_chains)`` and likewise for the
    biases; greedy pretraining of layer 1: the CD statistics of its modified RBM."""
    if isinstance(objective, ModifiedRBMPretraining):
        w, b1 = model.weights[0].detach(), model.biases[1].detach()
        h_data = torch.sigmoid(2 * batch @ w + b1)
        x_model = objective.negatives
        h_model = torch.sigmoid(2 * x_model @ w + b1)
        return {"weights.0": -(batch.T @ h_data - x_model.T @ h_model) / len(batch),
                "biases.0": -(batch - x_model).mean(0), "biases.1": -(h_data - h_model).mean(0)}
    offsets = model.offsets() if model.centered else None  # after the objective moved them
    data = _dbm_data_statistics(objective.positive, offsets)
    chains = _dbm_data_statistics(objective.negatives, offsets)
    return {key: -(data[key] - chains[key]) for key in data}


def _dbm_brute_log_marginal(model, v):
    hidden = all_binary(sum(model.sizes[1:]))
    cut = model.sizes[1]
    energies = torch.stack([model.energy([row.expand(len(hidden), -1), hidden[:, :cut], hidden[:, cut:]])
                            for row in v])
    return torch.logsumexp(-energies, 1)


def _centered_dbm():
    model = _randomize(DBM([5, 4, 3], centered=True).double(), 0.8, 11)
    with torch.no_grad():
        for depth, mu in enumerate(model.offsets()):
            mu.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(12 + depth))
    return model


def _dbm_next_sample(model, v, g):
    return torch.cat(model.gibbs(model.recognition(v), 1, g), 1)


def _gan_discriminator_gradient(model, objective, real):
    """The discriminator's output layer, ``d = a . w + b`` on features ``a``: ``dL/dd`` is
    ``-sigma(-d_r) / B`` and ``sigma(d_f) / B`` (non-saturating) or ``-[d_r < 1] / B`` and
    ``[d_f > -1] / B`` (hinge), on the real batch and the objective's last fakes."""
    head = model.discriminator.output
    a_real, a_fake = model.discriminator.features(real), model.discriminator.features(objective.fakes)
    d_real, d_fake = head(a_real).squeeze(1), head(a_fake).squeeze(1)
    if objective.kind == "non_saturating":
        g_real, g_fake = -torch.sigmoid(-d_real) / len(real), torch.sigmoid(d_fake) / len(d_fake)
    else:
        g_real, g_fake = -(d_real < 1).double() / len(real), (d_fake > -1).double() / len(d_fake)
    weight = g_real @ a_real + g_fake @ a_fake
    return {"discriminator.output.weight": weight[None].detach(),
            "discriminator.output.bias": (g_real.sum() + g_fake.sum()).reshape(1).detach()}


def _unit_interval(model, n, seed):
    """Examples in [0, 1] as wide as the discriminator's input."""
    return torch.rand(n, model.discriminator.hidden[0].in_features,
                      generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _gan_next_sample(model, v, g):
    return model.sample(len(v), g)


def _dbn_next_sample(model, v, g):
    return model.generate(len(v), 3, g)[0]


def _labelled_dbn_next_sample(model, v, g):
    return model.generate(len(v), 3, g, label=1)[0]


def _vae_data(model, n, seed):
    return (torch.rand(n, model.n_features, generator=torch.Generator().manual_seed(seed)) < 0.5).double()


def _vae_gradient(model, objective, x):
    """The decoder's output layer under a bound of the objective's last noise:
    ``-mean_b sum_j omega_bj (x_b - sigmoid(f(z_bj))) [a_bj, 1]`` with ``a`` the decoder's
    last hidden activities and ``omega = softmax_j(log w)`` (IWAE) or ``1/k`` (ELBO)."""
    with torch.no_grad():
        mean, log_std = model.encode(x)
        z = mean + torch.exp(log_std) * objective.noise
        a = model.decoder[:-1](z)
        residual = x - torch.sigmoid(model.decoder[-1](a))
        k = len(z)
        omega = (torch.softmax(model.log_weights(x, objective.noise), 0) if objective.bound == "iwae"
                 else torch.full(z.shape[:2], 1.0 / k, dtype=x.dtype))
    return {"decoder.2.weight": -torch.einsum("kb,kbd,kbh->dh", omega, residual, a) / len(x),
            "decoder.2.bias": -torch.einsum("kb,kbd->d", omega, residual) / len(x)}


def _labelled(model, n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, model.hidden[0][0].in_features, generator=g, dtype=torch.float64),
            torch.randint(model.output.out_features, (n,), generator=g))


def _grey(model, n, seed):
    return torch.rand(n, model.input_shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _autoencoder_gradient(model, objective, x):
    """Backpropagation by hand through one sigmoid layer, untied: ``a = x~ W^T + b``,
    ``h = sigmoid(a)``, ``r = h V^T + c``; ``dL/dr = (sigmoid(r) - x) / B``, and the sparsity
    term adds ``beta (-rho / rho_hat_j + (1 - rho) / (1 - rho_hat_j)) / B`` to ``dL/dh_bj``
    (Ng's sparse autoencoder notes)."""
    layer, noisy = model.layers[0], objective.corrupted
    h = torch.sigmoid(noisy @ layer.encoder.weight.T + layer.encoder.bias)
    r = h @ layer.decoder_weight.T + layer.decoder_bias
    d_r = (torch.sigmoid(r) - x) / len(x)
    rho, rho_hat = objective.sparsity_target, h.mean(0)
    d_h = d_r @ layer.decoder_weight + objective.sparsity_weight * (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) / len(x)
    d_a = d_h * h * (1 - h)
    return {"layers.0.encoder.weight": d_a.T @ noisy, "layers.0.encoder.bias": d_a.sum(0),
            "layers.0.decoder_weight": d_r.T @ h, "layers.0.decoder_bias": d_r.sum(0)}


def _autoencoder_next_sample(model, x, g):
    return model(corrupt(x, "masking", 0.3, g))


# ------------------------------------------------------------------ the table


@dataclass
class Case:
    family: str
    make: Callable[[], torch.nn.Module]
    data: Callable  # (model, n, seed) -> a valid batch
    train: list[str]  # overrides of the default preset for a brief fit() on the digits
    next_sample: Callable  # (model, batch, generator) -> what a restored model must reproduce
    objectives: dict[str, Callable] = field(default_factory=dict)  # name -> generator -> Objective
    gradient: Callable | None = None  # (model, objective, batch[, state]) -> {param: analytic grad}
    log_marginal: Callable | None = None  # the library's unnormalised log p(v)
    brute_log_marginal: Callable | None = None
    invalid: list[tuple[Callable, str]] = field(default_factory=list)


def _centered():
    model = _randomize(RBM(6, 4, centered=True).double(), 0.8, 1)
    with torch.no_grad():
        model.visible_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(2))
        model.hidden_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(3))
    return model


RBM_TRAIN = ["model.n_hidden=8", "train.k=1"]


def _rbm_case(make, train=(), invalid=()):
    return Case("rbm", make, _rbm_visible, [*RBM_TRAIN, *train], _rbm_next_sample, _rbm_objectives(),
                _rbm_gap_gradient, lambda m, v: -m.free_energy(v), _rbm_brute_log_marginal, list(invalid))


CASES = {
    "bernoulli rbm": _rbm_case(lambda: _randomize(RBM(6, 4).double(), 0.8, 0), invalid=[
        (lambda: RBM(0, 3), "Invalid number of units: 0"),
        (lambda: RBM(4, 3, visible="poisson"), "Unknown unit family 'poisson'"),
        (lambda: RBM(4, 3, init_std=-1.0), "Invalid init_std: -1.0"),
    ]),
    "centered rbm": _rbm_case(_centered, ["model.centered=true", "train.method=pt",
                                          "train.pt={temperatures: 3}"]),
    "gaussian rbm": _rbm_case(lambda: _randomize(RBM(3, 4, visible="gaussian").double(), 0.5, 4),
                              ["model.visible=gaussian", "data.standardize=true", "data.binarize=none",
                               "train.optimizer={name: sgd, lr: 0.002}"]),
    "categorical rbm": _rbm_case(
        lambda: _randomize(RBM(6, 4, visible="categorical", visible_options={"k": 3}).double(), 0.8, 5),
        ["data.name=potts", "data.potts={examples: 300}", "model.visible=categorical",
         "model.categories=3", "train.method=cd"],
        invalid=[(lambda: RBM(5, 3, visible="categorical", visible_options={"k": 2}),
                  "5 units do not split into groups of k=2")]),
    "softmax-hidden rbm": _rbm_case(
        lambda: _randomize(RBM(5, 6, hidden="categorical", hidden_options={"k": 3}).double(), 0.8, 6),
        ["model.hidden=categorical", "model.n_hidden=9", "model.categories=3"]),
    "boltzmann machine": Case(
        "bm", lambda: _randomize(BoltzmannMachine(4, 3).double(), 0.8, 7), _binary_visible,
        ["model={type: bm, n_hidden: 2}", "data.name=potts", "data.potts={length: 4, states: 2, examples: 240}",
         "eval.exact_max_units=12", "train.positive=gibbs", "train.k=1"],
        _bm_next_sample,
        {"meanfield": lambda g: BoltzmannMachineLearning(2, 5, "meanfield", 4, g),
         "gibbs": lambda g: BoltzmannMachineLearning(1, 5, "gibbs", 3, g)},
        _bm_gradient, lambda m, v: bm_log_likelihood(m, v) + bm_log_partition(m), _bm_brute_log_marginal,
        [(lambda: BoltzmannMachine(0, 2), "Invalid sizes: 0 visible"),
         (lambda: BoltzmannMachine(2, 2, torch.eye(4, dtype=torch.bool)), "mask must be a symmetric")]),
    "dbm": Case(
        "dbm", lambda: _randomize(DBM([5, 4, 3]).double(), 0.8, 10), _binary_visible,
        ["model={type: dbm, layers: [6, 4], pretrain_epochs: 1}", "data.binarize=threshold",
         "train.n_chains=20"],
        _dbm_next_sample,
        {"pcd": lambda g: DBMLearning(DBMChains(5, 2, g), 30, 1e-10),
         "pt": lambda g: DBMLearning(DBMChains(5, 1, g, temperature_ladder(3, 0.5)), 30, 1e-10),
         "pretrain layer 1": lambda g: ModifiedRBMPretraining(1, 2, g)},
        _dbm_gradient, lambda m, v: dbm_log_likelihood(m, v) + dbm_log_partition(m), _dbm_brute_log_marginal,
        [(lambda: DBM([4, 3]), "a visible layer and at least two hidden layers"),
         (lambda: DBM([4, 0, 2]), "Invalid number of units in DBM sizes \\[4, 0, 2\\]")]),
    "centered dbm": Case(
        "dbm", _centered_dbm, _binary_visible,
        ["model={type: dbm, layers: [6, 4], centered: true}", "data.binarize=threshold", "train.n_chains=20",
         "train.method=pt", "train.pt={temperatures: 3}"],
        _dbm_next_sample,
        {"pcd": lambda g: DBMLearning(DBMChains(5, 2, g), 30, 1e-10, offset_rate=0.1)},
        _dbm_gradient, lambda m, v: dbm_log_likelihood(m, v) + dbm_log_partition(m), _dbm_brute_log_marginal),
    "mlp": Case(
        "mlp", lambda: _randomize(MLP(4, [5], 3, activation="tanh", dropout=0.2).double(), 0.6, 8),
        _labelled, ["model={type: mlp, hidden_layers: [16], dropout: 0.2}", "data.binarize=none"],
        _mlp_next_sample, {"cross-entropy": lambda g: CrossEntropy()}, _mlp_gradient,
        invalid=[(lambda: MLP(4, [5], 3, activation="swish"), "unknown activation 'swish'"),
                 (lambda: MLP(4, [5], 3, dropout=1.0), "Invalid dropout: 1.0")]),
    "dbn": Case(
        "dbn", lambda: _randomize(DBN(6, [4, 3], centered=True).double(), 0.8, 10), _binary_visible,
        ["model={type: dbn, layers: [8, 6], propagate: samples, centered: true}", "train.k=1",
         "data.binarize=dynamic"],
        _dbn_next_sample,
        invalid=[(lambda: DBN(4, []), "Invalid DBN: no hidden layers"),
                 (lambda: DBN(4, [3], visible="categorical"), "Invalid DBN visible units 'categorical'")]),
    "dbn with labels and up-down": Case(
        "dbn", lambda: _randomize(DBN(6, [4, 3], classes=2, recognition=True).double(), 0.8, 11), _binary_visible,
        ["model={type: dbn, layers: [8, 6], labels: true, updown_epochs: 1, updown_k: 2, centered: true}",
         "train.k=1", "data.binarize=dynamic"],
        _labelled_dbn_next_sample,
        invalid=[(lambda: DBN(4, [3], visible="gaussian", classes=3), "Invalid DBN labels: 3 classes"),
                 (lambda: RBM(2, 3, "labelled", visible_options={"classes": 2}), "Invalid labelled layer")]),
    "toy mixture (defined in the tests)": Case(
        toy_family.NAME,
        lambda: _randomize(toy_family.BernoulliMixture(5, 3, torch.Generator()).double(), 0.8, 9),
        _binary_visible, [f"model={{type: {toy_family.NAME}, components: 4}}", "data.binarize=threshold"],
        _mixture_next_sample, {"nll": lambda g: toy_family.NegativeLogLikelihood()}, _mixture_gradient,
        lambda m, v: m.log_prob(v), _mixture_brute_log_marginal),
    "gan": Case(
        "gan", lambda: _randomize(GAN(4, 3, generator_layers=[5], discriminator_layers=[5], ema=0.9,
                                      generator=torch.Generator().manual_seed(10)).double(), 0.6, 10),
        _unit_interval, ["model={type: gan, latent: 8, generator_layers: [16], discriminator_layers: [16], "
                         "loss: hinge, d_steps: 2, spectral_norm: true, ema: 0.9}", "data.binarize=none",
                         "train.optimizer={name: adam, lr: 0.001, betas: [0.5, 0.999]}",
                         "train.schedule={name: cosine, unit: step}"],
        _gan_next_sample,
        {"non-saturating discriminator": lambda g: DiscriminatorLoss("non_saturating", 0.0, g),
         "hinge discriminator": lambda g: DiscriminatorLoss("hinge", 0.0, g)},
        _gan_discriminator_gradient,
        invalid=[(lambda: GAN(0), "Invalid number of features: 0"),
                 (lambda: GAN(4, architecture="resnet"), "unknown architecture 'resnet'; accepted: mlp, dcgan"),
                 (lambda: GAN(4, ema=1.0), "Invalid ema decay: 1.0"),
                 (lambda: GAN(64, architecture="dcgan"), "the dcgan architecture needs an image shape")]),
    "vae": Case(
        "vae", lambda: _randomize(VAE(5, 2, [4], activation="tanh").double(), 0.6, 10), _vae_data,
        ["model={type: vae, latent: 2, hidden_layers: [8], objective: iwae, k: 2, monitor_k: 4}"],
        lambda m, v, g: m.sample(len(v), g)[0],
        {"elbo": lambda g: VariationalBound("elbo", 1, g), "iwae-3": lambda g: VariationalBound("iwae", 3, g)},
        _vae_gradient,
        invalid=[(lambda: VAE(5, 0), "Invalid sizes: 5 features, 0 latent dimensions"),
                 (lambda: VAE(5, 2, architecture="rnn"), "unknown architecture 'rnn'; accepted: mlp, conv"),
                 (lambda: VAE(6, 2, architecture="conv"), "the conv architecture needs an image shape"),
                 (lambda: VariationalBound("elbo", 0, torch.Generator()), "Invalid number of samples: k=0")]),
    "autoencoder": Case(
        "autoencoder", lambda: _randomize(Autoencoder(5, [3], tied=False).double(), 0.8, 10), _grey,
        ["model={type: autoencoder, hidden_layers: [12, 6], stacked: true, joint_epochs: 1, corruption: masking, "
         "corruption_level: 0.2, sparsity_weight: 0.1}", "data.binarize=none"],
        _autoencoder_next_sample,
        {"masking, sparse": lambda g: Reconstruction("masking", 0.3, g, sparsity_target=0.2, sparsity_weight=0.5),
         "gaussian noise": lambda g: Reconstruction("gaussian", 0.4, g)},
        _autoencoder_gradient,
        invalid=[(lambda: Autoencoder(4, [3], activation="swish"), "unknown activation 'swish'"),
                 (lambda: Reconstruction("masking", 1.0, torch.Generator()), "Invalid masking corruption level: 1.0"),
                 (lambda: Autoencoder(16, [2], architecture="conv"), "a convolutional autoencoder needs image_shape")]),
}
def _capabilities(case: Case):
    """What the case's family declares (the toy family is registered only while this
    module's tests run, so its declaration is read from its module)."""
    return toy_family.CAPABILITIES if case.family == toy_family.NAME else get_family(case.family).capabilities


LATENT = [name for name, case in CASES.items() if _capabilities(case).exact_likelihood]
AIS = [name for name, case in CASES.items() if _capabilities(case).ais_likelihood]
RBMS = [name for name, case in CASES.items() if case.family == "rbm"]
OBJECTIVES = [(name, objective) for name, case in CASES.items() for objective in case.objectives]


def test_every_registered_family_has_a_case():
    assert {case.family for case in CASES.values()} == set(family_names())


# ------------------------------------------------------------------ model-level checks


@pytest.mark.parametrize("name", LATENT)
def test_marginal_equals_brute_force_sum_over_latent_states(name):
    case = CASES[name]
    model = case.make()
    v = case.data(model, 6, 0)
    assert torch.allclose(case.log_marginal(model, v), case.brute_log_marginal(model, v), atol=1e-10)


@pytest.mark.parametrize("name, objective", OBJECTIVES)
def test_loss_gradient_equals_the_analytic_statistics(name, objective):
    """For every objective of every family: autograd of the training loss, twice in a row
    (persistent state in play the second time), equals the closed-form statistics."""
    case = CASES[name]
    model = case.make().eval()  # dropout off (its masks are not part of the statistics)
    generator = torch.Generator().manual_seed(3)
    built = case.objectives[objective](generator)
    batch = case.data(model, 8, 1)
    for _ in range(2):
        state = generator.get_state()
        model.zero_grad()
        built.loss(model, batch).backward()
        autograd = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        extra = (state,) if case.family == "bm" else ()
        expected = case.gradient(model, built, batch, *extra)
        assert set(expected) <= set(autograd)
        for key, value in expected.items():
            assert torch.allclose(autograd[key], value, atol=1e-10), f"{objective}: {key}"


CLOSED_FORM = [(name, objective) for name, objective in OBJECTIVES
               if CASES[name].objectives[objective](torch.Generator()).has_closed_form(CASES[name].make())]


@pytest.mark.parametrize("name, objective", CLOSED_FORM)
def test_closed_form_gradients_equal_the_surrogates(name, objective):
    """The fast path (statistics written into .grad, no graph) draws the same negatives and
    gives the surrogate's gradients and loss value, update after update."""
    case = CASES[name]
    _assert_closed_form_matches(case.make, case.objectives[objective], lambda m: case.data(m, 8, 2))


def test_closed_form_of_a_centered_gaussian_rbm_equals_the_surrogate():
    def make():
        model = _randomize(RBM(3, 4, visible="gaussian", centered=True).double(), 0.5, 6)
        with torch.no_grad():
            model.visible_offset.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(7))
            model.hidden_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(8))
        return model

    data = torch.randn(8, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    _assert_closed_form_matches(make, lambda g: FreeEnergyGap(PersistentChains(5, g)), lambda m: data)


@pytest.mark.parametrize("statistic", ["unit", "layer"])
def test_closed_form_of_a_sparse_dbm_equals_the_surrogate(statistic):
    """The sparsity penalty's slope on the hidden biases, and its share of the loss value
    (the value is <theta, grad>: a wrong slope changes both)."""
    _assert_closed_form_matches(
        lambda: _randomize(DBM([5, 4, 3]).double(), 0.8, 10),
        lambda g: DBMLearning(DBMChains(5, 2, g), 30, 1e-10, sparsity_target=0.2, sparsity_cost=0.7,
                              sparsity_statistic=statistic),
        lambda m: CASES["dbm"].data(m, 8, 2))


def _as_list(states):
    return list(states) if isinstance(states, (list, tuple)) else [states]


def _assert_closed_form_matches(make, objective, data):
    surrogate_model, fast_model = make(), make()
    surrogate = objective(torch.Generator().manual_seed(4))
    fast = objective(torch.Generator().manual_seed(4))
    batch = data(surrogate_model)
    for _ in range(3):
        surrogate_model.zero_grad()
        loss = surrogate.loss(surrogate_model, batch)
        loss.backward()
        value = fast.write_gradients(fast_model, batch)
        negatives = (surrogate.negatives, fast.negatives)  # a DBM's: one tensor per layer
        assert all(torch.equal(a, b) for a, b in zip(*map(_as_list, negatives), strict=True))
        assert value == pytest.approx(loss.item(), abs=1e-10)
        for (key, p), q in zip(surrogate_model.named_parameters(), fast_model.parameters(), strict=True):
            assert torch.allclose(p.grad, q.grad, atol=1e-10), key
        with torch.no_grad():  # the same step on both, so the chains meet the same models
            for p, q in zip(surrogate_model.parameters(), fast_model.parameters(), strict=True):
                p -= 0.1 * p.grad
                q -= 0.1 * p.grad


def test_closed_form_is_refused_where_it_does_not_apply():
    model = RBM(3, 4, hidden="gaussian")  # log_partition(a) is not linear in E[h|v]
    assert not FreeEnergyGap(PersistentChains(3, torch.Generator())).has_closed_form(model)
    with pytest.raises(ConfigError, match="'train.gradient': closed_form is not available"):
        Fit(_config(CASES["gaussian rbm"], "model.hidden=gaussian", "train.gradient=closed_form")).train_step()


@pytest.mark.parametrize("name", RBMS)
def test_sample_frequencies_match_the_conditionals(name):
    model = CASES[name].make()
    g = torch.Generator().manual_seed(1)
    h = model.hidden.sample(torch.zeros(1, model.n_hidden, dtype=torch.float64), g).expand(80_000, -1)
    v = model.sample_visible(h, g)
    mean = model.visible_mean(h[:1])[0]
    standard_error = v.std(0) / 80_000**0.5
    assert bool(((v.mean(0) - mean).abs() < 5 * standard_error + 1e-9).all())
    hidden = model.sample_hidden(v, g)
    expected = model.hidden_mean(v).mean(0)
    assert bool(((hidden.mean(0) - expected).abs() < 5 * hidden.std(0) / 80_000**0.5 + 1e-9).all())


def test_boltzmann_machine_gibbs_frequencies_match_the_exact_distribution():
    model = CASES["boltzmann machine"].make()
    states = all_binary(model.n_units)
    exact = torch.softmax(-model.energy(states), 0)
    chains = gibbs_sweeps(model, torch.zeros(40_000, model.n_units, dtype=torch.float64),
                          range(model.n_units), 20, torch.Generator().manual_seed(0))
    codes = (chains * 2 ** torch.arange(model.n_units - 1, -1, -1, dtype=torch.float64)).sum(1).long()
    frequency = torch.bincount(codes, minlength=len(states)).double() / len(chains)
    standard_error = (exact * (1 - exact) / len(chains)).sqrt()
    assert bool(((frequency - exact).abs() < 5 * standard_error + 1e-4).all())


@pytest.mark.parametrize("name", AIS)
def test_exact_log_z_agrees_with_ais(name):
    """Forward AIS (base rate for binary units, decoupled layers otherwise; centered models
    through their plain equivalent) within its own +-3 sigma and 0.1 nats of the exact log Z."""
    model = CASES[name].make().float()
    data = CASES[name].data(model.double(), 200, 0).float()
    model = model.float()
    ais = ais_log_partition(model, ais_base(model, data), betas=3000, runs=50,
                            generator=torch.Generator().manual_seed(0))
    exact = exact_log_partition(model)
    assert abs(ais.log_z - exact) < 0.1
    assert ais.log_z_low - 1e-3 <= exact <= ais.log_z_high + 1e-3


@pytest.mark.parametrize("name", AIS)
def test_reverse_ais_is_conservative_and_close(name):
    """Reverse AIS on model samples: below the exact log-likelihood within its error, and
    within 0.1 nats of it on average (the annealing path is short for these models)."""
    model = CASES[name].make()
    data = CASES[name].data(model, 200, 1).float()
    model = model.float()
    reverse = reverse_ais_log_likelihood(model, data[:40], ais_base(model, data), betas=1000, runs=4,
                                         generator=torch.Generator().manual_seed(2))
    exact = exact_log_likelihood(model, data[:40]).mean().item()
    assert reverse.mean <= exact + 3 * reverse.standard_error
    assert abs(reverse.mean - exact) < 0.1


@pytest.mark.parametrize("name", CASES)
def test_state_dict_round_trip_gives_the_same_next_sample(name):
    case = CASES[name]
    model, clone = case.make(), case.make()
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)  # make sure the load really overwrites
    clone.load_state_dict(model.state_dict())
    batch = case.data(model, 6, 0)
    a = case.next_sample(model, batch, torch.Generator().manual_seed(5))
    b = case.next_sample(clone, batch, torch.Generator().manual_seed(5))
    c = case.next_sample(case.make(), batch, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # the check can tell two different draws apart


@pytest.mark.parametrize("name, build, message", [
    (name, build, message) for name, case in CASES.items() for build, message in case.invalid])
def test_invalid_constructions(name, build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ------------------------------------------------------------------ training-level checks


def _config(case, *extra):
    # likelihoods every epoch (quick AIS for RBMs: their smaller layer exceeds exact_max_units)
    return load_config(None, ["train.epochs=2", "data.limit=200", "train.batch_size=25",
                              "train.metrics_examples=60", "threads=1", "eval.every=1",
                              "eval.quick_ais={runs: 4, betas: 50}", "eval.exact_max_units=4",
                              *case.train, *extra])


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("name", CASES)
def test_fit_logs_only_declared_metrics_and_resumes_exactly(name, device):
    """A brief fit(): every logged metric is declared by the family (so tuning and plateau
    schedules know its direction), and a session restored from the state saved after any
    epoch ends with exactly the weights of the uninterrupted one (for the toy family: at
    the end of its first stage, and in the middle of the second, whose own two-optimizer
    step is restored from the saved state)."""
    case = CASES[name]
    config = _config(case, f"device={device}")
    family = get_family(case.family)
    torch.manual_seed(0)
    full = Fit(config)
    saved = []
    full.run(on_epoch_end=lambda epoch, metrics: saved.append(copy.deepcopy(full.state_dict())))
    logged = {k for row in full.history for k in row}
    assert not {k for k in logged if not family.logs(k) and k != "stage"}
    assert logged & {"val_log_likelihood", "val_ais_log_likelihood", "val_accuracy",
                     family.default_metric}  # the family's own
    assert len(saved) == len(full.history) == sum(stage.epochs for stage in full.stages)
    torch.manual_seed(0)
    cut = Fit(config)  # stopped in the middle of the second epoch
    with pytest.raises(FitInterrupted):
        cut.run(should_stop=lambda: cut.state.step == cut.batches.per_epoch + 3)
    saved.append(copy.deepcopy(cut.state_dict()))
    for state in [*saved[:-2], saved[-1]]:
        assert_resumes_exactly(config, state, full)


@pytest.mark.parametrize("name", CASES)
def test_config_validates_only_the_family_keys(name):
    """``model`` accepts exactly the family's keys; a key of another family is refused with
    the accepted ones named."""
    case = CASES[name]
    config = _config(case)
    section = get_family(case.family).section
    assert set(config.model.model_dump()) == set(section.model_fields)
    foreign = "activation" if case.family not in ("mlp", "vae") else "n_hidden"
    foreign = next(key for key in ("activation", "n_hidden") if key not in section.model_fields)
    with pytest.raises(ConfigError, match=f"unknown config key 'model.{foreign}'; accepted keys in "
                                          f"model: type, "):
        config.with_overrides({f"model.{foreign}": 1})


def test_unknown_family_is_a_config_error_naming_the_accepted_ones():
    with pytest.raises(ConfigError, match="config key 'model.type': invalid value 'flow'; accepted: 'rbm', 'bm', "):
        load_config(None, ["model.type=flow"])
