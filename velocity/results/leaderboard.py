"""Leaderboards across sweeps: configurations ranked by one metric, as mean ± the half-width of
a 95 % Student-t interval over their repetitions (seeds), with the Pareto front of accuracy
against cost.

Metrics (higher is better for the first two, lower for the rest):

- ``accuracy``: the final test accuracy of each run.
- ``worst-case``: per seed, the lowest final accuracy over the attacks run against the same
  configuration (its clean fingerprint); the attacks that entered are listed.
- ``robustness``: the accuracy an attack took away, each attacked run against its clean twin
  (same configuration and seed, no attack); attacked runs without a twin are left out and counted.
- ``rounds-to-target``: the first round whose accuracy reached ``target``; configurations are
  ranked by how many of their runs reached it, then by how fast.
- ``wall-clock``: a run's seconds from start to end.
- ``comm-cost``: the bytes a federated server exchanged (each sampled client downloads the global
  model and uploads its update, float32); runs without the model size, and decentralised runs,
  are left out.

The same run found twice (one configuration and seed in two sweeps) counts once: the newest copy
(by its summary's time) is kept, and the duplicates are counted in the notes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl

from velocity.results.load import Results, load
from velocity.sweep.verdict import mean_ci

Metric = Literal["accuracy", "worst-case", "robustness", "rounds-to-target", "wall-clock", "comm-cost"]
METRICS: tuple[str, ...] = get_args(Metric)
_HIGHER_IS_BETTER = {"accuracy": True, "worst-case": True}

#: The columns that name a configuration in a leaderboard entry.
CONFIG_COLUMNS = ("strategy", "attack", "partition", "dataset", "model_id", "num_clients", "malicious_fraction", "rounds", "topology")


@dataclass
class Leaderboard:
    """Ranked entries (dicts: the configuration, ``runs``, ``value``, ``ci95``, ``accuracy``,
    ``wall_clock_s``, ``comm_bytes``, ``pareto`` and the metric's own fields), the runs
    ``skipped`` (unreadable, with why) and ``notes`` (what was left out of the ranking)."""

    metric: str
    entries: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    target: float | None = None

    @property
    def cost(self) -> str:
        """The cost the Pareto front weighs accuracy against."""
        return "comm_bytes" if self.metric == "comm-cost" else "wall_clock_s"

    def to_polars(self) -> pl.DataFrame:
        return pl.DataFrame([{k: _cell(v) for k, v in e.items()} for e in self.entries])

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "target": self.target,
            "higher_is_better": _HIGHER_IS_BETTER.get(self.metric, False),
            "pareto_cost": self.cost,
            "entries": self.entries,
            "skipped": self.skipped,
            "notes": self.notes,
        }

    def table(self) -> Any:
        """The board as a rich ``Table`` (names printed literally, never as markup)."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        title = {
            "accuracy": "final accuracy",
            "worst-case": "worst-case accuracy over the attacks",
            "robustness": "accuracy lost to the attack (vs the clean twin)",
            "rounds-to-target": f"rounds to reach accuracy {self.target:g}" if self.target is not None else "rounds to target",
            "wall-clock": "wall-clock seconds",
            "comm-cost": "bytes exchanged by the server",
        }[self.metric]
        cost = _COST_TITLES[self.cost]
        better = "higher is better" if _HIGHER_IS_BETTER.get(self.metric, False) else "lower is better"
        datasets = sorted({str(e["dataset"]) for e in self.entries})
        on = f" on {datasets[0]}" if len(datasets) == 1 else ""
        table = Table(
            title=Text(f"Leaderboard{on}: {title} ({better})"),
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,  # fits an 80-column terminal
            caption=f"mean ± 95 % interval over seeds; ★: on the Pareto front of accuracy against {cost}",
        )
        extra = {"worst-case": "worst attack", "rounds-to-target": "reached", "robustness": "clean"}.get(self.metric)
        # one column names the configuration; the data set only when the board holds several
        several = len({e["dataset"] for e in self.entries}) > 1
        table.add_column("#", justify="right")
        names = [len(_name(e, several)) for e in self.entries] or [13]
        table.add_column("configuration", overflow="fold", min_width=min(max(names), 16), ratio=2)
        also_accuracy = self.metric != "accuracy"
        for col in ["runs", self.metric, *([extra] if extra else []), *(["accuracy"] if also_accuracy else []), cost]:
            if col == "worst attack":
                table.add_column(col, overflow="fold", ratio=1)
            else:
                table.add_column(col, justify="right", no_wrap=True)
        for e in self.entries:
            name = _name(e, several)
            table.add_row(
                f"{e['rank']}★" if e["pareto"] else str(e["rank"]),
                Text(name),
                str(e["runs"]),
                _number(e["value"], e["ci95"], self.metric),
                *([self._extra_cell(e)] if extra else []),
                *([_number(e["accuracy"], None, "accuracy")] if also_accuracy else []),
                _number(e[self.cost], None, "comm-cost" if self.cost == "comm_bytes" else "wall-clock"),
            )
        return table

    def _extra_cell(self, e: dict[str, Any]) -> Any:
        from rich.text import Text

        if self.metric == "worst-case":
            return Text(str(e["worst_attack"]))
        if self.metric == "rounds-to-target":
            return f"{e['reached']}/{e['runs']}"
        return _number(e["clean_accuracy"], None, self.metric)

    def chart(self) -> Any:
        """An Altair chart: each configuration's accuracy against its cost, the Pareto front
        joined by a line (for notebooks: ``board.chart()``)."""
        import altair as alt

        cost_title = "bytes exchanged" if self.cost == "comm_bytes" else "wall-clock (s)"
        rows = [
            {
                "configuration": e["label"],
                "strategy": e["strategy"],
                "attack": e["attack"],
                "accuracy": e["accuracy"],
                "cost": e[self.cost],
                "pareto": e["pareto"],
                "runs": e["runs"],
            }
            for e in self.entries
            if e["accuracy"] is not None and e[self.cost] is not None
        ]
        data = alt.Data(values=rows)
        base = alt.Chart(data).encode(
            x=alt.X("cost:Q", title=cost_title, scale=alt.Scale(zero=False)),
            y=alt.Y("accuracy:Q", title="final accuracy", scale=alt.Scale(zero=False)),
        )
        points = base.mark_point(filled=True, size=70).encode(
            color=alt.Color("strategy:N"),
            shape=alt.Shape("attack:N"),
            tooltip=["configuration:N", "accuracy:Q", "cost:Q", "runs:Q", "pareto:N"],
        )
        front = base.transform_filter("datum.pareto").mark_line(color="gray", strokeDash=[4, 3]).encode(order="cost:Q")
        return (front + points).properties(title=f"Accuracy against cost ({self.metric} leaderboard; dashed: the Pareto front)")


