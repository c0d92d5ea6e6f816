"""Training: the ``fit()`` core and the run-directory trainer with checkpoints."""

from .fit import Fit, FitResult, TrainState, fit
from .trainer import TrainingInterrupted, TrainResult, train

__all__ = ["Fit", "FitResult", "TrainResult", "TrainState", "TrainingInterrupted", "fit", "train"]
