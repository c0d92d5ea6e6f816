"""Samplers: Gibbs chains and persistent chains that own their state and generator."""

from .gibbs import PersistentChains, gibbs_hvh, sample_chains

__all__ = ["PersistentChains", "gibbs_hvh", "sample_chains"]
