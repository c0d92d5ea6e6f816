"""Estimators: exact log Z, AIS, reverse AIS, pseudo-likelihood, reconstruction error."""

from .ais import (
    AISResult,
    ReverseAISResult,
    ais_log_partition,
    base_rate_bias,
    default_betas,
    reverse_ais_log_likelihood,
)
from .evaluate import evaluate_rbm
from .exact import enumerable, exact_log_likelihood, exact_log_partition
from .exact_bm import bm_log_likelihood, bm_log_partition
from .multipath import MultiPathAIS, data_log_z_bound, multipath_log_partition
from .pseudo_likelihood import pseudo_log_likelihood, reconstruction_error

__all__ = [
    "AISResult",
    "MultiPathAIS",
    "ReverseAISResult",
    "ais_log_partition",
    "base_rate_bias",
    "bm_log_likelihood",
    "bm_log_partition",
    "data_log_z_bound",
    "default_betas",
    "enumerable",
    "evaluate_rbm",
    "exact_log_likelihood",
    "exact_log_partition",
    "multipath_log_partition",
    "pseudo_log_likelihood",
    "reconstruction_error",
    "reverse_ais_log_likelihood",
]
