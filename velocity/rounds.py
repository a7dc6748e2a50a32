"""The round row: what one round records, defined once for everywhere it appears.

A trainer measures a round as a :class:`RoundRecord`. Its :meth:`RoundRecord.row` holds the
:data:`ROUND_COLUMNS`: that is a line of ``rounds.csv``, the payload a sweep worker streams to
the parent, and, after the run's :data:`RUN_COLUMNS`, a row of ``Sweep.results``. The notebook
panel sends the :data:`PANEL_COLUMNS` of those rows to its front end, whose ``RoundRow`` type is
checked against ``widgets/test/fixtures/round_row.json`` (:func:`panel_row_fixture`).

Adding a metric: a field of :class:`RoundRecord` and its :class:`Column` here; the files, the
events, ``Sweep.results`` and the report follow, and the front end's type check says whether the
panel needs it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from velocity.orchestrator import AttackOutcome

if TYPE_CHECKING:
    from velocity.sweep.spec import RunSpec

ColumnKind = Literal["int", "float", "str"]


@dataclass(frozen=True)
class Column:
    """One column of the round row: its name, value kind and meaning."""

    name: str
    kind: ColumnKind
    description: str


#: Which run a row belongs to (``Sweep.results`` and the panel put these first).
RUN_COLUMNS: tuple[Column, ...] = (
    Column("run", "str", "the run's name (its label)"),
    Column("index", "int", "the run's position in the sweep"),
    Column("strategy", "str", "the run's strategy, canonical text"),
    Column("attack", "str", "the run's attacks joined by ' + ', or 'none'"),
    Column("alpha", "str", "the Dirichlet α ('inf' for iid) or the partition's name"),
    Column("seed", "int", "the run's seed"),
)

#: What a round measured (``rounds.csv`` has exactly these, in this order).
ROUND_COLUMNS: tuple[Column, ...] = (
    Column("round", "int", "the round, from 1"),
    Column("num_clients", "int", "update rows aggregated this round (the sampled clients; decentralised: n)"),
    Column("num_malicious", "int", "malicious clients among them (decentralised: f)"),
    Column("global_loss", "float", "test loss of the new global model (decentralised: mean over honest workers); empty if not finite"),
    Column("accuracy", "float", "test accuracy of the new global model (decentralised: mean over honest workers)"),
    Column("attack_distance", "float", "distance of the aggregate from the honest updates' mean"),
    Column("attacks", "str", "what each attack did, 'name=strength' joined by ';'"),
    Column("train_ms", "float", "local training (decentralised: the whole step)"),
    Column("aggregate_ms", "float", "attacks, aggregation and the server step"),
    Column("eval_ms", "float", "evaluation on the test set"),
    Column("round_ms", "float", "the whole round"),
)

#: A row of ``Sweep.results``.
SWEEP_COLUMNS: tuple[Column, ...] = RUN_COLUMNS + ROUND_COLUMNS

#: What the panel's charts read of each row.
PANEL_COLUMNS: tuple[str, ...] = (*(c.name for c in RUN_COLUMNS), "round", "global_loss", "accuracy")

_BY_NAME = {c.name: c for c in SWEEP_COLUMNS}


@dataclass(frozen=True)
class RoundRecord:
    """One round as measured: the loss and accuracy of the new global model on the test set."""

    round: int
    client_ids: tuple[int, ...]
    num_clients: int
    num_malicious: int
    global_loss: float
    accuracy: float
    attack_distance: float
    attacks: tuple[AttackOutcome, ...]
    train_ms: float
    aggregate_ms: float
    eval_ms: float
    round_ms: float

    def row(self) -> dict[str, Any]:
        """The round's :data:`ROUND_COLUMNS`."""
        values = {c.name: getattr(self, c.name) for c in ROUND_COLUMNS if c.name != "attacks"}
        values["attacks"] = ";".join(f"{a.name}={a.strength}" for a in self.attacks)
        return {c.name: values[c.name] for c in ROUND_COLUMNS}


def run_identity(spec: RunSpec, index: int) -> dict[str, Any]:
    """The :data:`RUN_COLUMNS` of run ``index`` of a sweep."""
    return {
        "run": spec.label,
        "index": index,
        "strategy": spec.strategy,
        "attack": spec.attack_label,
        "alpha": spec.alpha_label,
        "seed": spec.seed,
    }


def sweep_row(spec: RunSpec, index: int, round_row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of ``Sweep.results``: the run's identity, then the round's columns."""
    return {**run_identity(spec, index), **{c.name: round_row[c.name] for c in ROUND_COLUMNS}}


def parse_cell(name: str, text: str) -> Any:
    """A ``rounds.csv`` cell as its column's value (an empty number is NaN)."""
    kind = _BY_NAME[name].kind
    if kind == "str":
        return text
    if text == "":
        return math.nan
    return int(text) if kind == "int" else float(text)


def json_number(value: Any) -> Any:
    """NaN and ±inf are not JSON numbers: None stands for them (a diverged run's loss)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def panel_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``Sweep.results`` row as the panel's front end takes it (:data:`PANEL_COLUMNS`, JSON-safe)."""
    return {name: json_number(row[name]) for name in PANEL_COLUMNS}


def polars_schema() -> dict[str, Any]:
    """``Sweep.results``' column types."""
    import polars as pl

    types = {"int": pl.Int64, "float": pl.Float64, "str": pl.Utf8}
    return {c.name: types[c.kind] for c in SWEEP_COLUMNS}


def panel_row_fixture() -> dict[str, Any]:
    """The panel's row as the front end's tests see it: each column's TypeScript type and an
    example row (``widgets/test/fixtures/round_row.json``; ``make`` writes it, a test checks it)."""
    ts = {"int": "number", "float": "number | null", "str": "string"}
    example_values: dict[ColumnKind, Any] = {"int": 1, "float": 0.5, "str": "text"}
    example = {name: example_values[_BY_NAME[name].kind] for name in PANEL_COLUMNS}
    return {
        "description": "written by velocity.rounds.panel_row_fixture(); the panel's RoundRow type must have exactly these fields",
        "types": {name: ts[_BY_NAME[name].kind] for name in PANEL_COLUMNS},
        "example": example,
        # a diverged run: its float metrics arrive as null
        "example_diverged": {name: None if _BY_NAME[name].kind == "float" else v for name, v in example.items()},
    }
