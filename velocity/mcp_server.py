"""Agent tools over the Model Context Protocol (the official Python SDK, ``mcp``): an AI agent
lists the components, validates an experiment, starts a sweep in the background, follows it,
reads its comparison and ranks configurations across sweeps.

``velocity mcp --root DIR`` serves them over stdio. Every path a tool takes is confined to the
root given at start (relative paths are taken from it; a path that leaves it, through ``..`` or
a symbolic link, is refused), and a sweep larger than the budget (runs × rounds) is refused
with a message, before anything runs.

Tools: ``list_components``, ``validate_experiment``, ``sweep_run``, ``sweep_status``,
``sweep_compare``, ``leaderboard``. Resources: ``velocity://registry`` (every component with its
parameters) and ``velocity://comparison/{sweep}`` (a finished sweep's comparison under the root).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from velocity.specs import to_json_value

#: The default budget of one sweep an agent may start: runs × rounds.
DEFAULT_BUDGET = 2_000
#: Entries of a leaderboard an agent gets back (the rest are counted).
LEADERBOARD_ROWS = 20


class Confined:
    """Paths under one root: ``resolve`` refuses anything that lands outside it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"Expected an existing folder as the root, got '{root}'")

    def resolve(self, path: str | Path) -> Path:
        p = Path(path)
        full = (p if p.is_absolute() else self.root / p).resolve()
        if full != self.root and self.root not in full.parents:
            raise ValueError(f"Expected a path inside the root '{self.root}', got '{path}'")
        return full


def _components() -> list[dict[str, Any]]:
    from velocity.registry import registry

    return [to_json_value(dataclasses.asdict(c), nan_as_null=True) for c in registry()]


def _sweep_status(folder: Path, process: subprocess.Popen[bytes] | None) -> dict[str, Any]:
    from velocity.sweep.files import DamagedFile, read_json, read_summary

    if not folder.is_dir():
        raise ValueError(f"Expected a sweep folder, got '{folder}', which does not exist")
    counts: dict[str, int] = {}
    failed = []
    for cfg in sorted(folder.glob("*/config.json")):
        summary = cfg.parent / "summary.json"
        try:
            status = read_summary(summary)["status"] if summary.exists() else "running"
        except DamagedFile:
            status = "damaged"
        counts[status] = counts.get(status, 0) + 1
        if status == "failed":
            failed.append(cfg.parent.name)
    total = None
    if (folder / "manifest.json").exists():
        try:
            manifest = read_json(folder / "manifest.json")
            total = manifest.get("runs") if isinstance(manifest, dict) else None
        except DamagedFile:
            pass
    state = "finished" if (folder / "comparison.json").exists() else "running"
    out: dict[str, Any] = {"sweep": str(folder), "state": state, "runs": total, "counts": counts, "failed_runs": failed}
    if process is not None:
        code = process.poll()
        if code is not None and code not in (0, 1):  # 1: finished with failed runs
            log = folder / "sweep.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            out.update(state="stopped", exit_code=code, last_line=tail[0] if tail else None)
        elif code is None:
            out["state"] = "running"
    return out


def _comparison_summary(folder: Path) -> dict[str, Any]:
    from velocity.sweep.files import read_json

    path = folder / "comparison.json"
    if not path.exists():
        raise ValueError(f"Expected a finished sweep (with comparison.json) in '{folder}', got none yet")
    comp = read_json(path)
    if not isinstance(comp, dict) or not isinstance(comp.get("verdict"), dict):
        raise ValueError(f"Expected a sweep's comparison in {path}, got a file without its verdict")
    verdict = comp["verdict"]
    table = verdict.get("table", [])
    if not isinstance(table, list) or not all(isinstance(row, dict) for row in table):
        got = "rows that are not objects" if isinstance(table, list) else type(table).__name__
        raise ValueError(f"Expected the verdict's table (a list of rows) in {path}, got {got}")
    keep = (
        "alpha",
        "rank",
        "strategy",
        "clean_accuracy",
        "worst_case_accuracy",
        "worst_case_accuracy_ci95",
        "worst_attack",
        "tied_with_best",
    )
    return {
        "sweep": str(folder),
        "verdict": [{k: row.get(k) for k in keep} for row in table],
        "single_seed": verdict.get("single_seed"),
        "notices": verdict.get("notices", []),
        "winner": comp.get("winner"),
        "failed": comp.get("failed", []),
    }


_Tool = TypeVar("_Tool", bound=Callable[..., Any])


