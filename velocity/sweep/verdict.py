"""The sweep's verdict: which strategy survives the sweep's attacks, per heterogeneity level,
with the statistics a reviewer asks for, and the notices that say when a verdict is weak.

Per strategy and α, over the attacks of the sweep (each attacked run against its seed's clean
twin): the **worst-case** accuracy (the attack that hurt it most, per seed) and the **mean**
accuracy under attack. With several seeds the values are mean ± the half-width of a 95 %
Student-t interval over seeds, and every strategy is compared with the best by a paired t-test
over seeds (the same seed means the same partition, model initialisation and malicious
clients); strategies the test cannot tell from the best (p ≥ 0.05) are marked as tied with it.
With one seed there is no interval and no test, and the verdict says so.

Notices (each one line): a clean run still gaining accuracy in its last rounds (not converged),
a defence that never acted during an attacked run, and an attack that harmed no strategy by more
than :data:`WEAK_ATTACK_DROP` (too weak at this size to rank defences).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from velocity.specs import MEAN_RULES

if TYPE_CHECKING:
    from velocity.sweep.report import RunResult

#: A clean run that gained more accuracy than this over its last fifth of rounds has not converged.
NOT_CONVERGED_GAIN = 0.02
#: An attack that lowered no strategy's accuracy by more than this is reported as too weak.
WEAK_ATTACK_DROP = 0.02
#: Significance level of the paired test against the best strategy.
SIGNIFICANCE = 0.05


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and the half-width of a 95 % Student-t confidence interval (None for one value)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, None
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return mean, None
    from scipy.stats import t

    return mean, float(t.ppf(0.975, len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals)))


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test of a − b over seeds; None with fewer than 2 pairs. Identical
    pairs give p = 1 (no evidence of a difference), a constant non-zero difference p = 0."""
    diffs = [x - y for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]
    if len(diffs) < 2:
        return None
    if all(d == diffs[0] for d in diffs):
        return 1.0 if diffs[0] == 0 else 0.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(diffs, [0.0] * len(diffs)).pvalue)


def _accuracy(r: RunResult) -> float:
    return r.metric("final_accuracy") if r.finished else math.nan


def verdicts(results: Sequence[RunResult]) -> dict[str, Any]:
    """The verdict table (per α, strategies best first by worst-case accuracy) and its notices."""
    # A configuration is everything but the attack and the seed (its clean twin's key):
    # configuration → seed → attack → accuracy, and configuration → seed → clean accuracy.
    attacked: dict[str, dict[int, dict[str, float]]] = {}
    clean_acc: dict[str, dict[int, float]] = {}
    specs = {}
    for r in results:
        key = r.spec.clean_twin().config_key
        specs[key] = r.spec
        if r.spec.attacks:
            attacked.setdefault(key, {}).setdefault(r.spec.seed, {})[r.spec.attack_label] = _accuracy(r)
        else:
            clean_acc.setdefault(key, {})[r.spec.seed] = _accuracy(r)

    by_alpha: dict[str, list[dict[str, Any]]] = {}
    for key, per_seed in attacked.items():
        alpha, strategy = specs[key].alpha_label, specs[key].strategy_label
        seeds = sorted(per_seed)
        attacks = sorted({a for s in seeds for a in per_seed[s]})
        complete = [s for s in seeds if all(a in per_seed[s] for a in attacks)]
        worst = [min(per_seed[s].values()) for s in complete]
        mean_under = [statistics.fmean(per_seed[s].values()) for s in complete]
        by_attack = {a: statistics.fmean([per_seed[s][a] for s in complete]) for a in attacks} if complete else {}
        worst_attack = min(by_attack, key=lambda a: by_attack[a]) if by_attack else None
        clean_vals = [clean_acc.get(key, {}).get(s, math.nan) for s in complete]
        w, w_ci = mean_ci(worst)
        m, m_ci = mean_ci(mean_under)
        c, c_ci = mean_ci(clean_vals)
        by_alpha.setdefault(alpha, []).append(
            {
                "alpha": alpha,
                "strategy": strategy,
                "seeds": complete,
                "attacks": attacks,
                "clean_accuracy": c,
                "clean_accuracy_ci95": c_ci,
                "worst_case_accuracy": w,
                "worst_case_accuracy_ci95": w_ci,
                "worst_attack": worst_attack,
                "mean_attacked_accuracy": m,
                "mean_attacked_accuracy_ci95": m_ci,
                "_worst_by_seed": dict(zip(complete, worst, strict=True)),
            }
        )

    table: list[dict[str, Any]] = []
    for alpha in sorted(by_alpha, key=_alpha_order):
        rows = sorted(by_alpha[alpha], key=lambda e: -e["worst_case_accuracy"] if not math.isnan(e["worst_case_accuracy"]) else math.inf)
        best = rows[0]
        for i, e in enumerate(rows, 1):
            e["rank"] = i
            shared = sorted(set(e["_worst_by_seed"]) & set(best["_worst_by_seed"]))
            if e is best:
                e["p_vs_best"], e["tied_with_best"] = None, True
            else:
                p = paired_p_value([best["_worst_by_seed"][s] for s in shared], [e["_worst_by_seed"][s] for s in shared])
                e["p_vs_best"] = p
                e["tied_with_best"] = None if p is None else p >= SIGNIFICANCE
        for e in rows:
            del e["_worst_by_seed"]
        table += rows
    return {"table": table, "single_seed": all(len(e["seeds"]) < 2 for e in table), "notices": notices(results)}


