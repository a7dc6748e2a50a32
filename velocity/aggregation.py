"""Aggregate an update matrix with any registered strategy, and apply attacks to one."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt

from velocity import _core
from velocity.specs import AttackLike, StrategyLike, parse_attack, parse_strategy


def as_update_matrix(updates: Any, *, name: str = "updates") -> np.ndarray:
    """The ``n × d`` C-contiguous float32 matrix the core reads in place.

    float32 C-contiguous input is passed through without a copy; other real dtypes are converted.
    """
    arr = np.asarray(updates)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} as a real-valued array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"Expected {name} as a 2-D array (n clients × d parameters), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"Expected {name} with at least one row and one column, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"Expected weights as {n} values (one per update row), got shape {w.shape}")
    return w


def aggregate(
    updates: npt.ArrayLike,
    strategy: StrategyLike = "FedAvg",
    *,
    weights: npt.ArrayLike | None = None,
    f: int | None = None,
    seed: int = 0,
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
        Seed for randomised pre-aggregators (bucketing).

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
    return _core.aggregate(x, spec.core, weights=w, f=f, seed=seed)


def apply_attack(
    updates: npt.ArrayLike,
    attack: AttackLike,
    *,
    malicious: list[int],
    strategy: StrategyLike = "FedAvg",
    weights: npt.ArrayLike | None = None,
    f: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply one update attack to the rows ``malicious`` of a copy of ``updates``.

    Returns the attacked matrix and a dict describing what the attack did (its name and the
    strength it used). Adaptive attacks search their strength against ``strategy``.
    """
    a = parse_attack(attack)
    x = as_update_matrix(updates)
    w = as_weights(weights, x.shape[0])
    out, outcome = _core.apply_attack(x, a.to_json(), list(malicious), strategy=parse_strategy(strategy).core, weights=w, f=f, seed=seed)
    return out, json.loads(outcome)


def alie_z(n: int, f: int) -> float:
    """ALIE's z for ``n`` clients of which ``f`` are malicious: Φ⁻¹((n − s)/n), s = ⌊n/2⌋ + 1 − f.

    References: Baruch, Baruch, Goldberg, "A Little Is Enough: Circumventing Defenses For
    Distributed Learning", NeurIPS 2019.
    """
    return _core.alie_z(n, f)
