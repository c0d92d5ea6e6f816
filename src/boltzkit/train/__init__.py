"""Training: objectives, optimizer and schedule registries, the loop, checkpoints."""

from .objectives import ContrastiveDivergence, PersistentContrastiveDivergence
from .optim import build_optimizer, optimizer_classes
from .schedules import SCHEDULES, Schedule
from .trainer import TrainingInterrupted, TrainResult, train

__all__ = [
    "SCHEDULES",
    "ContrastiveDivergence",
    "PersistentContrastiveDivergence",
    "Schedule",
    "TrainResult",
    "TrainingInterrupted",
    "build_optimizer",
    "optimizer_classes",
    "train",
]
