"""The comparison of a sweep: the verdict (worst-case and mean accuracy under the sweep's
attacks, with statistics and notices: ``velocity.sweep.verdict``), then every run ranked, the
winner, and each strategy's mean final-loss change under attack.

Built from the per-run files alone (config.json + summary.json), so ``velocity report DIR``
rebuilds exactly what the sweep wrote.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from velocity.sweep.files import DamagedFile, atomic_write_json, atomic_write_text, read_json, read_summary
from velocity.sweep.manifest import available_cpus
from velocity.sweep.spec import RunSpec
from velocity.sweep.verdict import mean_ci, verdicts, versus_best


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


def load_results(sweep_dir: Path, damaged: list[str] | None = None) -> list[RunResult]:
    """Every run folder of a sweep that has a config.json (summary may be missing if it never
    ran). A damaged summary makes its run unfinished (status "damaged", the reason as its
    error); a damaged config.json leaves the folder out. Either is named in ``damaged``."""
    results = []
    for cfg in sorted(sweep_dir.glob("*/config.json")):
        try:
            spec = read_config(cfg)
        except DamagedFile as e:
            if damaged is not None:
                damaged.append(f"{e} (the run is left out)")
            continue
        summary_path = cfg.parent / "summary.json"
        try:
            summary = read_summary(summary_path) if summary_path.exists() else {"status": "not run"}
        except DamagedFile as e:
            summary = {"status": "damaged", "error": str(e)}
            if damaged is not None:
                damaged.append(str(e))
        results.append(RunResult(spec, summary, cfg.parent.name))
    results.sort(key=lambda r: r.summary.get("index", 0) if isinstance(r.summary.get("index"), int) else 0)
    return results


def read_config(path: Path) -> RunSpec:
    """A run's ``config.json`` as its RunSpec; ``DamagedFile`` naming the file otherwise."""
    data = read_json(path)
    try:
        return RunSpec.model_validate(data)
    except ValueError as e:  # pydantic's ValidationError is one
        first = str(e).splitlines()
        raise DamagedFile(f"Expected a run's settings in {path}, got {first[1] if len(first) > 1 else first[0]}".rstrip()) from None


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
            "strategy": spec.strategy_label,
            "attack": spec.attack_label,
            "alpha": spec.alpha_label,
            "seeds": [m.spec.seed for m in members],
            "finished": len(done),
            "failed": [{"run": m.spec.label, "error": m.summary.get("error", m.summary.get("status"))} for m in members if not m.finished],
            "config_key": spec.config_key,
            "server_dp": spec.server_dp is not None,
        }
        for key in ("final_loss", "final_accuracy", "mean_loss", "elapsed_s", "final_attack_success", *EPSILONS):
            mean, ci = mean_ci([m.metric(key) for m in done])
            entry[key] = mean
            entry[f"{key}_ci95"] = ci
        out.append(entry)
    return out


#: The privacy spent by a run's end, with the column header the comparison gives it.
EPSILONS = {"final_dp_epsilon": "ε DP-SGD", "final_server_dp_epsilon": "ε server DP"}


def epsilon_columns(ranking: list[dict[str, Any]]) -> list[str]:
    """The ε columns a comparison shows: each that a run measured, and server DP's whenever a run
    had server DP (its cell n/a for a rule other than the mean, whose noise is the mean's)."""
    shown = [k for k in EPSILONS if any(not math.isnan(e.get(k, math.nan)) for e in ranking)]
    if any(e.get("server_dp") for e in ranking) and "final_server_dp_epsilon" not in shown:
        shown.append("final_server_dp_epsilon")
    return shown


def _measured(entry: dict[str, Any]) -> bool:
    """Whether a configuration ended with a finite accuracy and loss (a diverged run has NaN loss)."""
    return math.isfinite(entry["final_accuracy"]) and math.isfinite(entry["final_loss"])


def _baseline_key(spec: RunSpec) -> str:
    return spec.clean_twin().config_key


def _loss_change(attacked: dict[str, Any], clean: dict[str, Any]) -> float:
    """Final-loss change against the clean twin; a finished run whose loss diverged (NaN) counts
    as +inf, the least robust, rather than dropping out of the robustness ranking."""
    if attacked["finished"] and math.isnan(attacked["final_loss"]) and not math.isnan(clean["final_loss"]):
        return math.inf
    return attacked["final_loss"] - clean["final_loss"]


