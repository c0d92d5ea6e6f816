"""boltzkit: deep generative models trained, evaluated and tuned well, on PyTorch.

Quick start::

    import boltzkit
    from boltzkit.train import fit, train

    result = train(boltzkit.load_config("rbm-digits"), "runs/digits")   # a run directory
    run = boltzkit.load("runs/digits")          # .model, .config, .history
    samples = run.model.sample(16)              # (16, 64) visible states
"""

from pathlib import Path

from .config import RunConfig, load_config
from .data import Dataset, load_dataset
from .errors import BoltzkitError, CheckpointError, ConfigError, DataError, DivergenceError
from .models import MLP, RBM, BoltzmannMachine

__version__ = "0.1.0"


def load(run: str | Path, device: str = "cpu"):
    """A trained run directory: ``.model``, ``.config`` and ``.history`` (see
    :func:`boltzkit.train.run_dir.load`)."""
    from .train.run_dir import load as load_run  # the trainer's imports only when needed

    return load_run(run, device)


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
    "load",
    "load_config",
    "load_dataset",
]
