"""Aggregate an update matrix with any registered strategy, and apply attacks to one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from velocity import _core
from velocity.specs import AttackLike, StrategyLike, parse_attack, parse_strategy

#: The largest count or seed the core takes (an unsigned 64-bit integer).
_MAX_U64 = 2**64 - 1


def as_count(value: Any, name: str, *, maximum: int = _MAX_U64) -> int:
    """``value`` as a non-negative integer the core can take (f, a seed, a client count);
    ``ValueError``/``TypeError`` naming ``name`` otherwise, never an ``OverflowError``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"Expected {name} as a non-negative integer, got {value!r}")
    if not 0 <= value <= maximum:
        raise ValueError(f"Expected {name} as an integer in [0, {maximum}], got {value}")
    return int(value)


def as_indices(values: Any, name: str, n: int) -> list[int]:
    """``values`` as distinct indices in ``[0, n)`` (rows of a matrix, or client ids)."""
    if values is None or isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise TypeError(f"Expected {name} as a list of indices in [0, {n}), got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"Expected {name} as a list of indices in [0, {n}), got {v!r} among them")
        if not 0 <= v < n:
            raise ValueError(f"Expected {name} as indices in [0, {n}), got {v}")
        out.append(int(v))
    if len(set(out)) != len(out):
        twice = next(v for v in out if out.count(v) > 1)
        raise ValueError(f"Expected distinct {name}, got {twice} twice")
    return out


def as_update_matrix(updates: Any, *, name: str = "updates") -> np.ndarray:
    """The ``n × d`` C-contiguous float32 matrix the core reads in place.

    float32 C-contiguous input is passed through without a copy; other real dtypes are converted.
    """
    try:
        arr = np.asarray(updates)
    except ValueError:  # numpy's words for rows of different lengths
        raise ValueError(f"Expected {name} as a 2-D array (n clients × d parameters), got rows of different lengths") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} as a real-valued array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"Expected {name} as a 2-D array (n clients × d parameters), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"Expected {name} with at least one row and one column, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_vector(value: Any, length: int, dtype: type, what: str, numbers: str, values: str) -> np.ndarray:
    """``value`` as ``length`` contiguous numbers of ``dtype``; ``numbers`` and ``values`` finish
    the messages for a value that is not numbers and for one of the wrong shape."""
    try:
        v: np.ndarray = np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"Expected {what} as {length} {numbers}, got {value!r}") from None
    if v.ndim != 1 or v.shape[0] != length:
        raise ValueError(f"Expected {what} as {length} {values}, got shape {v.shape}")
    return v


def as_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    return _as_vector(weights, n, np.float64, "weights", "numbers (one per update row)", "values (one per update row)")


def as_reference(reference: Any, d: int) -> np.ndarray:
    """The server's own update (FLTrust's reference) as d contiguous float32 values."""
    return _as_vector(reference, d, np.float32, "the server's update", "numbers", "values (the updates' size)")


