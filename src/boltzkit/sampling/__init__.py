"""Samplers: Gibbs chains, persistent chains and parallel tempering, each owning its state
and generator."""

from .gibbs import PersistentChains, gibbs_hvh, sample_chains
from .tempering import ParallelTempering, temperature_ladder

__all__ = ["ParallelTempering", "PersistentChains", "gibbs_hvh", "sample_chains", "temperature_ladder"]
