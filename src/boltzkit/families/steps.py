"""How a family's model is updated: train steps, and training in stages.

A :class:`TrainStep` performs one update from one batch and owns what that needs (its
optimizers, schedules, objectives); :class:`GradientStep` is the usual one (one
objective, one optimizer, one backward). A family that needs more (two optimizers and
alternating updates, say) writes its own TrainStep. A family trains in one or more
:class:`Stage` s (a DBN: layer 1, layer 2, fine-tuning), each with its own epochs and a
fresh step, each resumable from the middle (the trainer saves the step's state).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import onednn
from ..objectives.base import Objective
from ..optim.schedules import Schedule


class NonFiniteLoss(ArithmeticError):
    """A step met a NaN or infinite loss and did not update (``value``, rate ``lr``)."""

    def __init__(self, value: float, lr: float):
        super().__init__(f"the loss became {value}")
        self.value, self.lr = value, lr


class TrainStep(ABC):
    """One update of ``model`` from one batch; returns the loss value it logs."""

    @abstractmethod
    def __call__(self, model: nn.Module, batch: Any) -> float: ...

    @property
    @abstractmethod
    def lr(self) -> float:
        """The learning rate logged as ``lr`` (the first optimizer's first group)."""

    def end_epoch(self, metrics: Mapping[str, float]) -> None:  # noqa: B027 (optional hook)
        """Called after each epoch's metrics (per-epoch schedules step here)."""

    def epoch_metrics(self) -> dict[str, float]:
        """What the step observed during the epoch (e.g. a sampler's swap rates)."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GradientStep(TrainStep):
    """``loss = objective.loss(model, batch)``; backward; ``clip``; ``optimizer.step()``;
    a per-step ``schedule`` steps after every update, a per-epoch one after every epoch.
    With ``closed_form`` the objective writes the gradients itself
    (:meth:`~boltzkit.objectives.base.Objective.write_gradients`) instead of the backward
    pass: the same update to rounding, without an autograd graph.

    A non-finite loss raises :class:`NonFiniteLoss` before any parameter changes. With
    ``log_grad_norms`` every parameter's gradient norm (before clipping) is averaged over
    the epoch and logged as ``grad_norm/<parameter>``: vanishing or exploding gradients
    show layer by layer.
    """

    def __init__(self, objective: Objective, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 clip: Callable[[nn.Module], None] | None = None, closed_form: bool = False,
                 log_grad_norms: bool = False):
        self.objective, self.optimizer, self.schedule, self.clip = objective, optimizer, schedule, clip
        self.closed_form = closed_form
        self.log_grad_norms = log_grad_norms
        self.norm_sums: dict[str, float] = {}
        self.norm_steps = 0

    def _record_norms(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            if param.grad is not None:
                norm = float(torch.linalg.vector_norm(param.grad))
                self.norm_sums[name] = self.norm_sums.get(name, 0.0) + norm
        self.norm_steps += 1

    def __call__(self, model: nn.Module, batch: Any) -> float:
        if self.closed_form:
            value = self.objective.write_gradients(model, batch)
        else:
            # train.product_kernel onednn: the dense layers forward and backward in oneDNN
            kernel = self.objective.product_kernel
            with onednn.LinearLayers(kernel) if kernel != "torch" else nullcontext():
                loss = self.objective.loss(model, batch)
            value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLoss(value, self.lr)
        if not self.closed_form:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if self.log_grad_norms:
            self._record_norms(model)
        if self.clip is not None:
            self.clip(model)
        self.optimizer.step()
        if self.schedule.unit == "step":
            self.schedule.step()
        return value

    @property
    def lr(self) -> float:
        return self.schedule.lrs[0]

    def end_epoch(self, metrics: Mapping[str, float]) -> None:
        if self.schedule.unit == "epoch":
            self.schedule.step(metrics)

    def epoch_metrics(self) -> dict[str, float]:
        norms = {f"grad_norm/{name}": total / self.norm_steps for name, total in self.norm_sums.items()}
        self.norm_sums, self.norm_steps = {}, 0
        return {**self.objective.epoch_metrics(), **norms}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "objective": self.objective.state_dict(),
                "grad_norms": {"sums": dict(self.norm_sums), "steps": self.norm_steps}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.objective.load_state_dict(state["objective"])
        norms = state.get("grad_norms", {"sums": {}, "steps": 0})  # absent before they were logged
        self.norm_sums, self.norm_steps = dict(norms["sums"]), int(norms["steps"])


@dataclass
class Stage:
    """A part of a run with its own epochs and update rule.

    Attributes:
        name: shown in progress lines and logged as ``stage`` when a run has several.
        epochs: epochs of this stage.
        build_step: a fresh :class:`TrainStep` for the stage (called at its start, and
            on resume before the saved state is loaded into it).
        prepare: maps a training batch to this stage's input (e.g. the hidden
            activities of the layers below); default: the batch itself.
        metrics: ``epoch -> metrics`` for this stage; default: the task's.
    """

    name: str
    epochs: int
    build_step: Callable[[], TrainStep]
    prepare: Callable[[Any], Any] | None = None
    metrics: Callable[[int], dict[str, float]] | None = None
