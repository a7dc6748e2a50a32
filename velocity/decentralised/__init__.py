"""Decentralised learning with Byzantine workers: MoNNA and gossip averaging.

- :mod:`velocity.decentralised.setup`: what a decentralised run may be made of, checked once
  (``validate``), and the built-in mixer names; no torch.
- :mod:`velocity.decentralised.monna`: :class:`MonnaSimulation` (Farhadkhani et al., ICML 2023)
  and the nearest-neighbour mixing kernel.
- :mod:`velocity.decentralised.run`: a decentralised ``RunSpec`` as a :class:`~velocity.trainer.Trainer`
  for sweeps.
"""

from __future__ import annotations

from typing import Any

from velocity.decentralised.setup import AGGREGATORS, DecentralisedSetup, mixer_name, validate

__all__ = [
    "AGGREGATORS",
    "DecentralisedRun",
    "DecentralisedSetup",
    "MonnaSimulation",
    "MonnaStep",
    "Reach",
    "mixer_name",
    "nearest_neighbour_mix",
    "validate",
]

# The torch-backed parts load on first use, so specs can check decentralised runs cheaply.
_LAZY = {
    "MonnaSimulation": "velocity.decentralised.monna",
    "MonnaStep": "velocity.decentralised.monna",
    "Reach": "velocity.decentralised.monna",
    "nearest_neighbour_mix": "velocity.decentralised.monna",
    "DecentralisedRun": "velocity.decentralised.run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'velocity.decentralised' has no attribute {name!r}")
