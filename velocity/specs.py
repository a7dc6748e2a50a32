"""Strategy and attack specifications, and the typed component objects built from the registry.

A strategy is written as text (``"Krum(f=2)"``, ``"NNM(f=2) + Krum(f=2)"``,
``"TrimmedMean(beta=0.1) + FedAdam(eta=0.01)"``), as a table (``{"name": "Krum", "f": 2}`` or
``{"pre": [...], "rule": ..., "server": ...}``), as a list of tables, or with the typed objects of
:mod:`velocity.strategies` (``NNM(f=2) + Krum(f=2)``). All forms are validated by the Rust core
and end in the same :class:`StrategySpec`.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from velocity import _core
from velocity.registry import ComponentInfo

#: The rules whose aggregate is the (weighted) mean of the updates: they do not defend, and the
#: mean's sensitivity to one client is what server DP's noise is calibrated to.
MEAN_RULES = frozenset({"FedAvg", "FedProx"})


def to_json_value(value: Any, *, nan_as_null: bool = False) -> Any:
    """A value JSON can hold, written the one way every file and message of the project uses:
    infinity as the text ``"inf"`` / ``"-inf"`` (as the core's text form spells it; read back by
    :func:`from_json_value`) and spec objects as tables. NaN becomes null with ``nan_as_null``
    (a missing measurement in a file); otherwise it stays NaN, which the core refuses as a
    parameter instead of reading it as "not given"."""
    if nan_as_null and isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v, nan_as_null=nan_as_null) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, nan_as_null=nan_as_null) for v in value]
    if isinstance(value, Component):
        return value.to_dict()
    if isinstance(value, (StrategySpec, AttackSpec)):
        return value.to_dict()
    return value


def from_json_value(value: Any) -> Any:
    """The inverse of :func:`to_json_value` for numbers: ``"inf"`` / ``"-inf"`` → ±infinity."""
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    return value


@dataclass(frozen=True)
class Component:
    """One configured component (a rule, pre-aggregator, server optimiser or attack)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v for k, v in self.params.items() if v is not None}}

    def __add__(self, other: Component | StrategySpec) -> StrategySpec:
        left = [self]
        right = list(other.components) if isinstance(other, StrategySpec) else [other]
        return parse_strategy([c.to_dict() for c in left + right])

    def __str__(self) -> str:
        given = ", ".join(f"{k}={v}" for k, v in self.params.items() if v is not None)
        return f"{self.name}({given})" if given else self.name


@dataclass(frozen=True)
class StrategySpec:
    """A validated strategy: pre-aggregators, one rule and an optional server optimiser.

    ``str(spec)`` is its canonical text; ``spec.to_dict()`` its JSON-ready form; ``spec.core``
    the core's parsed copy, which aggregation reads without parsing the strategy again.
    """

    text: str
    pre: tuple[Component, ...]
    rule: Component
    server: Component | None
    core: _core.Strategy = field(compare=False, repr=False)

    @property
    def components(self) -> tuple[Component, ...]:
        return (*self.pre, self.rule, *([self.server] if self.server else []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "pre": [c.to_dict() for c in self.pre],
            "rule": self.rule.to_dict(),
            "server": self.server.to_dict() if self.server else None,
        }

    def to_json(self) -> str:
        return json.dumps(to_json_value(self.to_dict()))

    def __add__(self, other: Component | StrategySpec) -> StrategySpec:
        right = list(other.components) if isinstance(other, StrategySpec) else [other]
        return parse_strategy([c.to_dict() for c in [*self.components, *right]])

    def __str__(self) -> str:
        return self.text


#: Attacks whose success rate the trainer measures (see ``velocity.training.backdoor``).
TARGETED_ATTACKS = frozenset({"backdoor", "targeted_label_flipping"})


@dataclass(frozen=True)
class AttackSpec:
    """A validated attack: an update attack (applied by the core) or a data attack (by the trainer)."""

    text: str
    name: str
    kind: str
    params: Mapping[str, Any]

    @property
    def is_data_attack(self) -> bool:
        return self.kind == "data_attack"

    @property
    def is_targeted(self) -> bool:
        """Whether the attack aims at chosen inputs rather than at accuracy (a backdoor, targeted
        label flipping): its success rate is measured each round."""
        return self.name in TARGETED_ATTACKS

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, **{k: v for k, v in self.params.items() if v is not None}}

    def to_json(self) -> str:
        return json.dumps(to_json_value(self.to_dict()))

    def __str__(self) -> str:
        return self.text


#: What every function taking a strategy accepts: text (``"NNM(f=2) + Krum(f=2)"``), a table
#: (``{"name": "Krum", "f": 2}`` or ``{"pre": [...], "rule": ..., "server": ...}``), a list of
#: tables, a typed component (``Krum(f=2)``) or a parsed :class:`StrategySpec`.
StrategyLike: TypeAlias = str | Mapping[str, Any] | Sequence[Any] | StrategySpec | Component
#: What every function taking an attack accepts: text (``"alie(z=1.5)"``), a table
#: (``{"type": "alie", "z": 1.5}``), a typed component (``ALIE(z=1.5)``) or a parsed :class:`AttackSpec`.
AttackLike: TypeAlias = str | Mapping[str, Any] | AttackSpec | Component
#: One attack, several, or none (``None``, ``"none"``, ``[]``).
AttacksLike: TypeAlias = AttackLike | Sequence[AttackLike] | None


def _component(d: Mapping[str, Any]) -> Component:
    return Component(d["name"], {k: from_json_value(v) for k, v in d["params"].items()})


