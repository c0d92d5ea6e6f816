"""scikit-learn estimators trained by boltzkit's ``fit()`` core (no run directory).

``BernoulliRBM`` is a drop-in for scikit-learn's; ``GaussianRBM`` transforms real-valued
features; ``RBMPretrainedClassifier`` pretrains an MLP's first layer as an RBM and
fine-tunes it. They work in ``Pipeline``, ``GridSearchCV``, ``clone`` and pickle, and pass
scikit-learn's estimator checks. Importing this module imports scikit-learn.
"""

from .classifier import RBMPretrainedClassifier
from .rbm import BernoulliRBM, GaussianRBM, LikelihoodEstimate

__all__ = ["BernoulliRBM", "GaussianRBM", "LikelihoodEstimate", "RBMPretrainedClassifier"]
