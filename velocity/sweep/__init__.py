"""Sweeps: a strategy × attack × heterogeneity matrix of federated runs."""

from velocity.sweep.experiment import SpecError, grid, load_experiment, parse_experiment
from velocity.sweep.spec import RunSpec
from velocity.sweep.sweep import Sweep

__all__ = ["RunSpec", "SpecError", "Sweep", "grid", "load_experiment", "parse_experiment"]
