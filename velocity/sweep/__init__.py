"""Sweeps: a strategy × attack × heterogeneity matrix of federated runs."""

from velocity.sweep.experiment import SpecError, grid, load_experiment
from velocity.sweep.spec import RunSpec

__all__ = ["RunSpec", "SpecError", "grid", "load_experiment"]
