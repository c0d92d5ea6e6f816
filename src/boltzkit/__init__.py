"""boltzkit: deep generative models trained, evaluated and tuned well, on PyTorch.

Quick start::

    from boltzkit import load_config
    from boltzkit.train import train

    result = train(load_config("rbm-digits"), "runs/digits")
"""

from .config import RunConfig, load_config
from .data import Dataset, load_dataset
from .errors import BoltzkitError, CheckpointError, ConfigError, DataError, DivergenceError
from .models import MLP, RBM, BoltzmannMachine

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "RBM",
    "BoltzkitError",
    "BoltzmannMachine",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Dataset",
    "DivergenceError",
    "RunConfig",
    "__version__",
    "load_config",
    "load_dataset",
]
