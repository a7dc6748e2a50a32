"""Typed constructors for every aggregation rule, pre-aggregator and server optimiser.

The classes are generated from the Rust registry, so their keyword-only signatures, defaults,
bounds and references always match the core::

    >>> from velocity.strategies import NNM, Krum
    >>> str(NNM(f=2) + Krum(f=2))
    'NNM(f=2) + Krum(f=2)'

``help(Krum)`` shows the parameters and the paper.
"""

from __future__ import annotations

from velocity.registry import list_strategies
from velocity.specs import Component, StrategySpec, make_component_class, parse_strategy

__all__ = ["Component", "StrategySpec", "parse_strategy"]

for _info in list_strategies():
    _cls = make_component_class(_info)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)
del _info, _cls
