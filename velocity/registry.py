"""The component registry, read from the Rust core.

Every aggregation rule, pre-aggregator, server optimiser and attack is declared once, in Rust
(``vfl-rs/src/registry.rs``); this module exposes that table as typed Python objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from velocity import _core

Kind = Literal["rule", "pre_aggregator", "server_optimizer", "update_attack", "data_attack", "mixer"]
ParamType = Literal["int", "float", "bool", "choice"]


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """One parameter of a component: its type, default, bounds and meaning."""

    name: str
    type: ParamType
    default: Any
    required: bool
    derived: bool
    minimum: float | None
    exclusive_minimum: float | None
    maximum: float | None
    exclusive_maximum: float | None
    description: str
    choices: tuple[str, ...] = ()  # the words a "choice" parameter takes

    @property
    def default_text(self) -> str:
        if self.required:
            return "required"
        if self.derived:
            return "derived"
        return str(self.default)

    @property
    def range_text(self) -> str:
        if self.choices:
            return "one of " + " | ".join(self.choices)
        parts = []
        if self.minimum is not None:
            parts.append(f">= {self.minimum:g}")
        if self.exclusive_minimum is not None:
            parts.append(f"> {self.exclusive_minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        if self.exclusive_maximum is not None:
            parts.append(f"< {self.exclusive_maximum:g}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    """A registered component: name (and the other names users know it by), kind, one-line
    summary, paper and parameters."""

    name: str
    aliases: tuple[str, ...]
    kind: Kind
    summary: str
    reference: str
    requires: str
    accepts_non_finite: bool
    params: tuple[ParamInfo, ...]

    def param(self, name: str) -> ParamInfo:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}; it has: {', '.join(p.name for p in self.params)}")


@cache
def registry() -> tuple[ComponentInfo, ...]:
    """Every registered component, in declaration order."""
    out = []
    for c in json.loads(_core.registry()):
        params = tuple(ParamInfo(**{**p, "choices": tuple(p.get("choices", ()))}) for p in c.pop("params"))
        out.append(ComponentInfo(params=params, aliases=tuple(c.pop("aliases")), **c))
    return tuple(out)


def list_strategies() -> list[ComponentInfo]:
    """Aggregation rules, pre-aggregators and server optimisers, with their parameters."""
    return [c for c in registry() if c.kind in ("rule", "pre_aggregator", "server_optimizer")]


def list_attacks() -> list[ComponentInfo]:
    """Update attacks (applied by the core) and data attacks (applied by the trainer)."""
    return [c for c in registry() if c.kind in ("update_attack", "data_attack")]


def list_mixers() -> list[ComponentInfo]:
    """How a decentralised worker may combine the models it receives (besides any rule)."""
    return [c for c in registry() if c.kind == "mixer"]


def find_component(name: str, kind: Kind) -> ComponentInfo:
    """The component of ``kind`` that ``name`` names: matched as the core matches (case, ``_`` and
    ``-`` ignored; aliases such as ``RFA`` or ``FedTrimmedAvg`` too). ``ValueError`` otherwise."""
    return get_component(_core.component_name(name, kind))


def get_component(name: str) -> ComponentInfo:
    """Look a component up by its registered name (exact spelling)."""
    for c in registry():
        if c.name == name:
            return c
    raise KeyError(f"Unknown component {name!r}; expected one of: {', '.join(c.name for c in registry())}")
