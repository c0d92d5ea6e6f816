"""Samplers: Gibbs chains, persistent chains and parallel tempering, each owning its state
and generator; Gibbs sweeps and mean field for general Boltzmann machines."""

from .boltzmann import gibbs_sweeps, mean_field
from .gibbs import ContrastiveChains, PersistentChains, gibbs_hvh, sample_chains
from .negative import NegativeSampler
from .tempering import ParallelTempering, temperature_ladder

__all__ = ["ContrastiveChains", "NegativeSampler", "ParallelTempering", "PersistentChains", "gibbs_hvh",
           "gibbs_sweeps", "mean_field", "sample_chains", "temperature_ladder"]
