"""Models: ``nn.Module`` classes holding parameters and maths only."""

from .rbm import RBM

__all__ = ["RBM"]