def build_comparison(
    results: list[RunResult],
    *,
    wall_s: float | None,
    parallel: int | None,
    resumed: Collection[str] = (),
    file_problems: Collection[str] = (),
) -> dict[str, Any]:
    entries = _group(results)
    specs = {r.spec.config_key: r.spec for r in results}

    def rank_key(e: dict[str, Any]) -> tuple[bool, float, float]:
        # a run whose loss diverged (NaN) or that measured nothing ranks after every run that
        # measured both, whatever accuracy its broken model scores
        acc, loss = e["final_accuracy"], e["final_loss"]
        return (not _measured(e), -acc if not math.isnan(acc) else math.inf, loss if not math.isnan(loss) else math.inf)

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
    # Runs resumed from an earlier sweep into this folder took no part of this wall time.
    timed = [r for r in results if r.run_dir not in resumed and not math.isnan(r.metric("elapsed_s"))]
    serial = sum(r.metric("elapsed_s") for r in timed)
    timing = {
        "runs": len(results),
        "parallel": parallel,
        "cores": available_cpus(),
        "wall_s": wall_s,
        "serial_s": serial,
        "resumed": sorted(set(resumed)),
    }
    if wall_s:
        timing["speedup"] = serial / wall_s
    winner = next((e for e in ranked if e["finished"] and _measured(e)), None)
    return {
        "verdict": verdicts(results),
        "ranking": ranked,
        "winner": winner["run"] if winner else None,
        "most_robust": robust_table[0]["strategy"] if robust_table else None,
        "robustness": robust_table,
        "timing": timing,
        "failed": [f for e in ranked for f in e["failed"]],
        "file_problems": list(file_problems),
        # the δ at which the ε columns are stated
        "privacy_deltas": sorted({p.delta for r in results for p in (r.spec.dp, r.spec.server_dp) if p is not None}),
    }


