"""The base of every config section, and the optimizer and schedule sections (kept apart
so that model families can declare their own section, a GAN's second optimizer included,
without importing the run configuration)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .optim.optimizers import check_optimizer_kwargs, check_optimizer_values
from .optim.schedules import check_schedule


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment, and
    NaN or infinite floats are refused (no key means anything by them)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class OptimizerConfig(BaseModel):
    """``name`` picks a ``torch.optim`` class; the other keys are its keyword arguments."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)
    name: str = "sgd"
    lr: float = Field(0.05, gt=0, le=1e4)
    """At most 10,000: beyond, every optimizer diverges on the first update."""
    decay_biases: bool = False
    """Apply ``weight_decay`` to biases and variances too (default: couplings only)."""

    @model_validator(mode="after")
    def _known_arguments(self) -> OptimizerConfig:
        check_optimizer_kwargs(self.name, self.kwargs())
        check_optimizer_values(self.name, self.kwargs())
        return self

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the optimizer class (all but ``name`` and ``decay_biases``)."""
        return {"lr": self.lr, **(self.model_extra or {})}


class ScheduleConfig(BaseModel):
    """``name`` picks a schedule; ``unit`` says whether it steps per epoch or per batch."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)
    name: str = "constant"
    unit: Literal["epoch", "step"] = "epoch"

    @model_validator(mode="after")
    def _known_parameters(self) -> ScheduleConfig:
        check_schedule(self.name, self.params())
        return self

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
