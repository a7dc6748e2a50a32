"""The comparison of a sweep: runs ranked, the winner, the most robust strategy under attack.

Built from the per-run files alone (config.json + summary.json), so ``velocity report DIR``
rebuilds exactly what the sweep wrote.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from velocity.sweep.files import atomic_write_json, atomic_write_text, read_json
from velocity.sweep.spec import RunSpec


@dataclass(frozen=True)
class RunResult:
    """One run as its files describe it."""

    spec: RunSpec
    summary: dict[str, Any]
    run_dir: str

    @property
    def finished(self) -> bool:
        return self.summary.get("status") == "finished"

    def metric(self, key: str) -> float:
        v = self.summary.get(key)
        return math.nan if v is None else float(v)


def load_results(sweep_dir: Path) -> list[RunResult]:
    """Every run folder of a sweep that has a config.json (summary may be missing if it never ran)."""
    results = []
    for cfg in sorted(sweep_dir.glob("*/config.json")):
        spec = RunSpec.model_validate(read_json(cfg))
        summary_path = cfg.parent / "summary.json"
        summary = read_json(summary_path) if summary_path.exists() else {"status": "not run"}
        results.append(RunResult(spec, summary, cfg.parent.name))
    results.sort(key=lambda r: r.summary.get("index", 0))
    return results


def _mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of a 95% Student-t confidence interval (None for one value)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, None
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return mean, None
    from scipy.stats import t

    half = t.ppf(0.975, len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))
    return mean, half


def _group(results: list[RunResult]) -> list[dict[str, Any]]:
    """One entry per configuration (all keys but the seed), with mean ± CI over its seeds."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.spec.config_key, []).append(r)
    out = []
    for members in groups.values():
        spec = members[0].spec
        done = [m for m in members if m.finished]
        entry: dict[str, Any] = {
            "run": spec.name if len(members) == 1 and spec.name else spec.label.rsplit(" | seed=", 1)[0],
            "strategy": spec.strategy,
            "attack": spec.attack_label,
            "alpha": spec.alpha_label,
            "seeds": [m.spec.seed for m in members],
            "finished": len(done),
            "failed": [{"run": m.spec.label, "error": m.summary.get("error", m.summary.get("status"))} for m in members if not m.finished],
            "config_key": spec.config_key,
        }
        for key in ("final_loss", "final_accuracy", "mean_loss", "elapsed_s"):
            mean, ci = _mean_ci([m.metric(key) for m in done])
            entry[key] = mean
            entry[f"{key}_ci95"] = ci
        out.append(entry)
    return out


def _baseline_key(spec: RunSpec) -> str:
    return spec.clean_twin().config_key


def _loss_change(attacked: dict[str, Any], clean: dict[str, Any]) -> float:
    """Final-loss change against the clean twin; a finished run whose loss diverged (NaN) counts
    as +inf, the least robust, rather than dropping out of the robustness ranking."""
    if attacked["finished"] and math.isnan(attacked["final_loss"]) and not math.isnan(clean["final_loss"]):
        return math.inf
    return attacked["final_loss"] - clean["final_loss"]


