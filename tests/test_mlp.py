import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from boltzkit.config import load_config
from boltzkit.data import load_dataset
from boltzkit.errors import ConfigError, DataError
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
        ("normal", "sigmoid", 1.0),  # the naive schemes ignore the layer's size
        ("small", "sigmoid", 0.05 / math.sqrt(3)),  # U(-0.05, 0.05)
    ],
)
def test_initialisation_variance(init, activation, expected_std):
    model = MLP(WIDE, [500], 10, activation=activation, init=init,
                generator=torch.Generator().manual_seed(0))
    weight = model.first_linear().weight
    n = weight.numel()
    # 5 standard errors: of a normal sample's s.d. (sigma / sqrt(2n)) and of its mean (sigma / sqrt(n))
    assert weight.std().item() == pytest.approx(expected_std, rel=5 / math.sqrt(2 * n))
    assert weight.mean().abs().item() < 5 * expected_std / math.sqrt(n)
    assert torch.all(model.first_linear().bias == 0)


@pytest.mark.parametrize("init", ["he", "lecun"])
def test_output_layer_is_glorot_whatever_the_hidden_init(init):
    """fan_in 10, fan_out 3000: Glorot's sqrt(2 / 3010) is far from He's or LeCun's 1 / sqrt(10)."""
    model = MLP(10, [], 3000, activation="relu", init=init, generator=torch.Generator().manual_seed(0))
    out = model.output.weight
    assert out.std().item() == pytest.approx(math.sqrt(2 / 3010), rel=5 / math.sqrt(2 * out.numel()))
    assert torch.all(model.output.bias == 0)


@pytest.mark.parametrize("activation, cls", [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU),
                                             ("elu", nn.ELU), ("selu", nn.SELU), ("gelu", nn.GELU)])
def test_activation_batch_norm_and_dropout_layers(activation, cls):
    g = torch.Generator().manual_seed(0)
    model = MLP(8, [6, 4], 3, activation=activation, batch_norm=True, dropout=0.2, generator=g)
    for block in model.hidden:
        kinds = [type(layer) for layer in block]
        assert kinds[0] is nn.Linear and kinds[1] is nn.BatchNorm1d and kinds[2] is cls
        assert kinds[3] is (nn.AlphaDropout if activation == "selu" else nn.Dropout)
        assert block[3].p == 0.2
    # in eval mode the logits are output(act(bn(linear(x)))) block after block, dropout off
    act = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.01), "elu": F.elu,
           "selu": F.selu, "gelu": F.gelu}[activation]
    with torch.no_grad():
        for block in model.hidden:  # non-trivial running statistics and affine parameters
            bn = block[1]
            for t in (bn.running_mean, bn.weight, bn.bias):
                t.copy_(torch.randn(t.shape, generator=g))
            bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) + 0.5)
    model.eval()
    x = torch.randn(5, 8, generator=g)
    h = x
    for block in model.hidden:
        linear, bn = block[0], block[1]
        z = (h @ linear.weight.T + linear.bias - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps)
        h = act(z * bn.weight + bn.bias)
    expected = h @ model.output.weight.T + model.output.bias
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_he_init_keeps_relu_activations_from_shrinking():
    """The point of He initialisation: the signal's scale survives depth.

    With inputs of second moment 1 each ReLU layer multiplies the second moment by
    ``fan_in Var W / 2``: 1 for He, 1/2 for Glorot (fan_in = fan_out), so after 10 layers
    about 1 and 2^-10 (within a factor 2 here: finite width adds spread).
    """
    x = torch.randn(2000, 256, generator=torch.Generator().manual_seed(0))
    for init, expected in (("he", 1.0), ("glorot", 2.0**-10)):
        model = MLP(256, [256] * 10, 10, init=init, generator=torch.Generator().manual_seed(1))
        h = x
        with torch.no_grad():
            for block in model.hidden:
                h = block(h)
        assert expected / 2 < h.pow(2).mean().item() < 2 * expected, init


