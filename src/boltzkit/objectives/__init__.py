"""Training objectives: losses whose autograd gradient is the update (see ``base.Objective``)."""

from .base import Objective
from .boltzmann import BoltzmannMachineLearning
from .free_energy_gap import FreeEnergyGap
from .supervised import CrossEntropy

__all__ = ["BoltzmannMachineLearning", "CrossEntropy", "FreeEnergyGap", "Objective"]
