import pytest
import torch

from boltzkit.train.optim import build_optimizer, optimizer_classes


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