def _anticipated(fn: _Tool) -> _Tool:
    """Bad input (``ValueError``: an unknown name, a path outside the root, a damaged file) and
    a refusing file system reach the agent as the tool's error message, not as a crash."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError) as e:
            raise ToolError(str(e)) from None

    return wrapper  # type: ignore[return-value]


def build_server(root: str | Path, *, budget: int = DEFAULT_BUDGET) -> Any:
    """The MCP server (``mcp.server.mcpserver.MCPServer``) with velocity's tools and resources,
    confined to ``root``; ``budget``: the largest sweep (runs × rounds) ``sweep_run`` starts."""
    from mcp.server.mcpserver import MCPServer

    from velocity.sweep.experiment import load_experiment, parse_experiment

    place = Confined(root)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"Expected budget as an integer >= 1 (runs × rounds), got {budget!r}")
    started: dict[Path, subprocess.Popen[bytes]] = {}
    server = MCPServer(
        "velocity",
        instructions=(
            "VelocityFL: federated-learning robustness experiments. Validate an experiment (TOML) before running it; "
            f"sweeps run in the background under {place.root}; poll sweep_status, then read sweep_compare."
        ),
    )

    @server.tool()
    @_anticipated
    def list_components() -> dict[str, Any]:
        """Every aggregation rule, pre-aggregator, server optimiser, attack and mixer, with its
        parameters (name, type, default, bounds) and the paper it comes from."""
        return {"components": _components()}

    @server.tool()
    @_anticipated
    def validate_experiment(toml: str) -> dict[str, Any]:
        """Check an experiment written as TOML ([shared], [[runs]], [matrix]) without running it:
        its runs, their total rounds, and whether it fits the budget; or the first error."""
        try:
            specs = parse_experiment(toml)
        except ValueError as e:
            return {"valid": False, "error": str(e)}
        cost = sum(s.rounds for s in specs)
        return {"valid": True, "runs": len(specs), "run_rounds": cost, "within_budget": cost <= budget, "labels": [s.label for s in specs]}

    @server.tool()
    @_anticipated
    def sweep_run(out: str, toml: str | None = None, config_path: str | None = None) -> dict[str, Any]:
        """Start a sweep in the background: the experiment as TOML text, or a TOML file under the
        root; its files go to the folder ``out`` under the root. Returns at once with the folder."""
        if (toml is None) == (config_path is None):
            raise ValueError(
                "Expected exactly one of toml (the experiment's text) and config_path (a file under the root), got "
                + ("both" if toml is not None else "neither")
            )
        folder = place.resolve(out)
        specs = parse_experiment(toml) if toml is not None else load_experiment(place.resolve(str(config_path)))
        cost = sum(s.rounds for s in specs)
        if cost > budget:
            raise ValueError(f"Expected a sweep within the budget of {budget} run-rounds, got {len(specs)} runs and {cost} run-rounds")
        running = started.get(folder)
        if running is not None and running.poll() is None:
            raise ValueError(f"Expected no sweep running in '{folder}', got one started earlier (still running)")
        folder.mkdir(parents=True, exist_ok=True)
        experiment = folder / "experiment.toml"
        if toml is not None:
            experiment.write_text(toml, encoding="utf-8")
        else:
            experiment.write_bytes(place.resolve(str(config_path)).read_bytes())
        log = (folder / "sweep.log").open("wb")
        started[folder] = subprocess.Popen(
            [sys.executable, "-m", "velocity.cli", "sweep", str(experiment), "--out", str(folder), "--quiet"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=place.root,
            env={**os.environ, "COLUMNS": "120"},
        )
        log.close()
        return {"sweep": str(folder), "runs": len(specs), "run_rounds": cost, "state": "started"}

    @server.tool()
    @_anticipated
    def sweep_status(sweep: str) -> dict[str, Any]:
        """A sweep's progress: its runs by status (running, finished, failed), and whether it has
        ended (state "finished" once its comparison is written)."""
        folder = place.resolve(sweep)
        return _sweep_status(folder, started.get(folder))

    @server.tool()
    @_anticipated
    def sweep_compare(sweep: str) -> dict[str, Any]:
        """A finished sweep's verdict: per heterogeneity level, the strategies ranked by their
        worst-case accuracy under the sweep's attacks (with intervals when seeds repeat), the
        notices, the winner and the failed runs."""
        return _comparison_summary(place.resolve(sweep))

    @server.tool()
    @_anticipated
    def leaderboard(
        paths: list[str] | None = None,
        metric: str = "accuracy",
        dataset: str | None = None,
        attack: str | None = None,
        alpha: str | None = None,
        target: float = 0.9,
        min_runs: int = 1,
    ) -> dict[str, Any]:
        """Rank configurations across the sweeps under ``paths`` (default: the root) by one
        metric: accuracy, worst-case, robustness, rounds-to-target, wall-clock or comm-cost;
        mean ± a 95 % interval over seeds, the Pareto front of accuracy against cost."""
        from velocity.results import leaderboard as board_of

        folders = [place.resolve(p) for p in (paths or ["."])]
        board = board_of(folders, metric=metric, dataset=dataset, attack=attack, alpha=alpha, target=target, min_runs=min_runs)  # type: ignore[arg-type]
        data = board.to_json()
        data["entries_not_shown"] = max(0, len(data["entries"]) - LEADERBOARD_ROWS)
        data["entries"] = data["entries"][:LEADERBOARD_ROWS]
        return to_json_value(data, nan_as_null=True)

    @server.resource("velocity://registry", mime_type="application/json", description="every component with its parameters")
    def registry_resource() -> dict[str, Any]:
        return {"components": _components()}

    @server.resource("velocity://comparison/{sweep}", mime_type="application/json", description="a finished sweep's comparison")
    def comparison_resource(sweep: str) -> dict[str, Any]:
        from mcp.server.mcpserver.exceptions import ResourceError

        try:
            return _comparison_summary(place.resolve(sweep))
        except (ValueError, OSError) as e:
            raise ResourceError(str(e)) from None

    return server


def serve(root: str | Path, *, budget: int = DEFAULT_BUDGET) -> None:
    """Serve the tools over stdio until the client closes the connection."""
    build_server(root, budget=budget).run("stdio")
