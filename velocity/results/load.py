"""Every run of every sweep, queryable in one place: sweep folders are scanned (their
``config.json``, ``summary.json`` and ``rounds.csv``, checked as the sweep's own reader checks
them) into two polars frames, one row per run and one per round.

A run's **fingerprint** is its configuration without the seed (and without its name, output
path, device or trainer, which change no result): repetitions of one configuration share it,
across sweeps. Its **clean fingerprint** also leaves out the attack and the malicious share, so
an attacked run finds its clean twin (same seed) in any sweep.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from velocity.sweep.files import DamagedFile, read_json, read_rounds_csv
from velocity.sweep.report import RunResult, load_results
from velocity.sweep.spec import RunSpec

#: The columns of :attr:`Results.rounds` (besides the run's key columns).
ROUND_FIELDS = ("round", "num_clients", "global_loss", "accuracy", "attack_success", "round_ms")

_RUN_SCHEMA: dict[str, Any] = {
    "sweep": pl.String,
    "run": pl.String,
    "run_dir": pl.String,
    "status": pl.String,
    "fingerprint": pl.String,
    "clean_fingerprint": pl.String,
    "seed": pl.Int64,
    "dataset": pl.String,
    "model_id": pl.String,
    "strategy": pl.String,
    "attack": pl.String,
    "partition": pl.String,
    "alpha": pl.Float64,
    "num_clients": pl.Int64,
    "malicious_fraction": pl.Float64,
    "rounds": pl.Int64,
    "topology": pl.String,
    "rounds_completed": pl.Int64,
    "final_accuracy": pl.Float64,
    "final_loss": pl.Float64,
    "mean_accuracy": pl.Float64,
    "final_attack_success": pl.Float64,
    "final_dp_epsilon": pl.Float64,
    "final_server_dp_epsilon": pl.Float64,
    "mean_malicious_share": pl.Float64,
    "elapsed_s": pl.Float64,
    "num_parameters": pl.Int64,
    "comm_bytes": pl.Float64,
    "git_commit": pl.String,
}

_ROUND_SCHEMA: dict[str, Any] = {
    "run_dir": pl.String,
    "fingerprint": pl.String,
    "seed": pl.Int64,
    "round": pl.Int64,
    "num_clients": pl.Int64,
    "global_loss": pl.Float64,
    "accuracy": pl.Float64,
    "attack_success": pl.Float64,
    "round_ms": pl.Float64,
}


@dataclass(frozen=True)
class Results:
    """What :func:`load` found: ``runs`` (one row per run folder, finished or not), ``rounds``
    (one row per recorded round), and ``skipped``: each folder or run left out, with why."""

    runs: pl.DataFrame
    rounds: pl.DataFrame
    skipped: list[str] = field(default_factory=list)
    sweeps: list[Path] = field(default_factory=list)


def fingerprint(spec: RunSpec) -> str:
    """The configuration without the seed: repetitions share it."""
    return hashlib.sha256(spec.config_key.encode()).hexdigest()[:16]


def clean_fingerprint(spec: RunSpec) -> str:
    """The configuration without the seed, the attack and the malicious share: an attacked run
    and its clean twin share it."""
    return fingerprint(spec.clean_twin())


def find_sweeps(paths: Iterable[str | Path]) -> list[Path]:
    """The sweep folders under ``paths`` (each a sweep, or a folder holding sweeps at any depth),
    in order, each once. ``ValueError`` for a path that does not exist or holds no sweep."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ValueError(f"Expected a sweep folder or a folder of sweeps, got '{path}', which does not exist")
        if not path.is_dir():
            raise ValueError(f"Expected a sweep folder or a folder of sweeps, got the file '{path}'")
        # a run folder holds config.json; its sweep is the folder above it (inside ``path``)
        root = path.resolve()
        sweeps = sorted({cfg.parent.parent.resolve() for cfg in path.rglob("config.json") if cfg.parent.resolve() != root})
        if not sweeps:
            if (path / "config.json").exists():
                raise ValueError(
                    f"Expected a sweep folder or a folder of sweeps, got the run folder '{path}': give its sweep, '{path.parent}'"
                )
            raise ValueError(f"Expected a sweep folder (run folders holding config.json) or a folder of sweeps, got '{path}' with none")
        found.update(dict.fromkeys(sweeps))
    return list(found)


