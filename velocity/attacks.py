"""Typed constructors for every update attack and data attack, generated from the Rust registry.

>>> from velocity.attacks import ALIE, SignFlip
>>> str(SignFlip(scale=2.0))
'sign_flip(scale=2.0)'
"""

from __future__ import annotations

from velocity.registry import list_attacks
from velocity.specs import AttackSpec, Component, make_component_class, parse_attack, parse_attacks

__all__ = ["AttackSpec", "Component", "parse_attack", "parse_attacks"]

for _info in list_attacks():
    _cls = make_component_class(_info)
    globals()[_cls.__name__] = _cls
    __all__.append(_cls.__name__)
del _info, _cls