def build_comparison(results: list[RunResult], *, wall_s: float | None, parallel: int | None) -> dict[str, Any]:
    entries = _group(results)
    specs = {r.spec.config_key: r.spec for r in results}

    def rank_key(e: dict[str, Any]) -> tuple[float, float]:
        acc = e["final_accuracy"]
        loss = e["final_loss"]
        return (-acc if not math.isnan(acc) else math.inf, loss if not math.isnan(loss) else math.inf)

    ranked = sorted(entries, key=rank_key)
    clean = {e["config_key"]: e for e in entries if e["attack"] == "none"}
    for i, e in enumerate(ranked, 1):
        e["rank"] = i
        twin = clean.get(_baseline_key(specs[e["config_key"]])) if e["attack"] != "none" else None
        e["loss_change_vs_clean"] = None if twin is None else _loss_change(e, twin)
        e["accuracy_change_vs_clean"] = None if twin is None else e["final_accuracy"] - twin["final_accuracy"]

    robustness: dict[str, list[float]] = {}
    for e in ranked:
        if e["loss_change_vs_clean"] is not None and not math.isnan(e["loss_change_vs_clean"]):
            robustness.setdefault(e["strategy"], []).append(e["loss_change_vs_clean"])
    means = sorted(((statistics.fmean(v), s, len(v)) for s, v in robustness.items()), key=lambda t: t[0])
    robust_table = [{"strategy": s, "mean_loss_change": m, "attacked_runs": k} for m, s, k in means]
    serial = sum(r.metric("elapsed_s") for r in results if not math.isnan(r.metric("elapsed_s")))
    timing = {"runs": len(results), "parallel": parallel, "wall_s": wall_s, "serial_s": serial}
    if wall_s:
        timing["speedup"] = serial / wall_s
    winner = next((e for e in ranked if e["finished"]), None)
    return {
        "ranking": ranked,
        "winner": winner["run"] if winner else None,
        "most_robust": robust_table[0]["strategy"] if robust_table else None,
        "robustness": robust_table,
        "timing": timing,
        "failed": [f for e in ranked for f in e["failed"]],
    }


def _fmt(v: Any, ci: Any = None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    text = f"{v:.{digits}f}"
    return f"{text} ± {ci:.{digits}f}" if ci is not None else text


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def comparison_markdown(comp: dict[str, Any]) -> str:
    lines = ["# Sweep comparison", ""]
    lines.append("| Rank | Run | Strategy | Attack | α | Final loss | Final accuracy | Mean loss | Elapsed (s) | Δ loss vs clean |")
    lines.append("|---:|---|---|---|---|---:|---:|---:|---:|---:|")
    for e in comp["ranking"]:
        lines.append(
            f"| {e['rank']} | {_cell(e['run'])} | {_cell(e['strategy'])} | {_cell(e['attack'])} | {e['alpha']} | "
            f"{_fmt(e['final_loss'], e['final_loss_ci95'])} | {_fmt(e['final_accuracy'], e['final_accuracy_ci95'])} | "
            f"{_fmt(e['mean_loss'], e['mean_loss_ci95'])} | {_fmt(e['elapsed_s'], digits=1)} | {_fmt(e['loss_change_vs_clean'])} |"
        )
    lines.append("")
    if any(len(e["seeds"]) > 1 for e in comp["ranking"]):
        lines += ["Values with several seeds are mean ± the half-width of a 95% Student-t interval; ranks use the mean.", ""]
    lines.append(f"**Winner:** {comp['winner'] or 'none (no run finished)'}")
    lines.append("")
    if comp["robustness"]:
        best = comp["robustness"][0]
        lines.append(
            f"**Most robust under attack:** {best['strategy']} (mean final-loss change against its own clean baseline: {best['mean_loss_change']:+.4f})"
        )
        others = ", ".join(f"{r['strategy']} {r['mean_loss_change']:+.4f}" for r in comp["robustness"][1:])
        if others:
            lines.append(f"Others: {others}")
    else:
        lines.append("**Most robust under attack:** n/a (needs attacked runs with a clean twin)")
    lines.append("")
    t = comp["timing"]
    if t.get("wall_s"):
        lines.append(
            f"{t['runs']} runs, {t['parallel']} parallel, total wall {t['wall_s']:.1f} s "
            f"(serial would be {t['serial_s']:.1f} s — {t['speedup']:.2f}× speedup)"
        )
    if comp["failed"]:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {f['run']}: {f['error']}" for f in comp["failed"]]
    return "\n".join(lines) + "\n"


def write_comparison(sweep_dir: Path, results: list[RunResult], *, wall_s: float | None, parallel: int | None) -> dict[str, Any]:
    comp = build_comparison(results, wall_s=wall_s, parallel=parallel)
    atomic_write_json(sweep_dir / "comparison.json", comp)
    atomic_write_text(sweep_dir / "comparison.md", comparison_markdown(comp))
    return comp
