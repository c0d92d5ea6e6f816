import math

import pytest
import torch
from torch import nn

from boltzkit.config import load_config
from boltzkit.errors import DataError
from boltzkit.models.mlp import MLP
from boltzkit.train import train

WIDE = 2000  # fan_in large enough for tight variance estimates


@pytest.mark.parametrize(
    "init, activation, expected_std",
    [
        ("he", "relu", math.sqrt(2 / WIDE)),
        ("he", "tanh", (5 / 3) / math.sqrt(WIDE)),
        ("glorot", "relu", math.sqrt(2 / (WIDE + 500))),
        ("glorot", "tanh", math.sqrt(2 / (WIDE + 500))),
        ("lecun", "selu", 1 / math.sqrt(WIDE)),
        ("he", "selu", 1 / math.sqrt(WIDE)),
    ],
)
def test_initialisation_variance(init, activation, expected_std):
    model = MLP(WIDE, [500], 10, activation=activation, init=init,
                generator=torch.Generator().manual_seed(0))
    weight = model.first_linear().weight
    assert weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert weight.mean().abs().item() < 0.05 * expected_std * 10
    assert torch.all(model.first_linear().bias == 0)


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU),
                                             ("elu", nn.ELU), ("selu", nn.SELU), ("gelu", nn.GELU)])
def test_activation_batch_norm_and_dropout_layers(activation, cls):
    model = MLP(8, [6, 4], 3, activation=activation, batch_norm=True, dropout=0.2)
    block = model.hidden[0]
    kinds = [type(layer) for layer in block]
    assert kinds[0] is nn.Linear and kinds[1] is nn.BatchNorm1d and kinds[2] is cls
    assert kinds[3] is (nn.AlphaDropout if activation == "selu" else nn.Dropout)
    assert model(torch.randn(5, 8)).shape == (5, 3)


def test_he_init_keeps_relu_activations_from_shrinking():
    """The point of He initialisation: the signal's scale survives depth."""
    torch.manual_seed(0)
    x = torch.randn(2000, 256)
    for init, lower in (("he", 0.5), ("glorot", 0.0)):
        model = MLP(256, [256] * 10, 10, init=init, generator=torch.Generator().manual_seed(1))
        h = x
        for block in model.hidden:
            h = block(h)
        if init == "he":
            assert h.pow(2).mean().item() > lower  # second moment stays O(1)
        else:
            assert h.pow(2).mean().item() < 0.05  # Glorot halves it per ReLU layer


def test_invalid_knobs():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        MLP(4, [3], 2, activation="swishy")
    with pytest.raises(ValueError, match="unknown initialisation 'orthogonal'"):
        MLP(4, [3], 2, init="orthogonal")
    with pytest.raises(ValueError, match="Invalid dropout: 1.0"):
        MLP(4, [3], 2, dropout=1.0)


MLP_FAST = ["model.type=mlp", "model.hidden_layers=[64]", "train.epochs=4", "train.batch_size=32",
            "train.optimizer={name: sgd, lr: 0.1, momentum: 0.9}", "train.schedule={name: constant}",
            "data.binarize=none", "train.metrics_examples=500"]


def test_mlp_trains_on_digits_and_reports_accuracy(tmp_path):
    result = train(load_config(None, MLP_FAST), tmp_path / "run", progress=False)
    last = result.history[-1]
    assert last["val_accuracy"] > 0.9
    assert last["val_loss"] < result.history[0]["val_loss"] or result.history[0]["val_accuracy"] > 0.9
    assert (tmp_path / "run" / "curves.png").is_file() and (tmp_path / "run" / "filters.png").is_file()


def test_mlp_from_a_pretrained_rbm_with_freezing(tmp_path):
    rbm = train(load_config(None, ["model.n_hidden=64", "train.epochs=5", "train.metrics_examples=50",
                                   "train.k=1", "train.optimizer={name: sgd, lr: 0.1, momentum: 0.5}"]),
                tmp_path / "rbm", progress=False)
    # frozen RBM features vary little between examples: batch norm rescales them
    config = load_config(None, [*MLP_FAST, f"model.pretrained={tmp_path / 'rbm'}",
                                "model.freeze_pretrained=true", "model.batch_norm=true"])
    result = train(config, tmp_path / "mlp", progress=False)
    layer = result.model.first_linear()
    assert torch.equal(layer.weight, rbm.model.weight.T)  # frozen: unchanged by training
    assert torch.equal(layer.bias, rbm.model.hidden.bias)
    assert not layer.weight.requires_grad
    assert result.history[-1]["val_accuracy"] > 0.8


def test_pretrained_shape_mismatch_and_missing_labels(tmp_path):
    train(load_config(None, ["model.n_hidden=30", "train.epochs=1", "train.metrics_examples=50"]),
          tmp_path / "rbm", progress=False)
    with pytest.raises(DataError, match="pretrained weights have shape \\(30, 64\\) but the first layer needs \\(64, 64\\)"):
        train(load_config(None, [*MLP_FAST, f"model.pretrained={tmp_path / 'rbm'}"]),
              tmp_path / "mlp", progress=False)
    import numpy as np

    np.savez(tmp_path / "nolabels.npz", x=np.random.default_rng(0).random((50, 4)))
    with pytest.raises(DataError, match="needs labels and this data set has none"):
        train(load_config(None, [*MLP_FAST, "data.name=npz", f"data.path={tmp_path / 'nolabels.npz'}"]),
              tmp_path / "x", progress=False)
