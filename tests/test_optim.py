import pytest
import torch

from boltzkit.optim.optimizers import build_optimizer, optimizer_classes


def test_every_torch_optimizer_is_available_by_lowercase_name():
    names = optimizer_classes()
    for expected in ["sgd", "adam", "adamw", "nadam", "radam", "rmsprop", "adagrad"]:
        assert expected in names


def test_build_passes_keywords_and_prefers_fused_kernels():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], "sgd", lr=0.1, momentum=0.9, nesterov=True)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, True)
    assert group.get("fused") is True
    assert build_optimizer([p], "adam", lr=1e-3, foreach=False).param_groups[0]["fused"] in (None, False)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("sgdx", {"lr": 0.1}, "unknown optimizer 'sgdx'; accepted: "),
        ("adam", {"lr": 0.1, "momentum": 0.9}, "'momentum' is not an argument of torch.optim.Adam"),
        ("sgd", {"lr": -1.0}, "torch.optim.SGD: Invalid learning rate: -1.0"),
    ],
)
def test_invalid_optimizers(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_optimizer([torch.nn.Parameter(torch.zeros(2))], name, **kwargs)


def test_parameter_groups_exempt_biases_from_weight_decay():
    from boltzkit.models import RBM
    from boltzkit.optim.optimizers import parameter_groups

    model = RBM(5, 3)
    decay, no_decay = parameter_groups(model, 0.01)
    assert decay["params"] == [model.weight] and decay["weight_decay"] == 0.01
    assert {id(p) for p in no_decay["params"]} == {id(model.visible.bias), id(model.hidden.bias)}
    assert no_decay["weight_decay"] == 0.0
    (everything,) = parameter_groups(model, 0.01, decay_biases=True)
    assert len(everything["params"]) == 3
    (default, _) = parameter_groups(model, None)
    assert "weight_decay" not in default  # the optimizer's own default applies


def test_make_optimizer_keeps_adamw_default_decay_on_weights():
    from boltzkit.config import load_config
    from boltzkit.models import RBM
    from boltzkit.optim.optimizers import make_optimizer

    config = load_config(None, ["train.optimizer={name: adamw, lr: 0.001}"])
    opt = make_optimizer(RBM(5, 3), config.train.optimizer)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]


def test_clip_by_value_and_norm():
    from types import SimpleNamespace

    from boltzkit.optim.optimizers import clip_gradients

    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    clip_gradients(torch.nn.ParameterList([p]), SimpleNamespace(clip_grad_value=1.0, clip_grad_norm=None))
    assert p.grad.tolist() == [1.0, -1.0, 0.5, 0.0]
    clip_gradients(torch.nn.ParameterList([p]), SimpleNamespace(clip_grad_value=None, clip_grad_norm=0.1))
    assert p.grad.norm().item() == pytest.approx(0.1, rel=1e-4)
