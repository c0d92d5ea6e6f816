"""Models: ``nn.Module`` classes holding parameters and maths only."""

from .bm import BoltzmannMachine, coupling_mask
from .cnn import SmallCNN
from .mlp import MLP
from .rbm import RBM

__all__ = ["MLP", "RBM", "BoltzmannMachine", "SmallCNN", "coupling_mask"]