def leaderboard(
    source: Results | str | Path | Sequence[str | Path] = ".",
    *,
    metric: Metric = "accuracy",
    dataset: str | Sequence[str] | None = None,
    attack: str | Sequence[str] | None = None,
    alpha: str | float | None = None,
    target: float = 0.9,
    min_runs: int = 1,
) -> Leaderboard:
    """Rank the configurations of the sweeps in ``source`` (a :func:`velocity.results.load`
    result, or the paths to load) by ``metric``.

    Filters: ``dataset`` (names), ``attack`` (names or labels: ``"alie"`` matches every ALIE
    run, ``"none"`` the clean ones), ``alpha`` (``0.5``, ``"<=0.5"``, ``">1"``, ``"0.1,0.5"``,
    ``"inf"``, or a partition name such as ``"iid"``); ``min_runs`` hides configurations with
    fewer repetitions; ``target`` is the accuracy ``rounds-to-target`` waits for.
    """
    if metric not in METRICS:
        raise ValueError(f"Expected a metric among {', '.join(METRICS)}, got {metric!r}")
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise ValueError(f"Expected min_runs as an integer >= 1, got {min_runs!r}")
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 <= target <= 1:
        raise ValueError(f"Expected target as an accuracy in [0, 1], got {target!r}")
    results = source if isinstance(source, Results) else load(*([source] if isinstance(source, str | Path) else source))
    notes: list[str] = []
    runs = results.runs
    unfinished = runs.filter(pl.col("status") != "finished").height
    if unfinished:
        notes.append(f"{unfinished} run(s) not finished (failed, cancelled or not run) are left out")
    runs = _dedupe(runs.filter(pl.col("status") == "finished"), notes)
    runs = _filtered(runs, dataset=dataset, attack=attack, alpha=alpha, metric=metric)
    entries = _entries(runs, results.rounds, metric, float(target), notes)
    entries = [e for e in entries if e["runs"] >= min_runs]
    _mark_pareto(entries, "comm_bytes" if metric == "comm-cost" else "wall_clock_s")
    _rank(entries, metric)
    return Leaderboard(metric, entries, list(results.skipped), notes, float(target) if metric == "rounds-to-target" else None)


