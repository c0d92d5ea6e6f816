"""train.log_grad_norms: each parameter's gradient norm, averaged over the epoch."""

import pytest
import torch
from torch import nn

from boltzkit import load_config
from boltzkit.families.steps import GradientStep
from boltzkit.objectives.base import Objective
from boltzkit.optim.schedules import make_schedule
from boltzkit.train import fit


class Linear(Objective):
    """loss = sum(weight * batch): the gradient of ``weight`` is ``batch`` itself."""

    def loss(self, model, batch):
        return (model.weight * batch).sum()


def test_the_logged_norm_is_the_mean_of_each_steps_gradient_norm_before_clipping():
    model = nn.Linear(2, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    clipped = []
    step = GradientStep(Linear(), optimizer, make_schedule(optimizer), clip=lambda m: clipped.append(1) or
                        nn.utils.clip_grad_norm_(m.parameters(), 0.1), log_grad_norms=True)
    step(model, torch.tensor([[3.0, 4.0]]))  # gradient norm 5
    step(model, torch.tensor([[0.0, 1.0]]))  # gradient norm 1
    assert step.epoch_metrics() == {"grad_norm/weight": pytest.approx(3.0)}
    assert step.epoch_metrics() == {}  # a new epoch starts from zero
    assert len(clipped) == 2


def test_a_run_logs_every_layer():
    config = load_config("mlp-digits", ["train.epochs=1", "train.log_grad_norms=true", "threads=1",
                                        "model.hidden_layers=[8, 8]"])
    result = fit(config)
    row = result.history[-1]
    names = sorted(k for k in row if k.startswith("grad_norm/"))
    assert names == sorted(f"grad_norm/{n}" for n, _ in result.model.named_parameters())
    assert all(row[n] > 0 for n in names)