def test_without_a_generator_the_weights_come_from_the_global_generator():
    """generator=None means PyTorch's global generator, not a hidden fixed seed."""

    def weights(global_seed):
        torch.manual_seed(global_seed)
        return [p.detach().clone() for p in MLP(6, [5], 3).parameters()]

    with torch.random.fork_rng(devices=[]):
        a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_input_dropout_drops_inputs_in_training_only():
    """Each input reaches the first layer as 0 or scaled by 1 / (1 - p), about p of them 0;
    in eval mode the logits are those of the same weights without input dropout."""
    g = torch.Generator().manual_seed(0)
    model = MLP(200, [6], 3, activation="sigmoid", input_dropout=0.3, generator=g)
    plain = MLP(200, [6], 3, activation="sigmoid")
    plain.load_state_dict(model.state_dict())  # dropout has no parameters: the same weights
    seen = []
    model.hidden[0][0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.rand(50, 200, generator=g) + 0.1  # no zero inputs of its own
    torch.manual_seed(1)
    model.train()(x)
    kept = seen[0] != 0
    assert torch.allclose(seen[0][kept], x[kept] / 0.7)
    assert (~kept).float().mean().item() == pytest.approx(0.3, abs=4 * math.sqrt(0.3 * 0.7 / x.numel()))
    model.eval()
    assert torch.equal(model(x), plain.eval()(x))


def test_invalid_knobs():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        MLP(4, [3], 2, activation="swishy")
    with pytest.raises(ValueError, match="unknown initialisation 'orthogonal'"):
        MLP(4, [3], 2, init="orthogonal")
    with pytest.raises(ValueError, match="Invalid dropout: 1.0"):
        MLP(4, [3], 2, dropout=1.0)
    with pytest.raises(ValueError, match="Invalid input_dropout: -0.1"):
        MLP(4, [3], 2, input_dropout=-0.1)
    with pytest.raises(ConfigError, match=r"config key 'model.input_dropout': invalid value 1.0"):
        load_config("mlp-digits", ["model.input_dropout=1.0"])


MLP_FAST = ["model={type: mlp}", "model.hidden_layers=[64]", "train.epochs=4", "train.batch_size=32",
            "train.optimizer={name: sgd, lr: 0.1, momentum: 0.9}", "train.schedule={name: constant}",
            "data.binarize=none", "train.metrics_examples=500"]


def test_mlp_trains_on_digits_and_reports_accuracy(tmp_path):
    config = load_config(None, MLP_FAST)
    result = train(config, tmp_path / "run", progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["val_accuracy"] > 0.9
    assert last["val_loss"] < 0.75 * first["val_loss"]  # epochs 2-4 still improve on epoch 1
    # the reported numbers are the returned model's, on the validation split
    data = load_dataset(config.data, config.seed)
    assert len(data.validation) <= 500  # metrics_examples: the whole split is measured
    model = result.model.eval()
    with torch.no_grad():
        logits = model(data.validation)
    accuracy = (logits.argmax(dim=1) == data.validation_labels).float().mean().item()
    assert last["val_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert last["val_loss"] == pytest.approx(F.cross_entropy(logits, data.validation_labels).item(), rel=1e-5)
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
    with pytest.raises(DataError, match="pretrained layer 1 has weights of shape \\(30, 64\\) but hidden layer 1 needs \\(64, 64\\)"):
        train(load_config(None, [*MLP_FAST, f"model.pretrained={tmp_path / 'rbm'}"]),
              tmp_path / "mlp", progress=False)
    import numpy as np

    np.savez(tmp_path / "nolabels.npz", x=np.random.default_rng(0).random((50, 4)))
    with pytest.raises(DataError, match="needs labels and this data set has none"):
        train(load_config(None, [*MLP_FAST, "data.name=npz", f"data.path={tmp_path / 'nolabels.npz'}"]),
              tmp_path / "x", progress=False)


def test_load_pretrained_layers_sets_each_layer_and_refuses_too_many():
    model = MLP(6, [4, 3], 2, activation="sigmoid")
    g = torch.Generator().manual_seed(0)
    layers = [(torch.randn(4, 6, generator=g), torch.randn(4, generator=g)),
              (torch.randn(3, 4, generator=g), torch.randn(3, generator=g))]
    model.load_pretrained_layers(layers, freeze=True)
    for (weight, bias), block in zip(layers, model.hidden, strict=True):
        assert torch.equal(block[0].weight, weight) and torch.equal(block[0].bias, bias)
        assert not block[0].weight.requires_grad
    assert model.output.weight.requires_grad
    with pytest.raises(ValueError, match="3 pretrained layers but the MLP has 2 hidden layers"):
        model.load_pretrained_layers([*layers, layers[0]])
    with pytest.raises(ValueError, match="pretrained layer 2 has weights of shape \\(4, 6\\) but hidden layer 2 needs \\(3, 4\\)"):
        model.load_pretrained_layers([layers[0], layers[0]])
