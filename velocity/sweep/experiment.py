"""Turning experiment files, CLI flags and Python grids into one list of ``RunSpec``.

TOML layout::

    [shared]                      # keys every run starts from
    dataset = "digits"
    rounds = 10

    [[runs]]                      # explicit runs override shared keys
    name = "fedavg-under-poisoning"
    strategy = "FedAvg"
    malicious_fraction = 0.2
    [[runs.attacks]]
    type = "model_poisoning"
    intensity = 0.5

    [matrix]                      # and/or a grid expanded over shared
    strategies = ["FedAvg", "FedMedian"]
    attacks = ["none", "sign_flip"]
    alphas = [0.1, 1.0, inf]
    privacy = [{}, {dp = {noise_multiplier = 1.0, max_grad_norm = 1.0}}]   # none, then DP-SGD
    seeds = 3                     # a count (seed, seed+1, ...) or a list
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from velocity.sweep.spec import RunSpec

TOP_LEVEL_KEYS = ("shared", "runs", "matrix")
MATRIX_KEYS = ("strategies", "attacks", "alphas", "privacy", "seeds")
#: What one level of the privacy axis may set.
PRIVACY_KEYS = ("dp", "server_dp")


class SpecError(ValueError):
    """A spec that cannot run; the message names the source, the run and the key."""


def _explain(err: ValidationError, where: str) -> SpecError:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])  # empty: a check of the run as a whole
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            known = ", ".join(_keys_at(e["loc"][:-1]))
            msg = f"unknown key; expected one of: {known}"
        elif e["type"] == "missing":
            msg = "required, got none"
        elif e["type"] != "value_error" and not isinstance(e.get("input"), (dict, list, tuple)):
            msg = f"{msg}, got {e['input']!r}"  # what was given, as the user wrote it
        lines.append(f"{where}, key '{key}': {msg}" if key else f"{where}: {msg}")
    return SpecError("\n".join(lines))


def _keys_at(loc: Sequence[int | str]) -> list[str]:
    """The keys of the table at ``loc`` in a run (the run's own keys, or a nested table's such as
    ``dp``'s)."""
    model: type[BaseModel] = RunSpec
    for part in loc:
        field = model.model_fields.get(str(part))
        nested = (
            [t for t in (get_args(field.annotation) or (field.annotation,)) if isinstance(t, type) and issubclass(t, BaseModel)]
            if field
            else []
        )
        if not nested:
            break
        model = nested[0]
    return list(model.model_fields)


def build_spec(values: dict[str, Any], where: str) -> RunSpec:
    """Validate one run's keys; errors say where the run came from."""
    try:
        return RunSpec(**values)
    except ValidationError as e:
        raise _explain(e, where) from None
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}: {e}") from None


