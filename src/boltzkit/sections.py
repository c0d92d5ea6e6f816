"""The base of every config section (kept apart so that model families can declare their
own section without importing the run configuration)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment, and
    NaN or infinite floats are refused (no key means anything by them)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
