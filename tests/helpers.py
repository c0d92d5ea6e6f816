"""Brute-force references shared by the tests: enumerate every binary state."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def all_binary(n: int, dtype=torch.float64) -> Tensor:
    """Every vector in {0, 1}^n, shape ``(2**n, n)``."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=dtype)


def brute_free_energy(model, v: Tensor) -> Tensor:
    """``-log sum_h exp(-E(v, h))`` by enumerating every hidden state."""
    hs = all_binary(model.n_hidden, v.dtype)
    energies = torch.stack([model.energy(v, h.expand(len(v), -1)) for h in hs], dim=1)
    return -torch.logsumexp(-energies, dim=1)


def brute_log_z(model) -> Tensor:
    """``log sum_{v,h} exp(-E(v, h))``."""
    vs = all_binary(model.n_visible, model.weight.dtype)
    return torch.logsumexp(-brute_free_energy(model, vs), dim=0)


def random_rbm(n_visible: int, n_hidden: int, scale: float = 1.0, seed: int = 0):
    """A float64 RBM with weights and biases of size ~``scale``."""
    from boltzkit.models import RBM

    g = torch.Generator().manual_seed(seed)
    model = RBM(n_visible, n_hidden, generator=g).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(n_visible, n_hidden, generator=g, dtype=torch.float64) * scale)
        model.visible.bias.copy_(torch.randn(n_visible, generator=g, dtype=torch.float64) * scale)
        model.hidden.bias.copy_(torch.randn(n_hidden, generator=g, dtype=torch.float64) * scale)
    return model


def product_test_rbm(n_visible: int, n_hidden: int, init_std: float, centered: bool = False):
    """A float32 RBM with ``N(0, init_std)`` weights; centered, with offsets drawn from
    ``U(0.2, 0.8)`` so that the centering terms of every product are visible."""
    from boltzkit.models.rbm import RBM

    model = RBM(n_visible, n_hidden, generator=torch.Generator().manual_seed(0), init_std=init_std,
                centered=centered)
    if centered:
        with torch.no_grad():
            model.visible_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(1))
            model.hidden_offset.uniform_(0.2, 0.8, generator=torch.Generator().manual_seed(2))
    return model


def assert_resumes_exactly(config, state: dict, full) -> None:
    """A ``Fit`` restored from ``state``, with PyTorch's global generator moved elsewhere,
    ends with exactly the losses and weights of the uninterrupted session ``full``."""
    from boltzkit.train import Fit

    torch.manual_seed(123)  # the restored session must not depend on the global generator
    resumed = Fit(config)
    resumed.load_state_dict(state)
    resumed.run()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in full.history]
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def random_dbm(sizes, seed: int = 0, centered: bool = False, scale: float = 0.8):
    """A float64 DBM with random weights (``scale``), biases and, centered, offsets in [0.2, 0.8]."""
    from boltzkit.models.dbm import DBM

    g = torch.Generator().manual_seed(seed)
    model = DBM(list(sizes), scale, g, centered=centered).double()
    with torch.no_grad():
        for b in model.biases:
            b.normal_(0.0, 0.5, generator=g)
        if centered:
            for mu in model.offsets():
                mu.uniform_(0.2, 0.8, generator=g)
    return model
