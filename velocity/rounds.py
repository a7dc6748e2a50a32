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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from velocity.orchestrator import AttackOutcome, RoundSummary

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
    Column("strategy", "str", "the run's strategy, canonical text, with its privacy in brackets when it has any"),
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
    Column(
        "attack_success",
        "float",
        "a targeted attack's success rate: backdoor, the triggered test examples not of the target class classified as it; "
        "targeted label flipping, the source class's test examples classified as the target (empty otherwise)",
    ),
    Column("attack_distance", "float", "distance of the aggregate from the honest updates' mean"),
    Column(
        "malicious_share",
        "float",
        "the malicious updates' share of the aggregate (their weight share when nothing is done; lower when the defence acted)",
    ),
    Column("malicious_weight", "float", "the malicious updates' share of the weights (what malicious_share is for FedAvg)"),
    Column("selected", "str", "client ids a selection rule kept (Krum, MultiKrum, Bulyan), joined by ';'"),
    Column("selected_malicious", "float", "malicious clients among the selected"),
    Column("detection_precision", "float", "of the clients a selection rule excluded, the share that were malicious"),
    Column("detection_recall", "float", "of the malicious clients, the share a selection rule excluded"),
    Column("clipped", "float", "updates clipped this round (clipping rules and pre-aggregators)"),
    Column("clip_radius", "float", "the clipping radius used this round"),
    Column(
        "dp_epsilon",
        "float",
        "DP-SGD (dp): the largest ε(δ) of any client so far, per example of its data (empty without dp)",
    ),
    Column(
        "server_dp_epsilon",
        "float",
        "server DP (server_dp): ε(δ) so far, per client; empty without server_dp and where it is no guarantee (a rule other than the mean)",
    ),
    Column("client_ids", "str", "the clients aggregated this round, in row order, joined by ';'"),
    Column("malicious_clients", "str", "the malicious ones among them, joined by ';'"),
    Column("client_shares", "str", "each client's share of the aggregate, in the order of client_ids, joined by ';'"),
    Column("update_norms", "str", "the norm of each client's update as aggregated (after the attacks), in the order of client_ids"),
    Column("attacks", "str", "what each attack did, 'name=strength' joined by ';'"),
    Column("train_ms", "float", "local training (decentralised: the whole step)"),
    Column("aggregate_ms", "float", "attacks, aggregation and the server step"),
    Column("eval_ms", "float", "evaluation on the test set"),
    Column("round_ms", "float", "the whole round"),
)

#: A row of ``Sweep.results``.
SWEEP_COLUMNS: tuple[Column, ...] = RUN_COLUMNS + ROUND_COLUMNS

#: What the panel's charts read of each row: progress, and what the defence did.
PANEL_COLUMNS: tuple[str, ...] = (
    *(c.name for c in RUN_COLUMNS),
    "round",
    "global_loss",
    "accuracy",
    "attack_success",
    "malicious_share",
    "malicious_weight",
    "clipped",
    "selected_malicious",
)

#: The round row's per-client columns (the panel's per-client view reads them).
PER_CLIENT_COLUMNS: tuple[str, ...] = ("round", "client_ids", "malicious_clients", "client_shares", "update_norms")

_BY_NAME = {c.name: c for c in SWEEP_COLUMNS}


@dataclass(frozen=True)
class DefenceRecord:
    """What the defence did in a round (the core's trace; NaN/None where the rule cannot say,
    and for decentralised runs)."""

    malicious_share: float = math.nan
    malicious_weight: float = math.nan
    selected: tuple[int, ...] | None = None
    selected_malicious: int | None = None
    detection_precision: float | None = None
    detection_recall: float | None = None
    clipped: int | None = None
    clip_radius: float | None = None
    # per client, in the order of client_ids: who was malicious, their share, their update's norm
    client_ids: tuple[int, ...] = ()
    malicious_clients: tuple[int, ...] = ()
    client_shares: tuple[float, ...] | None = None
    update_norms: tuple[float, ...] = ()

    @classmethod
    def from_summary(cls, summary: RoundSummary) -> DefenceRecord:
        return cls(**{f.name: getattr(summary, f.name) for f in fields(cls)})

    def cells(self) -> dict[str, Any]:
        """Its round-row columns: counts and ratios as floats (NaN when absent), ids as text."""

        def num(v: float | None) -> float:
            return math.nan if v is None else float(v)

        def joined(values: Sequence[float] | None, fmt: str = "") -> str:
            return "" if values is None else ";".join(format(v, fmt) for v in values)

        out: dict[str, Any] = {f.name: num(getattr(self, f.name)) for f in fields(self) if f.name not in _LIST_FIELDS}
        out["selected"] = joined(self.selected)
        out["client_ids"], out["malicious_clients"] = joined(self.client_ids), joined(self.malicious_clients)
        # four significant digits: a share or a norm, not a bit pattern
        out["client_shares"], out["update_norms"] = joined(self.client_shares, ".4g"), joined(self.update_norms, ".4g")
        return out


