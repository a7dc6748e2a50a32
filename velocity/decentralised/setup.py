"""What a decentralised run may be made of, checked in one place.

:class:`velocity.decentralised.MonnaSimulation` and a ``RunSpec`` with ``topology =
"decentralised"`` both call :func:`validate`, so a spec that cannot run fails before anything
runs, with the same message either way. Nothing here needs torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from velocity import _core
from velocity.registry import find_component, list_mixers
from velocity.specs import AttackLike, AttackSpec, StrategyLike, StrategySpec, attack_items, parse_attack, parse_strategy

#: The decentralised mixers of the registry (``velocity list strategies`` shows them) and what they do.
AGGREGATORS = {c.name: c.summary for c in list_mixers()}


def mixer_name(name: Any) -> str | None:
    """The mixer ``name`` stands for, matched by the core (``"MoNNA"`` → ``"nearest_neighbour"``,
    ``"gossip"`` → ``"average"``), or None when it names no mixer."""
    if not isinstance(name, str):
        return None
    try:
        return find_component(name.strip(), "mixer").name
    except ValueError:
        return None


@dataclass(frozen=True)
class DecentralisedSetup:
    """A checked decentralised configuration: ``aggregator`` is a mixer name (``keep``: how many
    received models it averages, from the core) or the canonical text of the registered strategy
    (``strategy``) each worker applies to the models it receives."""

    n: int
    f: int
    attack: AttackSpec | None
    aggregator: str
    strategy: StrategySpec | None
    keep: int | None = None


def validate(
    *,
    n: int,
    f: int,
    attacks: AttackLike | list[AttackLike] | tuple[AttackLike, ...] | None,
    aggregator: StrategyLike,
    aggregator_kwargs: Mapping[str, Any] | None = None,
) -> DecentralisedSetup:
    """Check MoNNA's conditions (Farhadkhani et al., ICML 2023): an honest majority, one update
    attack exactly when there are Byzantine workers, and an aggregator that can work on the
    ``n − f`` models a worker receives (a mixer, or a rule without a server optimiser: there is
    no server). Raises ``ValueError`` saying what was expected and what was given."""
    from velocity import extend

    for name, v in (("n", n), ("f", f)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"Expected an integer for {name}, got {type(v).__name__}: {v!r}")
    if f < 0:
        raise ValueError(f"Expected an integer >= 0 for f, got {f}")
    if not n - f > f:
        raise ValueError(f"Expected n − f > f (an honest majority) for a decentralised run, got n = {n}, f = {f}")

    items = attack_items(attacks)
    python = [a for a in [*items, aggregator] if extend.get(a) is not None]
    if python:
        raise ValueError(f"Expected built-in components in a decentralised run, got the Python ones {python} (they run in federated runs)")
    if len(items) > 1:
        raise ValueError(f"Expected at most one attack for a decentralised run, got {[str(a) for a in items]}")
    attack = parse_attack(items[0]) if items else None
    if attack is not None and attack.is_data_attack:
        raise ValueError(
            f"Expected an update attack for a decentralised run (workers exchange models), got the data attack {attack.name!r}"
        )
    if f > 0 and attack is None:
        raise ValueError(f"Expected an attack for the f = {f} Byzantine workers (e.g. 'sign_flip'), got none")
    if f == 0 and attack is not None:
        raise ValueError(f"Expected f > 0 with the attack {attack}, got f = 0: no worker would attack")

    mixer = mixer_name(aggregator)
    if mixer is not None:
        if aggregator_kwargs:
            raise ValueError(
                f"Expected no aggregator_kwargs for {mixer!r} (its parameters follow from n and f), got {dict(aggregator_kwargs)!r}"
            )
        return DecentralisedSetup(n, f, attack, mixer, None, keep=_core.mixer_keep(json.dumps(mixer), n, f))
    if aggregator_kwargs:
        if not isinstance(aggregator, str):
            raise TypeError(f"Expected aggregator as a name when aggregator_kwargs are given, got {type(aggregator).__name__}")
        aggregator = {"name": aggregator.strip(), **aggregator_kwargs}
    try:
        spec = parse_strategy(aggregator)
    except ValueError as e:
        raise ValueError(
            f"Expected aggregator as one of {', '.join(AGGREGATORS)} or a registered aggregation strategy, got {aggregator!r}: {e}"
        ) from None
    if spec.server is not None:
        raise ValueError(f"Expected an aggregator without a server optimiser (there is no server), got {spec}")
    from velocity.aggregation import aggregate

    try:  # each worker's received set: n − f models with f of them Byzantine at worst
        aggregate(np.zeros((n - f, 1), np.float32), spec, f=f)
    except ValueError as e:
        raise ValueError(f"{spec} cannot aggregate the {n - f} models a worker receives with f = {f}: {e}") from None
    return DecentralisedSetup(n, f, attack, str(spec), spec)