# ---------------------------------------------------------------------------- selection


def _dedupe(runs: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    if runs.is_empty():
        return runs
    mtime = [_mtime(Path(d) / "summary.json") for d in runs["run_dir"]]
    ordered = runs.with_columns(pl.Series("_mtime", mtime)).sort("_mtime", descending=True)
    kept = ordered.unique(subset=["fingerprint", "seed"], keep="first", maintain_order=True).drop("_mtime")
    if kept.height < runs.height:
        notes.append(f"{runs.height - kept.height} run(s) found again in another sweep (same configuration and seed) counted once")
    return kept


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    return [v for v in items if v] or None


def _filtered(runs: pl.DataFrame, *, dataset: Any, attack: Any, alpha: Any, metric: str) -> pl.DataFrame:
    datasets = _names(dataset)
    if datasets:
        runs = runs.filter(pl.col("dataset").is_in(datasets))
    attacks = _names(attack)
    if attacks:
        wanted = [a.lower() for a in attacks]

        def matches(label: str) -> bool:
            parts = [p.strip().lower() for p in label.split(" + ")]
            return any(p == w or p.startswith(w + "(") for w in wanted for p in parts) or label.lower() in wanted

        # worst-case and robustness compare attacked runs with clean ones: keep the clean runs
        keep_clean = metric in ("worst-case", "robustness")
        runs = runs.filter(pl.col("attack").map_elements(lambda a: matches(a) or (keep_clean and a == "none"), return_dtype=pl.Boolean))
    if alpha is not None:
        runs = runs.filter(_alpha_filter(alpha))
    return runs


_COMPARISON = re.compile(r"^(<=|>=|<|>|=|==)?\s*(.+)$")


def _alpha_filter(alpha: str | float) -> pl.Expr:
    """``0.5``, ``"<=0.5"``, ``"0.1,0.5"``, ``"inf"``, or a partition name (``"iid"``)."""
    text = str(alpha).strip()
    exprs = []
    for item in [t.strip() for t in text.split(",") if t.strip()] or [text]:
        m = _COMPARISON.match(item)
        op, number = (m.group(1) or "=", m.group(2).strip()) if m else ("=", item)
        try:
            value = float(number)
        except ValueError:
            if op != "=" or not re.fullmatch(r"[A-Za-z_-]+", number):
                raise ValueError(
                    f"Expected alpha as a number, a comparison such as <=0.5, a list such as 0.1,0.5, or a partition name, got {text!r}"
                ) from None
            exprs.append(pl.col("partition") == number)
            continue
        if math.isnan(value):
            raise ValueError(f"Expected alpha as a number, got {text!r}")
        col = pl.col("alpha")
        exprs.append({"<": col < value, "<=": col <= value, ">": col > value, ">=": col >= value}.get(op, col == value).fill_null(False))
    out = exprs[0]
    for e in exprs[1:]:
        out = out | e
    return out


# ---------------------------------------------------------------------------- entries


def _config(row: dict[str, Any], keys: Sequence[str] = CONFIG_COLUMNS) -> dict[str, Any]:
    return {k: row[k] for k in keys}


def _label(config: dict[str, Any]) -> str:
    parts = [config["strategy"], config.get("attack"), config["partition"], config["dataset"]]
    return " | ".join(str(p) for p in parts if p is not None)


def _stat(values: list[float]) -> tuple[float | None, float | None]:
    mean, ci = mean_ci(values)
    return (None if math.isnan(mean) else mean), ci


def _costs(group: list[dict[str, Any]]) -> dict[str, Any]:
    acc = _stat([_f(r["final_accuracy"]) for r in group])[0]
    wall = _stat([_f(r["elapsed_s"]) for r in group])[0]
    comm = [_f(r["comm_bytes"]) for r in group]
    return {"accuracy": acc, "wall_clock_s": wall, "comm_bytes": None if any(math.isnan(c) for c in comm) else _stat(comm)[0]}


def _f(v: Any) -> float:
    return math.nan if v is None else float(v)


def _entries(runs: pl.DataFrame, rounds: pl.DataFrame, metric: str, target: float, notes: list[str]) -> list[dict[str, Any]]:
    rows = runs.to_dicts()
    if metric == "worst-case":
        return _worst_case(rows, notes)
    if metric == "robustness":
        return _robustness(rows, notes)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["fingerprint"], []).append(r)
    reached: dict[str, int | None] = {}
    if metric == "rounds-to-target":
        for run_dir, frame in rounds.filter(pl.col("accuracy") >= target).group_by("run_dir"):
            reached[str(run_dir[0])] = int(frame["round"].min())  # type: ignore[arg-type]
    entries = []
    left_out = 0
    for group in groups.values():
        config = _config(group[0])
        entry: dict[str, Any] = {**config, "label": _label(config), "runs": len(group), "seeds": sorted(r["seed"] for r in group)}
        if metric == "accuracy":
            entry["value"], entry["ci95"] = _stat([_f(r["final_accuracy"]) for r in group])
        elif metric == "wall-clock":
            entry["value"], entry["ci95"] = _stat([_f(r["elapsed_s"]) for r in group])
        elif metric == "comm-cost":
            known = [r for r in group if r["comm_bytes"] is not None]
            left_out += len(group) - len(known)
            if not known:
                continue
            group = known
            entry["runs"], entry["seeds"] = len(known), sorted(r["seed"] for r in known)
            entry["value"], entry["ci95"] = _stat([float(r["comm_bytes"]) for r in known])
        else:  # rounds-to-target
            firsts = [reached.get(r["run_dir"]) for r in group]
            hit = [float(v) for v in firsts if v is not None]
            entry["reached"] = len(hit)
            entry["value"], entry["ci95"] = _stat(hit) if hit else (None, None)
        entries.append({**entry, **_costs(group)})
    if left_out:
        notes.append(f"{left_out} run(s) without a recorded model size, or decentralised, have no communication cost and are left out")
    return entries


