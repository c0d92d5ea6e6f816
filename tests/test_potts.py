import itertools

import numpy as np
import pytest

from boltzkit.config import load_config
from boltzkit.data import load_dataset
from boltzkit.data.potts import PottsChain


def test_log_prob_is_normalized_and_sampling_is_exact():
    chain = PottsChain(length=4, states=3, coupling=1.2, field=0.8)
    every = np.array(list(itertools.product(range(3), repeat=4)))
    p = np.exp(chain.log_prob(every))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    draws = chain.sample(100_000, seed=1)
    codes = (draws * 3 ** np.arange(3, -1, -1)).sum(1)
    freq = np.bincount(codes, minlength=81) / len(draws)
    assert np.abs(freq - p).max() < 5 * np.sqrt(p.max() / len(draws))


def test_potts_data_set_is_one_hot():
    data = load_dataset(load_config("rbm-potts", ["data.potts.examples=200"]).data)
    groups = data.train.reshape(len(data.train), 6, 3)
    assert bool((groups.sum(-1) == 1).all()) and data.test.shape[1] == 18


def test_categorical_rbm_learns_a_potts_chain_to_its_entropy(tmp_path):
    from boltzkit.train import train

    config = load_config("rbm-potts", [
        "data.potts={length: 4, states: 3, coupling: 1.0, field: 0.5, examples: 3000, seed: 0}",
        "data.image_shape=[4, 3]", "train.epochs=12", "model.n_hidden=12"])
    history = train(config, tmp_path / "run", progress=False).history
    chain = PottsChain(4, 3, 1.0, 0.5)
    entropy = -chain.log_prob(chain.sample(50_000, seed=9)).mean()
    first, last = history[0]["val_log_likelihood"], history[-1]["val_log_likelihood"]
    assert last > first
    assert last > -entropy - 0.1  # within 0.1 nats of the best achievable (the true model)
