"""VelocityFL: a federated-learning robustness lab.

Which aggregation strategy survives which attack, on how heterogeneous a federation? The
aggregation rules, pre-aggregators, server optimisers and model-update attacks run in a Rust core
(:mod:`velocity._core`); this package is their typed Python face.
"""

from velocity._core import __version__
from velocity.aggregation import aggregate, alie_z, apply_attack
from velocity.orchestrator import Orchestrator, RoundSummary
from velocity.registry import ComponentInfo, ParamInfo, get_component, list_attacks, list_strategies
from velocity.specs import AttackSpec, StrategySpec, parse_attack, parse_attacks, parse_strategy

__all__ = [
    "AttackSpec",
    "ClientDP",
    "ComponentInfo",
    "FederatedServer",
    "MonnaSimulation",
    "MonnaStep",
    "Orchestrator",
    "ParamInfo",
    "RoundSummary",
    "RunSpec",
    "ServerDP",
    "StrategySpec",
    "Sweep",
    "SweepPanel",
    "__version__",
    "aggregate",
    "alie_z",
    "apply_attack",
    "get_component",
    "list_attacks",
    "list_strategies",
    "load_federated",
    "parse_attack",
    "parse_attacks",
    "parse_strategy",
]

# Torch- and widget-backed parts load on first use, so `import velocity` stays light.
_LAZY = {
    "MonnaSimulation": "velocity.decentralised",
    "MonnaStep": "velocity.decentralised",
    "FederatedServer": "velocity.server",
    "load_federated": "velocity.data",
    "RunSpec": "velocity.sweep",
    "ClientDP": "velocity.privacy",
    "ServerDP": "velocity.privacy",
    "Sweep": "velocity.sweep",
    "SweepPanel": "velocity.panel",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'velocity' has no attribute {name!r}")