def aggregate(
    updates: npt.ArrayLike,
    strategy: StrategyLike = "FedAvg",
    *,
    weights: npt.ArrayLike | None = None,
    f: int | None = None,
    seed: int = 0,
    reference: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Aggregate an ``n × d`` update matrix (one row per client) into one ``d`` vector.

    Parameters
    ----------
    updates
        Client updates, one per row. float32 C-contiguous arrays are read without copying.
    strategy
        ``"Krum(f=2)"``, ``"NNM(f=2) + Krum(f=2)"``, a dict, or a spec object from
        :mod:`velocity.strategies`. Only the pre-aggregators and the rule are applied here; a
        server optimiser needs state across rounds (see :class:`velocity.Orchestrator`).
    weights
        Per-client weights such as sample counts (FedAvg, MultiKrum, geometric median, centered
        clipping honour them; the coordinate-wise rules do not). Equal when omitted.
    f
        Number of Byzantine clients, for rules whose ``f`` is not given in the strategy.
    seed
        Seed for randomised pre-aggregators (bucketing) and rules (DnC).
    reference
        The server's own update on its root data, for FLTrust (a federated run trains it).

    Raises
    ------
    ValueError
        Bad shapes, non-finite values for rules that cannot take them, ``n`` too small for ``f``,
        unknown names or parameters.
    TypeError
        Non-numeric input or parameters of the wrong type.
    """
    spec = parse_strategy(strategy)
    x = as_update_matrix(updates)
    w = as_weights(weights, x.shape[0])
    f = None if f is None else as_count(f, "f")
    ref = None if reference is None else as_reference(reference, x.shape[1])
    return _core.aggregate(x, spec.core, weights=w, f=f, seed=as_count(seed, "seed"), reference=ref)


def apply_attack(
    updates: npt.ArrayLike,
    attack: AttackLike,
    *,
    malicious: list[int],
    strategy: StrategyLike = "FedAvg",
    weights: npt.ArrayLike | None = None,
    f: int | None = None,
    seed: int = 0,
    defence: Callable[[np.ndarray], npt.ArrayLike] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply one update attack to the rows ``malicious`` of a copy of ``updates``.

    Returns the attacked matrix and a dict describing what the attack did (its name and the
    strength it used). The adaptive attacks (``adaptive_ipm``, ``adaptive_alie``,
    ``agr_tailored``) search their strength against the defence: ``strategy`` (its
    pre-aggregators, rule and server optimiser, from a fresh state), or ``defence`` when given, a
    function from the attacked ``n × d`` matrix to the defended outcome (a ``d`` aggregate, or
    ``k × d`` rows such as every honest worker's mixed model); they pick the strength that puts
    the outcome furthest from the honest rows' mean.
    """
    a = parse_attack(attack)
    x = as_update_matrix(updates)
    w = as_weights(weights, x.shape[0])
    rows = as_indices(malicious, "malicious", x.shape[0])
    if len(rows) == x.shape[0]:  # an attack is measured against the honest clients
        raise ValueError(f"Expected at least one honest row, got all {len(rows)} rows malicious")
    f = None if f is None else as_count(f, "f")
    if defence is not None and not callable(defence):
        raise TypeError(f"Expected defence to be a function of the update matrix, got {type(defence).__name__}")
    out, outcome = _core.apply_attack(
        x,
        a.to_json(),
        rows,
        strategy=parse_strategy(strategy).core,
        weights=w,
        f=f,
        seed=as_count(seed, "seed"),
        defence=None if defence is None else _defended_rows(defence, x.shape[1]),
    )
    return out, json.loads(outcome)


def _defended_rows(defence: Callable[[np.ndarray], npt.ArrayLike], d: int) -> Callable[[np.ndarray], np.ndarray]:
    """``defence`` with its outcome as the core reads it: C-contiguous float32 rows of ``d`` values."""

    def rows(x: np.ndarray) -> np.ndarray:
        out = np.asarray(defence(x))
        if out.ndim == 1:
            out = out[None, :]
        if out.ndim != 2 or out.shape[1] != d or out.shape[0] == 0 or not np.issubdtype(out.dtype, np.number):
            raise ValueError(
                f"Expected the defence to return {d} numbers or rows of {d} numbers, got an array of shape {out.shape} and dtype {out.dtype}"
            )
        return np.ascontiguousarray(out, dtype=np.float32)

    return rows


def alie_z(n: int, f: int) -> float:
    """ALIE's z for ``n`` clients of which ``f`` are malicious: Φ⁻¹((n − s)/n), s = ⌊n/2⌋ + 1 − f.

    References: Baruch, Baruch, Goldberg, "A Little Is Enough: Circumventing Defenses For
    Distributed Learning", NeurIPS 2019.
    """
    return _core.alie_z(as_count(n, "n"), as_count(f, "f"))