def _fmt(v: Any, ci: Any = None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    text = f"{v:.{digits}f}"
    return f"{text} ± {ci:.{digits}f}" if ci is not None else text


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def verdict_markdown(verdict: dict[str, Any]) -> list[str]:
    """The verdict section: per α, strategies by worst-case accuracy under the sweep's attacks."""
    if not verdict["table"]:
        lines = ["## Verdict", "", "No attacked runs: nothing to rank by robustness.", ""]
    else:
        lines = ["## Verdict: accuracy under the sweep's attacks", ""]
        lines.append("| α | Rank | Strategy | Clean accuracy | Worst-case accuracy | Worst attack | Mean under attack | vs best |")
        lines.append("|---|---:|---|---:|---:|---|---:|---|")
        for e in verdict["table"]:
            lines.append(
                f"| {e['alpha']} | {e['rank']} | {_cell(e['strategy'])} | {_fmt(e['clean_accuracy'], e['clean_accuracy_ci95'], 3)} | "
                f"{_fmt(e['worst_case_accuracy'], e['worst_case_accuracy_ci95'], 3)} | {_cell(e['worst_attack'] or 'n/a')} | "
                f"{_fmt(e['mean_attacked_accuracy'], e['mean_attacked_accuracy_ci95'], 3)} | {versus_best(e)} |"
            )
        lines.append("")
        if verdict["single_seed"]:
            lines += [
                "One seed per configuration: no intervals and no test, so close values may be noise. Run with `--seeds 3` or more.",
                "",
            ]
        else:
            lines += [
                "Mean ± the half-width of a 95% Student-t interval over seeds; worst case = the lowest final accuracy over the "
                "attacks, per seed. 'vs best': paired t-test over seeds against the rank-1 strategy (tied: p ≥ 0.05).",
                "",
            ]
    if verdict["notices"]:
        lines += ["### Notices", ""]
        lines += [f"- {_cell(n)}" for n in verdict["notices"]]
        lines.append("")
    return lines


def comparison_markdown(comp: dict[str, Any]) -> str:
    lines = ["# Sweep comparison", ""]
    lines += verdict_markdown(comp["verdict"])
    if comp.get("file_problems"):
        lines += ["## File problems", ""]
        lines += [f"- {_cell(text)}" for text in comp["file_problems"]]
        lines.append("")
    lines += ["## Every run", ""]
    # the attack success rate, when a targeted attack (backdoor, targeted label flipping) ran
    asr = any(not math.isnan(e.get("final_attack_success", math.nan)) for e in comp["ranking"])
    private = epsilon_columns(comp["ranking"])
    lines.append(
        "| Rank | Run | Strategy | Attack | α | Final loss | Final accuracy | "
        + ("Attack success | " if asr else "")
        + "".join(f"{EPSILONS[k]} | " for k in private)
        + "Mean loss | Elapsed (s) | Δ loss vs clean |"
    )
    lines.append("|---:|---|---|---|---|---:|---:|" + ("---:|" if asr else "") + "---:|" * len(private) + "---:|---:|---:|")
    for e in comp["ranking"]:
        success = f"{_fmt(e.get('final_attack_success'), e.get('final_attack_success_ci95'))} | " if asr else ""
        epsilons = "".join(f"{_fmt(e.get(k), e.get(f'{k}_ci95'), 2)} | " for k in private)
        lines.append(
            f"| {e['rank']} | {_cell(e['run'])} | {_cell(e['strategy'])} | {_cell(e['attack'])} | {e['alpha']} | "
            f"{_fmt(e['final_loss'], e['final_loss_ci95'])} | {_fmt(e['final_accuracy'], e['final_accuracy_ci95'])} | {success}"
            f"{epsilons}{_fmt(e['mean_loss'], e['mean_loss_ci95'])} | {_fmt(e['elapsed_s'], digits=1)} | {_fmt(e['loss_change_vs_clean'])} |"
        )
    lines.append("")
    if private:
        deltas = ", ".join(f"{d:g}" for d in comp.get("privacy_deltas", [])) or "the run's δ"
        lines += [
            f"ε: the privacy spent by the end of the run, at δ = {deltas}. DP-SGD's is "
            "per example, the largest of any client; server DP's is per client, and stated only for the mean (FedAvg, "
            "FedProx): n/a for another rule, whose noise is the mean's.",
            "",
        ]
    if asr:
        lines += [
            "Attack success: for a backdoor, the share of triggered test examples (not of the target class) classified as "
            "the target; for targeted label flipping, the share of the source class's test examples classified as the target.",
            "",
        ]
    if any(len(e["seeds"]) > 1 for e in comp["ranking"]):
        lines += ["Values with several seeds are mean ± the half-width of a 95% Student-t interval; ranks use the mean.", ""]
    lines.append(f"**Winner:** {comp['winner'] or 'none (no run finished with a finite loss and accuracy)'}")
    lines.append("")
    if comp["robustness"]:
        best = comp["robustness"][0]
        lines.append(
            f"**Smallest loss change under attack:** {best['strategy']} (mean final-loss change against its own clean baseline: "
            f"{best['mean_loss_change']:+.4f}). A rule that learns little when clean also loses little under attack: read it "
            "with the verdict above, which ranks by accuracy."
        )
        others = ", ".join(f"{r['strategy']} {r['mean_loss_change']:+.4f}" for r in comp["robustness"][1:])
        if others:
            lines.append(f"Others: {others}")
    else:
        lines.append("**Smallest loss change under attack:** n/a (needs attacked runs with a clean twin)")
    lines.append("")
    t = comp["timing"]
    if t.get("wall_s"):
        lines.append(timing_line(t))
    if comp["failed"]:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {f['run']}: {f['error']}" for f in comp["failed"]]
    return "\n".join(lines) + "\n"


def timing_line(t: dict[str, Any]) -> str:
    """The sweep's timing in one line: wall time against the serial time of the runs it ran."""
    resumed = len(t.get("resumed", []))
    ran = t["runs"] - resumed
    if ran == 0:
        return f"{t['runs']} runs, all finished earlier: nothing was run now"
    if not t.get("serial_s"):  # no run measured its time: no speedup to speak of
        return f"{t['runs']} runs, {t['parallel']} parallel, total wall {t['wall_s']:.1f} s"
    where = f"{t['runs']} runs ({resumed} finished earlier, {ran} run now)" if resumed else f"{t['runs']} runs"
    line = (
        f"{where}, {t['parallel']} parallel, total wall {t['wall_s']:.1f} s "
        f"(serial would be {t['serial_s']:.1f} s — {t['speedup']:.2f}× speedup)"
    )
    cores = t.get("cores")
    if cores and t["parallel"] > cores:  # each run's time then includes waiting for a core
        line += f"; {t['parallel']} workers shared {cores} cores, so the serial time, and the speedup, are overstated"
    return line


def write_comparison(
    sweep_dir: Path,
    results: list[RunResult],
    *,
    wall_s: float | None,
    parallel: int | None,
    resumed: Collection[str] = (),
    file_problems: Collection[str] = (),
) -> dict[str, Any]:
    """Write comparison.json and .md; ``resumed`` names the run folders an earlier sweep finished
    (they are compared, but their time is not part of ``wall_s``); ``file_problems``, files found
    damaged (runs done again, folders left out) or that could not be written."""
    comp = build_comparison(results, wall_s=wall_s, parallel=parallel, resumed=resumed, file_problems=file_problems)
    atomic_write_json(sweep_dir / "comparison.json", comp)
    atomic_write_text(sweep_dir / "comparison.md", comparison_markdown(comp))
    return comp