#: DefenceRecord's fields that are lists, written as text joined by ';'.
_LIST_FIELDS = frozenset({"selected", "client_ids", "malicious_clients", "client_shares", "update_norms"})


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
    defence: DefenceRecord = field(default_factory=lambda: DefenceRecord())
    attack_success: float = math.nan  # a targeted attack's success rate (NaN: none)
    dp_epsilon: float = math.nan  # DP-SGD's worst client's ε so far (NaN: no DP-SGD)
    server_dp_epsilon: float = math.nan  # server DP's ε so far (NaN: none, or no guarantee for the rule)

    def row(self) -> dict[str, Any]:
        """The round's :data:`ROUND_COLUMNS`."""
        values = {c.name: getattr(self, c.name) for c in ROUND_COLUMNS if hasattr(self, c.name) and c.name != "attacks"}
        values["attacks"] = ";".join(f"{a.name}={a.strength}" for a in self.attacks)
        values.update(self.defence.cells())
        return {c.name: values[c.name] for c in ROUND_COLUMNS}


def late_accuracy_gain(accuracies: list[float]) -> float | None:
    """How much accuracy a run gained over its last fifth of rounds (at least its last 2): a
    clean run still gaining much there has not converged. None with fewer than 3 rounds."""
    vals = [a for a in accuracies if not math.isnan(a)]
    if len(vals) < 3:
        return None
    span = max(2, len(vals) // 5)
    return vals[-1] - vals[-1 - span]


#: A round in which the malicious updates' share of the aggregate is below their weight share by
#: more than this (in share points) counts as one where the defence limited them.
LIMITED_MARGIN = 0.01


def defence_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What a run's defence did over its rounds, for its summary: the mean malicious share and
    weight share, in how many rounds it limited the malicious updates (share below weight by
    more than :data:`LIMITED_MARGIN`) or clipped or excluded any update, and the mean detection
    precision/recall of selection rules. None where no round could say."""

    def mean(key: str) -> float | None:
        vals = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        return sum(vals) / len(vals) if vals else None

    def acted(r: Mapping[str, Any]) -> bool:
        share, weight = r.get("malicious_share", math.nan), r.get("malicious_weight", math.nan)
        limited = not math.isnan(share) and not math.isnan(weight) and share < weight - LIMITED_MARGIN
        clipped = r.get("clipped", math.nan)
        excluded = bool(r.get("selected")) and len(str(r["selected"]).split(";")) < r.get("num_clients", 0)
        return limited or (not math.isnan(clipped) and clipped > 0) or excluded

    traced = [
        r
        for r in rows
        if not math.isnan(r.get("malicious_share", math.nan)) or r.get("selected") or not math.isnan(r.get("clipped", math.nan))
    ]
    return {
        "mean_malicious_share": mean("malicious_share"),
        "mean_malicious_weight": mean("malicious_weight"),
        "rounds_defence_acted": sum(acted(r) for r in rows) if traced else None,
        "mean_clipped": mean("clipped"),
        "mean_detection_precision": mean("detection_precision"),
        "mean_detection_recall": mean("detection_recall"),
    }


def run_identity(spec: RunSpec, index: int) -> dict[str, Any]:
    """The :data:`RUN_COLUMNS` of run ``index`` of a sweep."""
    return {
        "run": spec.label,
        "index": index,
        "strategy": spec.strategy_label,
        "attack": spec.attack_label,
        "alpha": spec.alpha_label,
        "seed": spec.seed,
    }


def sweep_row(spec: RunSpec, index: int, round_row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of ``Sweep.results``: the run's identity, then the round's columns."""
    return {**run_identity(spec, index), **{c.name: round_row.get(c.name, missing_cell(c.name)) for c in ROUND_COLUMNS}}


def missing_cell(name: str) -> Any:
    """The value of a column a row lacks (a rounds.csv written before the column existed)."""
    return "" if _BY_NAME[name].kind == "str" else math.nan


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


#: What the panel adds to each row: the seeds of one configuration are drawn as one band.
PANEL_EXTRA: tuple[Column, ...] = (Column("config", "int", "the panel's number for the run's configuration (its seeds share it)"),)


def panel_row(row: Mapping[str, Any], *, config: int) -> dict[str, Any]:
    """A ``Sweep.results`` row as the panel's front end takes it (:data:`PANEL_COLUMNS`, JSON-safe),
    with the number of the run's configuration (:data:`PANEL_EXTRA`)."""
    return {**{name: json_number(row[name]) for name in PANEL_COLUMNS}, "config": config}


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
    columns = [*(_BY_NAME[name] for name in PANEL_COLUMNS), *PANEL_EXTRA]
    example = {c.name: example_values[c.kind] for c in columns}
    return {
        "description": "written by velocity.rounds.panel_row_fixture(); the panel's RoundRow type must have exactly these fields",
        "types": {c.name: ts[c.kind] for c in columns},
        "example": example,
        # a diverged run: its float metrics arrive as null
        "example_diverged": {c.name: None if c.kind == "float" else example[c.name] for c in columns},
    }
