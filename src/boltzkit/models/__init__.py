"""Models: ``nn.Module`` classes holding parameters and maths only."""

from .bm import BoltzmannMachine, coupling_mask
from .mlp import MLP
from .rbm import RBM

__all__ = ["MLP", "RBM", "BoltzmannMachine", "coupling_mask"]
