import pytest
import torch

from boltzkit.objectives import FreeEnergyGap
from boltzkit.sampling import ContrastiveChains, ParallelTempering, PersistentChains, temperature_ladder
from helpers import random_rbm


def _analytic_gradients(model, v_data, v_model):
    """Minus (data statistics - model statistics): the gradient CD/PCD descend."""
    p_data = model.hidden_mean(v_data)
    p_model = model.hidden_mean(v_model)
    d_w = -(v_data.T @ p_data / len(v_data) - v_model.T @ p_model / len(v_model))
    d_b = -(v_data.mean(0) - v_model.mean(0))
    d_c = -(p_data.mean(0) - p_model.mean(0))
    return d_w, d_b, d_c


def _objective(method, k, g, n_chains=7):
    if method == "cd":
        return FreeEnergyGap(ContrastiveChains(k, g))
    if method == "pt":
        return FreeEnergyGap(ParallelTempering(temperature_ladder(3, 0.5), n_chains, g, rounds=k))
    return FreeEnergyGap(PersistentChains(n_chains, g, steps=k))


@pytest.mark.parametrize("method", ["cd", "pcd", "pt"])
@pytest.mark.parametrize("k", [1, 3])
def test_autograd_gradient_equals_positive_minus_negative_statistics(method, k):
    model = random_rbm(6, 4, scale=0.5)
    g = torch.Generator().manual_seed(0)
    v = (torch.rand(10, 6, generator=g) < 0.5).double()
    objective = _objective(method, k, g)
    for _ in range(2):  # the second call uses chains that persisted (pcd)
        model.zero_grad()
        objective.loss(model, v).backward()
        with torch.no_grad():
            d_w, d_b, d_c = _analytic_gradients(model, v, objective.negatives)
        assert torch.allclose(model.weight.grad, d_w, atol=1e-12)
        assert torch.allclose(model.visible.bias.grad, d_b, atol=1e-12)
        assert torch.allclose(model.hidden.bias.grad, d_c, atol=1e-12)


def test_pcd_chains_persist_across_updates():
    """PCD-1's next negatives are one Gibbs sweep from the chains' saved hidden state, not
    from the data: replaying that sweep by hand with the same generator state gives them."""
    model = random_rbm(6, 4)
    g = torch.Generator().manual_seed(0)
    chains = PersistentChains(13, g, steps=1)
    objective = FreeEnergyGap(chains)
    v = (torch.rand(5, 6, generator=g) < 0.5).double()
    objective.loss(model, v)
    assert objective.negatives.shape == (13, 6)
    hidden, state = chains.hidden.clone(), g.get_state()
    objective.loss(model, 1 - v)  # other data: must not matter to persistent chains
    replay = torch.Generator().manual_seed(0)
    replay.set_state(state)
    expected = model.sample_visible(hidden, replay)
    assert torch.equal(objective.negatives, expected)
    assert torch.equal(chains.hidden, model.sample_hidden(expected, replay))


@pytest.mark.parametrize("method", ["cd", "pcd", "pt"])
def test_state_dict_round_trip_gives_the_same_next_sample(method):
    model = random_rbm(6, 4)
    v = (torch.rand(5, 6, generator=torch.Generator().manual_seed(1)) < 0.5).double()
    a = _objective(method, 2, torch.Generator().manual_seed(0))
    a.loss(model, v)
    state = a.state_dict()
    b = _objective(method, 2, torch.Generator().manual_seed(99))
    b.load_state_dict(state)
    a.loss(model, v)
    b.loss(model, v)
    assert torch.equal(a.negatives, b.negatives)


def test_invalid_k():
    with pytest.raises(ValueError, match="Invalid number of Gibbs steps k: 0"):
        ContrastiveChains(0, torch.Generator())
    with pytest.raises(ValueError, match="Invalid number of chains: 0"):
        PersistentChains(0, torch.Generator())
