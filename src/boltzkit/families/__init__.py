"""Model families as plug-ins: one module per family, each registering a :class:`Family`.

Adding a family is one new module here (its config section, model builder and task,
ending with ``register(Family(...))``), its import below, and one entry in the tests'
family table. Importing this package imports PyTorch but not matplotlib.
"""

# Built-in families register themselves on import, in the order listings show them.
# isort: off
from . import rbm, bm, dbn, dbm, mlp  # noqa: E402, F401
from . import autoencoder, vae, gan  # noqa: E402, F401
# isort: on
from .contract import COMMON_METRICS, Capabilities, Family, ModelSection, split_metrics
from .registry import family_names, get_family, register, unregister
from .steps import GradientStep, NonFiniteLoss, Stage, TrainStep
from .task import Task

__all__ = [
    "COMMON_METRICS",
    "Capabilities",
    "Family",
    "GradientStep",
    "ModelSection",
    "NonFiniteLoss",
    "Stage",
    "Task",
    "TrainStep",
    "family_names",
    "get_family",
    "register",
    "split_metrics",
    "unregister",
]