def _seeds(seeds: int | Sequence[int], base: int) -> list[int]:
    if isinstance(seeds, bool):
        raise SpecError(f"Expected seeds as a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise SpecError(f"Expected seeds >= 1, got {seeds}")
        return [base + r for r in range(seeds)]
    return [int(s) for s in seeds]


def _attack_sets(attacks: Iterable[Any]) -> list[Any]:
    """Each grid entry is one attack (text or table), a list of attacks, or "none"."""
    out: list[Any] = []
    for a in attacks:
        if isinstance(a, str) and a.strip().lower() == "none":
            out.append([])
        else:
            out.append(a)
    return out


def grid(
    *,
    strategies: Sequence[Any] = ("FedAvg",),
    attacks: Sequence[Any] = ("none",),
    alphas: Sequence[float | None] = (None,),
    privacy: Sequence[Mapping[str, Any]] = ({},),
    seeds: int | Sequence[int] = 1,
    malicious_fraction: float | None = None,
    where: str = "grid",
    **shared: Any,
) -> list[RunSpec]:
    """Expand strategies × attacks × alphas × privacy × seeds over the shared keys.

    Each level of ``privacy`` is a table of ``dp`` and/or ``server_dp`` (``{}``: neither), so that
    one grid measures how each rule fares as the noise grows.

    Repetition r of every configuration uses seed ``shared seed + r``, so all strategies see the
    same partitions, initial models and malicious clients (a paired comparison). Clean runs
    (attack "none") keep ``malicious_fraction = 0``; attacked runs get ``malicious_fraction``, or
    the default share (``DEFAULT_MALICIOUS_FRACTION``) when it is None.
    """
    base_seed = int(shared.pop("seed", 0))
    specs: list[RunSpec] = []
    combinations = list(
        itertools.product(strategies, _attack_sets(attacks), alphas, _privacy_levels(privacy, where), _seeds(seeds, base_seed))
    )
    for strategy, attack, alpha, level, seed in combinations:
        values = {**shared, **level, "strategy": strategy, "attacks": attack, "seed": seed}
        if alpha is not None:
            values["alpha"] = alpha
        if not attack:
            values["malicious_fraction"] = 0.0
        elif malicious_fraction is not None:
            values["malicious_fraction"] = malicious_fraction
        specs.append(build_spec(values, where if len(combinations) == 1 else f"{where}, run {len(specs) + 1}"))
    return specs


def _privacy_levels(levels: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(levels, (Mapping, str)) or not isinstance(levels, Sequence) or not levels:
        raise SpecError(f"{where}: Expected privacy as a list of tables such as [{{}}, {{dp = {{...}}}}], got {levels!r}")
    for level in levels:
        if not isinstance(level, Mapping):
            raise SpecError(f"{where}: Expected each privacy level as a table of dp and/or server_dp, got {level!r}")
        unknown = [k for k in level if k not in PRIVACY_KEYS]
        if unknown:
            raise SpecError(
                f"{where}: Expected privacy levels with the keys {', '.join(PRIVACY_KEYS)}, got {', '.join(map(repr, unknown))}"
            )
    return [dict(level) for level in levels]


def load_experiment(path: str | PathLike[str]) -> list[RunSpec]:
    """Read a TOML experiment file into validated runs."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SpecError(f"{p}: no such experiment file") from None
    return parse_experiment(text, where=str(p))


def parse_experiment(text: str, *, where: str = "the experiment") -> list[RunSpec]:
    """TOML experiment text into validated runs; errors name ``where`` (a file's path)."""
    p = where
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p}: malformed TOML: {e}") from None
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError(f"{p}: unknown top-level key '{key}'; expected {', '.join(TOP_LEVEL_KEYS)}")
    shared = doc.get("shared", {})
    if not isinstance(shared, dict):
        raise SpecError(f"{p}: expected [shared] to be a table")
    specs: list[RunSpec] = []
    runs = doc.get("runs", [])
    if not isinstance(runs, list):
        raise SpecError(f"{p}: expected [[runs]] to be an array of tables")
    for i, run in enumerate(runs, 1):
        where = f"{p}, run {i}" + (f" ('{run['name']}')" if isinstance(run, dict) and "name" in run else "")
        specs.append(build_spec({**shared, **run}, where))
    if "matrix" in doc:
        matrix = doc["matrix"]
        for key in matrix:
            if key not in MATRIX_KEYS:
                raise SpecError(f"{p}: unknown key '{key}' in [matrix]; expected {', '.join(MATRIX_KEYS)}")
        specs += grid(**dict(matrix.items()), where=f"{p}, matrix", **shared)
    if not specs:
        raise SpecError(f"{p}: no runs: add [[runs]] or a [matrix]")
    _check_unique_labels(specs, p)
    return specs


def _check_unique_labels(specs: list[RunSpec], where: str) -> None:
    seen: dict[str, int] = {}
    for i, s in enumerate(specs, 1):
        if s.label in seen:
            raise SpecError(f"{where}: runs {seen[s.label]} and {i} are both named '{s.label}'; names must be unique")
        seen[s.label] = i


def parse_alpha(text: str) -> float:
    """CLI form of α: a number, or inf/iid."""
    t = text.strip().lower()
    if t in ("inf", "iid", "infinity"):
        return math.inf
    try:
        return float(t)
    except ValueError:
        raise SpecError(f"Expected α as a number or inf, got {text!r}") from None
