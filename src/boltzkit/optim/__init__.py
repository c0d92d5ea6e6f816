"""Optimizers, learning-rate schedules and the range test: torch and boltzkit's seeding
helpers only (the config validates against these registries without importing the
trainer)."""

from .lr_finder import LRFindResult, lr_range_test
from .optimizers import build_optimizer, check_optimizer_kwargs, make_optimizer, optimizer_classes
from .schedules import SCHEDULE_NAMES, SCHEDULES, Schedule, check_schedule, make_schedule

__all__ = [
    "SCHEDULES",
    "SCHEDULE_NAMES",
    "LRFindResult",
    "Schedule",
    "build_optimizer",
    "check_optimizer_kwargs",
    "check_schedule",
    "lr_range_test",
    "make_optimizer",
    "make_schedule",
    "optimizer_classes",
]