def _worst_case(rows: list[dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["attack"] != "none":
            groups.setdefault(r["clean_fingerprint"], []).append(r)
    entries = []
    uneven = 0
    for group in groups.values():
        per_seed: dict[int, list[dict[str, Any]]] = {}
        for r in group:
            per_seed.setdefault(r["seed"], []).append(r)
        uneven += len({frozenset(r["attack"] for r in rs) for rs in per_seed.values()}) > 1
        worst = [min(rs, key=lambda r: _f(r["final_accuracy"])) for rs in per_seed.values()]
        config = {k: v for k, v in _config(group[0]).items() if k not in ("attack", "malicious_fraction")}
        attacks = sorted({r["attack"] for r in group})
        worst_attacks = [w["attack"] for w in worst]
        value, ci = _stat([_f(w["final_accuracy"]) for w in worst])
        entries.append(
            {
                **config,
                "attack": None,
                "label": _label({**config, "attack": None}),
                "runs": len(per_seed),
                "seeds": sorted(per_seed),
                "attacks": attacks,
                "worst_attack": max(set(worst_attacks), key=worst_attacks.count),
                "value": value,
                "ci95": ci,
                **_costs(group),
            }
        )
    if uneven:
        notes.append(
            f"{uneven} configuration(s) faced different attacks in different seeds: their worst case is over fewer attacks in some"
        )
    return entries


def _robustness(rows: list[dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
    clean = {(r["clean_fingerprint"], r["seed"]): r for r in rows if r["attack"] == "none"}
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    orphans = 0
    for r in rows:
        if r["attack"] == "none":
            continue
        twin = clean.get((r["clean_fingerprint"], r["seed"]))
        if twin is None:
            orphans += 1
            continue
        groups.setdefault(r["fingerprint"], []).append((r, twin))
    if orphans:
        notes.append(f"{orphans} attacked run(s) without a clean twin (same configuration and seed, no attack) are left out")
    entries = []
    for pairs in groups.values():
        config = _config(pairs[0][0])
        drops = [_f(twin["final_accuracy"]) - _f(r["final_accuracy"]) for r, twin in pairs]
        value, ci = _stat(drops)
        entries.append(
            {
                **config,
                "label": _label(config),
                "runs": len(pairs),
                "seeds": sorted(r["seed"] for r, _ in pairs),
                "clean_accuracy": _stat([_f(t["final_accuracy"]) for _, t in pairs])[0],
                "value": value,
                "ci95": ci,
                **_costs([r for r, _ in pairs]),
            }
        )
    return entries


def _mark_pareto(entries: list[dict[str, Any]], cost: str) -> None:
    """An entry is on the front when no other has at least its accuracy at no more cost, and
    is better in one of the two."""
    for e in entries:
        a, c = e["accuracy"], e[cost]
        if a is None or c is None:
            e["pareto"] = False
            continue
        e["pareto"] = not any(
            o is not e
            and o["accuracy"] is not None
            and o[cost] is not None
            and o["accuracy"] >= a
            and o[cost] <= c
            and (o["accuracy"] > a or o[cost] < c)
            for o in entries
        )


def _rank(entries: list[dict[str, Any]], metric: str) -> None:
    higher = _HIGHER_IS_BETTER.get(metric, False)

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        v = e["value"]
        missing = v is None or math.isnan(v)
        score = 0.0 if missing else (-v if higher else v)
        if metric == "rounds-to-target":
            return (-e["reached"] / e["runs"], missing, score, e["label"])
        return (missing, score, e["label"])

    entries.sort(key=key)
    for i, e in enumerate(entries, 1):
        e["rank"] = i


def _name(e: dict[str, Any], with_dataset: bool) -> str:
    attack = e["attack"] if e["attack"] is not None else f"{len(e['attacks'])} attacks"
    return " | ".join([str(e["strategy"]), str(attack), str(e["partition"]), *([str(e["dataset"])] if with_dataset else [])])


_COST_TITLES = {"wall_clock_s": "seconds", "comm_bytes": "MB exchanged"}


def _number(v: float | None, ci: float | None, metric: str) -> str:
    if v is None:
        return "never" if metric == "rounds-to-target" else "n/a"
    if metric == "comm-cost":
        text, ci = f"{v / 1e6:.3g}", None if ci is None else ci / 1e6
        return text if ci is None else f"{text} ± {ci:.2g}"
    digits = {"rounds-to-target": 1, "wall-clock": 2}.get(metric, 3)
    return f"{v:.{digits}f}" + ("" if ci is None else f" ± {ci:.{digits}f}")


def _cell(v: Any) -> Any:
    return ", ".join(map(str, v)) if isinstance(v, list) else v