def load(*paths: str | Path, rounds: bool = True) -> Results:
    """Load the runs (and, with ``rounds``, their rounds) of the sweeps under ``paths`` (default:
    the current folder) into polars frames. A damaged file leaves its run out and names it in
    ``skipped``; nothing else is dropped (unfinished runs are kept, with their status)."""
    sweeps = find_sweeps(paths or (".",))
    run_rows: list[dict[str, Any]] = []
    round_rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for sweep in sweeps:
        commit = _sweep_commit(sweep, skipped)
        damaged: list[str] = []
        for result in load_results(sweep, damaged):
            if result.summary.get("status") == "damaged":
                continue  # named in ``damaged``
            row = _run_row(sweep, result, commit)
            if rounds and row["status"] != "not run":
                try:
                    recorded = read_rounds_csv(sweep / result.run_dir / "rounds.csv", growing=row["status"] != "finished")
                except DamagedFile as e:
                    skipped.append(f"{e} (the run is left out)")
                    continue
                round_rows.extend(
                    {
                        "run_dir": row["run_dir"],
                        "fingerprint": row["fingerprint"],
                        "seed": row["seed"],
                        **{k: r.get(k) for k in ROUND_FIELDS},
                    }
                    for r in recorded
                )
                row["comm_bytes"] = _comm_bytes(recorded, row)
            run_rows.append(row)
        skipped.extend(f"{d} (the run is left out)" if "left out" not in d else d for d in damaged)
    runs = pl.DataFrame(run_rows, schema=_RUN_SCHEMA, orient="row") if run_rows else pl.DataFrame(schema=_RUN_SCHEMA)
    round_frame = pl.DataFrame(round_rows, schema=_ROUND_SCHEMA, orient="row") if round_rows else pl.DataFrame(schema=_ROUND_SCHEMA)
    return Results(runs=runs, rounds=round_frame, skipped=skipped, sweeps=sweeps)


def _sweep_commit(sweep: Path, skipped: list[str]) -> str | None:
    manifest = sweep / "manifest.json"
    if not manifest.exists():
        return None
    try:
        data = read_json(manifest)
    except DamagedFile as e:
        skipped.append(f"{e} (its runs are kept, without the commit)")
        return None
    commit = data.get("git_commit") if isinstance(data, dict) else None
    return commit if isinstance(commit, str) else None


def _number(summary: dict[str, Any], key: str) -> float | None:
    v = summary.get(key)
    return None if v is None or isinstance(v, bool) else float(v)


def _run_row(sweep: Path, result: RunResult, commit: str | None) -> dict[str, Any]:
    spec, summary = result.spec, result.summary
    params = summary.get("num_parameters")
    return {
        "sweep": str(sweep),
        "run": spec.label,
        "run_dir": str(sweep / result.run_dir),
        "status": str(summary.get("status")),
        "fingerprint": fingerprint(spec),
        "clean_fingerprint": clean_fingerprint(spec),
        "seed": spec.seed,
        "dataset": str(summary.get("dataset") or spec.dataset),
        "model_id": spec.model_id,
        "strategy": spec.strategy_label,
        "attack": spec.attack_label,
        "partition": spec.partition_label,
        "alpha": spec.alpha if spec.partition == "dirichlet" and spec.alpha is not None else None,
        "num_clients": spec.num_clients,
        "malicious_fraction": spec.malicious_fraction,
        "rounds": spec.rounds,
        "topology": spec.topology,
        "rounds_completed": int(summary.get("rounds_completed") or 0),
        "final_accuracy": _number(summary, "final_accuracy"),
        "final_loss": _number(summary, "final_loss"),
        "mean_accuracy": _number(summary, "mean_accuracy"),
        "final_attack_success": _number(summary, "final_attack_success"),
        "final_dp_epsilon": _number(summary, "final_dp_epsilon"),
        "final_server_dp_epsilon": _number(summary, "final_server_dp_epsilon"),
        "mean_malicious_share": _number(summary, "mean_malicious_share"),
        "elapsed_s": _number(summary, "elapsed_s"),
        "num_parameters": int(params) if isinstance(params, int) and not isinstance(params, bool) else None,
        "comm_bytes": None,
        "git_commit": commit,
    }


def _comm_bytes(recorded: list[dict[str, Any]], row: dict[str, Any]) -> float | None:
    """What a federated run's server sent and received: per round, each sampled client gets the
    global model and sends back its update, both float32 (None for a decentralised run, whose
    traffic depends on its graph, and for a run whose model size was not recorded)."""
    params = row["num_parameters"]
    if params is None or row["topology"] != "federated":
        return None
    clients = sum(int(r["num_clients"]) for r in recorded if not _missing(r.get("num_clients")))
    return float(2 * 4 * params * clients)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