def _check_type(obj: Any, allowed: tuple[type, ...], what: str, example: str) -> None:
    if not isinstance(obj, allowed):
        raise TypeError(f"Expected {what} as text like {example}, a dict or a spec object, got {type(obj).__name__}: {obj!r}")


def parse_strategy(strategy: StrategyLike) -> StrategySpec:
    """Validate a strategy given as text, a dict, a list of components or a spec object.

    >>> str(parse_strategy("nnm(f=1) + krum(f=1)"))
    'NNM(f=1) + Krum(f=1)'

    Raises ``ValueError`` for unknown names, bad parameters or a wrong order, and ``TypeError``
    for values of the wrong type; the message says what was expected and what was given.
    A text is parsed once: later calls with it return the same (frozen) spec.
    """
    if isinstance(strategy, StrategySpec):
        return strategy
    if isinstance(strategy, str):
        return _parse_strategy_text(strategy)
    if isinstance(strategy, Component):
        strategy = strategy.to_dict()
    _check_type(strategy, (str, Mapping, list, tuple), "a strategy", '"Krum(f=2)"')
    return _parse_strategy_json(json.dumps(to_json_value(strategy)))


@functools.lru_cache(maxsize=1024)
def _parse_strategy_text(text: str) -> StrategySpec:
    # A text's meaning never changes (the core's grammar is fixed, and the spec and its parsed
    # copy are immutable): repeated calls such as ``aggregate(x, "FedAvg")`` skip the 8 µs parse.
    return _parse_strategy_json(json.dumps(text))


def _parse_strategy_json(spec: str) -> StrategySpec:
    core = _core.Strategy(spec)
    canonical = json.loads(core.canonical())
    return StrategySpec(
        text=canonical["text"],
        pre=tuple(_component(c) for c in canonical["pre"]),
        rule=_component(canonical["rule"]),
        server=_component(canonical["server"]) if canonical["server"] else None,
        core=core,
    )


def parse_attack(attack: AttackLike) -> AttackSpec:
    """Validate an attack given as text (``"alie(z=1.5)"``), a dict (``{"type": "alie", "z": 1.5}``) or a spec object."""
    if isinstance(attack, AttackSpec):
        return attack
    if isinstance(attack, Component):
        attack = attack.to_dict()
    _check_type(attack, (str, Mapping), "an attack", '"sign_flip(scale=2)"')
    c = json.loads(_core.normalize_component(json.dumps(to_json_value(attack)), "update_attack"))  # either attack kind
    params = {k: from_json_value(v) for k, v in c["params"].items()}
    return AttackSpec(text=c["text"], name=c["name"], kind=c["kind"], params=params)


def attack_items(attacks: AttacksLike) -> list[AttackLike]:
    """The attacks given, as a list, not yet parsed; ``None``, ``"none"`` and ``[]`` mean none."""
    if attacks is None:
        return []
    items = [attacks] if isinstance(attacks, (str, Mapping, AttackSpec, Component)) else list(attacks)
    return [a for a in items if not (isinstance(a, str) and a.strip().lower() in ("", "none"))]


def parse_attacks(attacks: AttacksLike) -> list[AttackSpec]:
    """A list of attacks; ``None``, ``"none"`` and ``[]`` mean no attack."""
    return [parse_attack(a) for a in attack_items(attacks)]


_PY_TYPES = {"int": int, "float": float, "bool": bool, "choice": str}


def _class_name(name: str) -> str:
    special = {
        "ipm": "IPM",
        "alie": "ALIE",
        "nan": "NaN",
        "inf": "Inf",
        "adaptive_ipm": "AdaptiveIPM",
        "adaptive_alie": "AdaptiveALIE",
        "agr_tailored": "AGRTailored",
    }
    if name in special:
        return special[name]
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _docstring(info: ComponentInfo) -> str:
    lines = [info.summary, ""]
    if info.params:
        lines.append("Parameters")
        lines.append("----------")
        for p in info.params:
            rng = f", {p.range_text}" if p.range_text else ""
            lines.append(f"{p.name} : {p.type}, default {p.default_text}{rng}")
            lines.append(f"    {p.description}")
        lines.append("")
    if info.requires:
        lines.append(f"Requires: {info.requires}.")
        lines.append("")
    lines.append("References")
    lines.append("----------")
    lines.append(info.reference)
    return "\n".join(lines)


def _validated_params(info: ComponentInfo, kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Validate one component's parameters through the core (the only validator)."""
    canonical = json.loads(_core.normalize_component(json.dumps(to_json_value({"name": info.name, **kwargs})), info.kind))
    return {k: from_json_value(v) for k, v in canonical["params"].items()}


def make_component_class(info: ComponentInfo) -> type[Component]:
    """A keyword-only constructor class for one registered component, documented from the registry."""

    def __init__(self: Component, **kwargs: Any) -> None:
        params = _validated_params(info, kwargs)
        object.__setattr__(self, "name", info.name)
        object.__setattr__(self, "params", {k: params[k] for k, v in kwargs.items() if v is not None})

    sig_params = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if p.required else (None if p.derived else from_json_value(p.default)),
            annotation=_PY_TYPES[p.type] | None if p.derived else _PY_TYPES[p.type],
        )
        for p in info.params
    ]
    # help() and IDEs read the registry's keyword-only parameters from here
    __init__.__signature__ = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *sig_params])  # type: ignore[attr-defined]
    cls = type(
        _class_name(info.name),
        (Component,),
        {
            "__init__": __init__,
            "__doc__": _docstring(info),
            "__module__": "velocity.strategies" if info.kind not in ("update_attack", "data_attack") else "velocity.attacks",
        },
    )
    cls.info = info  # type: ignore[attr-defined]
    return cls
