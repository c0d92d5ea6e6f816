"""A toy model family defined entirely here, to prove that a family is one module plus one
registry entry: a mixture of ``K`` product-Bernoulli components,

    log p(v) = logsumexp_k [ log pi_k + sum_i v_i log mu_ki + (1 - v_i) log(1 - mu_ki) ],

with ``pi = softmax(logits)`` and ``mu = sigmoid(theta)``, trained by its exact negative
log-likelihood in two stages: ``components`` (theta alone, with the run's optimizer) and ``joint``, whose
own train step alternates two optimizers (SGD on the logits, Adam on theta), each with its
own schedule: the shape of a GAN's update, on a model whose likelihood is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from boltzkit.families import (
    Capabilities,
    Family,
    ModelSection,
    NonFiniteLoss,
    Stage,
    Task,
    TrainStep,
    register,
    split_metrics,
)
from boltzkit.objectives import Objective
from boltzkit.optim import build_optimizer, make_schedule

NAME = "toy-mixture"


class MixtureSection(ModelSection):
    type: Literal["toy-mixture"] = NAME
    components: int = Field(3, ge=1)
    component_epochs: int = Field(1, ge=1)
    """Epochs of the first stage (theta only); the joint stage takes train.epochs."""


class BernoulliMixture(nn.Module):
    def __init__(self, n_features: int, components: int, generator: torch.Generator):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.theta = nn.Parameter(torch.randn(components, n_features, generator=generator) * 0.5)

    def log_prob(self, v: Tensor) -> Tensor:
        """``log p(v)``, ``(B, D) -> (B,)``."""
        log_mu, log_not_mu = nn.functional.logsigmoid(self.theta), nn.functional.logsigmoid(-self.theta)
        per_component = v @ log_mu.T + (1 - v) @ log_not_mu.T  # (B, K)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + per_component, dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        k = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True, generator=generator)
        means = torch.sigmoid(self.theta[k])
        return torch.bernoulli(means, generator=generator), means


class NegativeLogLikelihood(Objective):
    def loss(self, model: BernoulliMixture, batch: Tensor) -> Tensor:
        return -model.log_prob(batch).mean()


class AlternatingStep(TrainStep):
    """Even updates move the mixture weights (SGD), odd updates the components (Adam)."""

    def __init__(self, model: BernoulliMixture, lr: float, total: int):
        self.objective = NegativeLogLikelihood()
        self.optimizers = [build_optimizer([model.logits], "sgd", lr=lr),
                           build_optimizer([model.theta], "adam", lr=lr)]
        self.schedules = [make_schedule(o, "cosine", total, "step") for o in self.optimizers]
        self.updates = 0

    def __call__(self, model: nn.Module, batch: Tensor) -> float:
        which = self.updates % 2
        loss = self.objective.loss(model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(loss.item(), self.lr)
        self.optimizers[which].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[which].step()
        self.schedules[which].step()
        self.updates += 1
        return loss.item()

    @property
    def lr(self) -> float:
        return self.schedules[0].lrs[0]

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "optimizers": [o.state_dict() for o in self.optimizers],
                "schedules": [s.state_dict() for s in self.schedules]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for schedule, saved in zip(self.schedules, state["schedules"], strict=True):
            schedule.load_state_dict(saved)


class MixtureTask(Task):
    summary_keys = ("loss", "val_log_likelihood")

    def stages(self, model: BernoulliMixture) -> list[Stage]:
        cfg, section = self.config.train, self.config.model
        steps = self.steps_per_epoch()

        def components() -> TrainStep:
            model.logits.requires_grad_(False)  # this stage fits the components alone
            return self.gradient_step(model, NegativeLogLikelihood(), section.component_epochs)

        def joint() -> TrainStep:
            model.logits.requires_grad_(True)
            return AlternatingStep(model, cfg.optimizer.lr, cfg.epochs * steps)

        return [Stage("components", section.component_epochs, components),
                Stage("joint", cfg.epochs, joint)]

    @torch.no_grad()
    def epoch_metrics(self, model: BernoulliMixture, epoch: int) -> dict[str, float]:
        n = self.config.train.metrics_examples
        return {"train_log_likelihood": model.log_prob(self.train_x[:n]).mean().item(),
                "val_log_likelihood": model.log_prob(self.data.validation[:n].to(self.device)).mean().item()}


def build_mixture(section: MixtureSection, data_info: Mapping[str, Any], generator: torch.Generator):
    return BernoulliMixture(data_info["n_features"], section.components, generator)


def sample_mixture(model, n, steps, generator, temperatures=0, min_beta=0.5):
    return model.sample(n, generator)


CAPABILITIES = Capabilities(sample=True, exact_likelihood=True, lr_find=False)


def register_toy() -> Family:
    return register(Family(
        name=NAME,
        description="mixture of product-Bernoulli components (test family)",
        section=MixtureSection,
        build=build_mixture,
        task=MixtureTask,
        metrics=split_metrics(log_likelihood="maximize"),
        capabilities=CAPABILITIES,
        unit_interval=lambda section: True,
        sample=sample_mixture,
    ))
