import itertools

import numpy as np
import pytest
import torch

from boltzkit.config import load_config
from boltzkit.data import load_dataset
from boltzkit.data.potts import PottsChain


def test_log_prob_is_normalized_and_sampling_is_exact():
    chain = PottsChain(length=4, states=3, coupling=1.2, field=0.8)
    every = np.array(list(itertools.product(range(3), repeat=4)))
    p = np.exp(chain.log_prob(every))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    # log p(x) = J #{x_i = x_i+1} + sum_i h_{x_i} - log Z with h_s = 0.8 s / 2, by hand:
    log_p = chain.log_prob(np.array([[0, 0, 0, 0], [2, 2, 2, 2], [0, 1, 0, 1], [2, 2, 1, 0]]))
    assert log_p[1] - log_p[0] == pytest.approx(4 * 0.8, abs=1e-12)  # same 3 bonds, field 4 * 0.8
    assert log_p[2] - log_p[0] == pytest.approx(-3 * 1.2 + 2 * 0.4, abs=1e-12)  # no bonds, field 2 * 0.4
    assert log_p[3] - log_p[0] == pytest.approx(-2 * 1.2 + 2 * 0.8 + 0.4, abs=1e-12)
    draws = chain.sample(100_000, seed=1)
    codes = (draws * 3 ** np.arange(3, -1, -1)).sum(1)
    freq = np.bincount(codes, minlength=81) / len(draws)
    se = np.sqrt(p * (1 - p) / len(draws))
    assert np.all(np.abs(freq - p) < 5 * se)  # every one of the 81 states within 5 standard errors


def test_potts_data_set_is_one_hot():
    data = load_dataset(load_config("rbm-potts", ["data.potts.examples=200"]).data)
    groups = data.train.reshape(len(data.train), 6, 3)
    assert bool((groups.sum(-1) == 1).all()) and data.test.shape[1] == 18


def test_categorical_rbm_learns_a_potts_chain_to_its_entropy(tmp_path):
    from boltzkit.estimate.exact import exact_log_likelihood
    from boltzkit.train import train

    config = load_config("rbm-potts", [
        "data.potts={length: 4, states: 3, coupling: 1.0, field: 0.5, examples: 3000, seed: 0}",
        "data.image_shape=[4, 3]", "train.epochs=12", "model.n_hidden=12"])
    result = train(config, tmp_path / "run", progress=False)
    history = result.history
    chain = PottsChain(4, 3, 1.0, 0.5)
    every = np.array(list(itertools.product(range(3), repeat=4)))
    log_p = chain.log_prob(every)
    entropy = -(np.exp(log_p) * log_p).sum()  # exact, over all 81 sequences
    first, last = history[0]["val_log_likelihood"], history[-1]["val_log_likelihood"]
    assert last > first
    assert last > -entropy - 0.1  # within 0.1 nats of the best achievable (the true model)
    # the reported figure is the returned model's exact log-likelihood of the validation set...
    validation = load_dataset(config.data, config.seed).validation
    model_ll = exact_log_likelihood(result.model, validation).to(torch.float64)
    assert last == pytest.approx(model_ll.mean().item(), abs=1e-5)
    # ...and cannot beat the true distribution on the same sequences beyond the noise
    # (Gibbs' inequality: E_p[log q - log p] = -KL(p || q) <= 0); an underestimated log Z fails here
    sequences = validation.reshape(len(validation), 4, 3).argmax(-1).numpy()
    gap = model_ll - torch.from_numpy(chain.log_prob(sequences))
    assert gap.mean() < 3 * gap.std() / len(gap) ** 0.5
