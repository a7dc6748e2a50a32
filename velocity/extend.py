"""Your own aggregation rules and update attacks, written in Python, run beside the built-in ones.

    >>> import numpy as np
    >>> from velocity.extend import rule, attack
    >>> @rule("MedianOfMeans")
    ... def median_of_means(updates, *, f, weights):
    ...     groups = np.array_split(updates, 2 * f + 1)
    ...     return np.median([g.mean(axis=0) for g in groups], axis=0)
    >>> @attack("shift")
    ... def shift(updates, *, malicious, rng):
    ...     return updates[malicious] + 10.0
    >>> Sweep.from_grid(strategies=["FedAvg", "MedianOfMeans"], attacks=["none", "shift"]).run()

A rule takes the round's ``n × d`` float32 update matrix (one row per sampled client, after the
attacks), ``f`` (the malicious clients in the round) and ``weights`` (their sample counts), and
returns the ``d`` aggregate that is added to the global model. An attack takes the same matrix,
the row indices of the malicious clients and a seeded ``numpy`` generator, and returns the rows
those clients send (``len(malicious) × d``). Rules run in federated runs; they cannot be combined
with pre-aggregators or server optimisers (write them into the rule). Attacks combine with every
built-in rule and attack (Python attacks act first).

Nothing here needs Rust. Sweep workers are separate processes, so a sweep ships the functions to
them by value (cloudpickle): a function defined in a notebook cell works. A run's spec hash
includes the function's source, so changing a rule re-runs its runs instead of resuming them.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class RuleFn(Protocol):
    def __call__(self, updates: np.ndarray, *, f: int, weights: np.ndarray) -> np.ndarray: ...


class AttackFn(Protocol):
    def __call__(self, updates: np.ndarray, *, malicious: list[int], rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class PythonComponent:
    """A registered Python rule or attack."""

    name: str
    kind: str  # "rule" or "update_attack"
    fn: Callable[..., np.ndarray]
    source_hash: str


#: Keyed by the core's name key (case, ``_``, ``-`` and spaces ignored), as built-in names are.
_REGISTRY: dict[str, PythonComponent] = {}
#: A name that means something besides the registry: no attack.
_RESERVED = ("none",)


def _key(name: str) -> str:
    from velocity import _core

    return _core.name_key(name)


def _source_hash(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):  # no source file (e.g. built in a loop): hash the code itself
        code = getattr(fn, "__code__", None)
        text = repr((code.co_code, code.co_consts)) if code is not None else repr(fn)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _register(name: str, kind: str, fn: Callable[..., np.ndarray]) -> PythonComponent:
    from velocity.registry import registry

    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"Expected a name made of letters, digits and underscores, got {name!r}")
    if not callable(fn):
        raise TypeError(f"Expected a function for {kind} '{name}', got {type(fn).__name__}")
    builtin = {_key(n): c.name for c in registry() for n in (c.name, *c.aliases)} | {_key(n): n for n in _RESERVED}
    if _key(name) in builtin:
        raise ValueError(
            f"Expected a name that is not a built-in component, got '{name}' (it names '{builtin[_key(name)]}'; names ignore case, _ and -)"
        )
    component = PythonComponent(name, kind, fn, _source_hash(fn))
    _REGISTRY[_key(name)] = component
    return component


def rule(name: str | None = None) -> Callable[[RuleFn], RuleFn]:
    """Register an aggregation rule under ``name`` (default: the function's name)."""

    def decorate(fn: RuleFn) -> RuleFn:
        _register(name or fn.__name__, "rule", fn)  # type: ignore[attr-defined]
        return fn

    return decorate


def attack(name: str | None = None) -> Callable[[AttackFn], AttackFn]:
    """Register an update attack under ``name`` (default: the function's name)."""

    def decorate(fn: AttackFn) -> AttackFn:
        _register(name or fn.__name__, "update_attack", fn)  # type: ignore[attr-defined]
        return fn

    return decorate


def names(kind: str) -> list[str]:
    """The registered Python components of ``kind`` ("rule" or "update_attack")."""
    return [c.name for c in _REGISTRY.values() if c.kind == kind]


def unregister(name: str) -> None:
    _REGISTRY.pop(_key(name), None)


def get(name: Any, kind: str | None = None) -> PythonComponent | None:
    """The Python component called ``name`` (matched as built-in names are: ignoring case, ``_``
    and ``-``) of ``kind``, if given; or None."""
    if not isinstance(name, str):
        return None
    component = _REGISTRY.get(_key(name))
    if component is None or (kind is not None and component.kind != kind):
        return None
    return component


def run_rule(component: PythonComponent, updates: np.ndarray, *, f: int, weights: np.ndarray) -> np.ndarray:
    """Call a Python rule and check what it returns."""
    out = np.asarray(component.fn(updates, f=f, weights=weights), dtype=np.float32)
    if out.shape != (updates.shape[1],):
        raise ValueError(f"Expected rule '{component.name}' to return a vector of {updates.shape[1]} values, got shape {out.shape}")
    return np.ascontiguousarray(out)


def run_attack(component: PythonComponent, updates: np.ndarray, *, malicious: list[int], rng: np.random.Generator) -> np.ndarray:
    """Call a Python attack on a copy of ``updates``; returns the matrix with the malicious rows replaced."""
    out = updates.copy()
    if not malicious:
        return out
    rows = np.asarray(component.fn(updates.copy(), malicious=list(malicious), rng=rng), dtype=np.float32)
    if rows.shape != (len(malicious), updates.shape[1]):
        raise ValueError(
            f"Expected attack '{component.name}' to return {len(malicious)} × {updates.shape[1]} rows (one per malicious client), got shape {rows.shape}"
        )
    out[malicious] = rows
    return out


def export(names: Iterable[str]) -> bytes | None:
    """The named Python components, pickled by value for a worker process (None if none)."""
    chosen = {k: _REGISTRY[k] for k in map(_key, names) if k in _REGISTRY}
    if not chosen:
        return None
    import cloudpickle

    return cloudpickle.dumps(chosen)


def install(blob: bytes | None) -> None:
    """Register the components ``export`` packed (in a worker process)."""
    if blob:
        import pickle

        _REGISTRY.update(pickle.loads(blob))