def versus_best(row: dict[str, Any]) -> str:
    """A verdict row against its α's best, in words: "best", "tied (p = 0.412)", "worse (p =
    0.003)", "worse (p < 0.001)", or "no test (one seed)"."""
    if row["rank"] == 1:
        return "best"
    if row["tied_with_best"] is None:
        return "no test (one seed)"
    p = row["p_vs_best"]
    return f"{'tied' if row['tied_with_best'] else 'worse'} ({'p < 0.001' if p < 0.001 else f'p = {p:.3f}'})"


def _alpha_order(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def notices(results: Sequence[RunResult]) -> list[str]:
    """One line for each thing that weakens the verdict."""
    out: list[str] = []
    rising: dict[str, list[RunResult]] = {}  # configuration → its clean runs still gaining accuracy
    for r in results:
        gain = r.summary.get("late_accuracy_gain")
        if r.finished and not r.spec.attacks and gain is not None and gain > NOT_CONVERGED_GAIN:
            rising.setdefault(r.spec.config_key, []).append(r)
    for runs in rising.values():
        gains = sorted(r.summary["late_accuracy_gain"] for r in runs)
        if len(runs) == 1:
            what = f"the clean run '{runs[0].spec.label}' gained {gains[0]:+.3f}"
        else:
            seeds = ", ".join(str(r.spec.seed) for r in sorted(runs, key=lambda r: r.spec.seed))
            what = f"the clean runs of {runs[0].spec.strategy_label} at {runs[0].spec.partition_label} (seeds {seeds}) gained {gains[0]:+.3f} to {gains[-1]:+.3f}"
        it, its = ("them", "their") if len(runs) > 1 else ("it", "its")
        out.append(
            f"Not converged: {what} accuracy over {its} last rounds; give {it} more rounds (or a larger lr) before trusting comparisons against {it}."
        )
    quiet: dict[tuple[str, str], list[RunResult]] = {}  # strategy, attack → the runs it never acted in
    attacked: dict[tuple[str, str], int] = {}
    for r in results:
        if not r.finished or not r.spec.attacks or r.spec.strategy in MEAN_RULES:
            continue
        key = (r.spec.strategy_label, r.spec.attack_label)
        attacked[key] = attacked.get(key, 0) + 1
        if r.summary.get("rounds_defence_acted") == 0:
            quiet.setdefault(key, []).append(r)
    for (strategy, attack), runs in quiet.items():
        where = (
            "'" + runs[0].spec.label + "'" if len(runs) == 1 else f"{len(runs)} of its {attacked[(strategy, attack)]} runs under {attack}"
        )
        out.append(
            f"Defence never acted: {strategy}, in {where}, neither clipped, excluded nor reduced the "
            "malicious updates' share of the aggregate in any round: it did not limit this attack."
        )
    out += _weak_attacks(results)
    out += _server_dp_without_guarantee(results)
    return out


def _server_dp_without_guarantee(results: Sequence[RunResult]) -> list[str]:
    """Server DP's noise is calibrated to the mean's sensitivity: say so where a run's rule is
    another (its ε column is empty)."""
    from velocity.privacy import server_dp_holds
    from velocity.specs import parse_strategy

    unguarded = sorted(
        {r.spec.strategy for r in results if r.spec.server_dp is not None and not server_dp_holds(parse_strategy(r.spec.strategy))}
    )
    if not unguarded:
        return []
    return [
        f"Server DP without ε: {', '.join(unguarded)} got noise calibrated to the mean of clipped updates, but a robust rule "
        "or a pre-aggregator can move further than the mean when one client changes, so no ε is stated for "
        f"{'them' if len(unguarded) > 1 else 'it'}: compare their accuracy at the same noise, not their privacy."
    ]


def _weak_attacks(results: Sequence[RunResult]) -> list[str]:
    clean = {(r.spec.config_key, r.spec.seed): r for r in results if not r.spec.attacks and r.finished}
    drops: dict[str, list[float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    success: dict[str, dict[str, list[float]]] = {}  # targeted attack → strategy → success rates
    for r in results:
        if not r.spec.attacks or not r.finished:
            continue
        rate = r.metric("final_attack_success")
        if not math.isnan(rate):  # a targeted attack aims to keep accuracy: its measure is its success rate
            success.setdefault(r.spec.attack_label, {}).setdefault(r.spec.strategy_label, []).append(rate)
            continue
        twin = clean.get((r.spec.clean_twin().config_key, r.spec.seed))
        if twin is None:
            continue
        drops.setdefault(r.spec.attack_label, []).append(_accuracy(twin) - _accuracy(r))
        sizes[r.spec.attack_label] = (r.spec.num_clients, r.spec.num_malicious)
    out = []
    for attack, d in drops.items():
        finite = [v for v in d if not math.isnan(v)]
        if finite and max(finite) <= WEAK_ATTACK_DROP:
            n, f = sizes[attack]
            out.append(
                f"Weak attack: {attack} lowered no strategy's accuracy by more than {WEAK_ATTACK_DROP:.2f} "
                f"(largest drop {max(finite):+.3f}, n = {n}, f = {f}); it cannot rank the defences here."
            )
    for attack, by_strategy in success.items():
        rates = ", ".join(f"{s} {statistics.fmean(v):.2f}" for s, v in sorted(by_strategy.items(), key=lambda kv: statistics.fmean(kv[1])))
        out.append(
            f"Targeted attack: {attack} aims to keep accuracy while succeeding on its targets; its success rate "
            f"(mean over seeds, lowest first): {rates}. The accuracy ranking above does not show it."
        )
    return out
