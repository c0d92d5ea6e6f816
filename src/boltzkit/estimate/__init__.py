"""Estimators: pseudo-likelihood, reconstruction error (exact log Z and AIS to come)."""

from .pseudo_likelihood import pseudo_log_likelihood, reconstruction_error

__all__ = ["pseudo_log_likelihood", "reconstruction_error"]
