"""The sweep's verdict from run files alone: worst-case and mean accuracy under attack, the
paired test over seeds, and the notices (velocity/sweep/verdict.py)."""

from __future__ import annotations

import math

import pytest

from velocity.sweep.report import RunResult, build_comparison
from velocity.sweep.spec import RunSpec
from velocity.sweep.verdict import paired_p_value, verdicts, versus_best


def run(strategy: str, attack: str | None, seed: int, accuracy: float, **summary: object) -> RunResult:
    spec = RunSpec(strategy=strategy, attacks=[attack] if attack else [], seed=seed, alpha=0.5)
    return RunResult(spec, {"status": "finished", "final_accuracy": accuracy, "final_loss": 1.0 - accuracy, **summary}, "dir")


# Per seed: (clean, sign flip, ALIE) accuracy.
GOOD = {0: (0.90, 0.85, 0.80), 1: (0.92, 0.86, 0.83), 2: (0.91, 0.84, 0.81)}
CLOSE = {0: (0.90, 0.84, 0.81), 1: (0.91, 0.85, 0.82), 2: (0.90, 0.86, 0.80)}
BAD = {0: (0.95, 0.10, 0.60), 1: (0.94, 0.12, 0.61), 2: (0.96, 0.11, 0.62)}


def results() -> list[RunResult]:
    out = []
    for strategy, table in (("FedMedian", GOOD), ("TrimmedMean", CLOSE), ("FedAvg", BAD)):
        for seed, (clean, flip, alie) in table.items():
            out += [run(strategy, None, seed, clean), run(strategy, "sign_flip", seed, flip), run(strategy, "alie", seed, alie)]
    return out


def test_the_verdict_ranks_by_worst_case_with_paired_statistics() -> None:
    table = verdicts(results())["table"]
    assert [e["strategy"] for e in table] == ["FedMedian", "TrimmedMean", "FedAvg"]
    best, close, bad = table
    # Worst case per seed, then the mean over seeds: min(0.85, 0.80), min(0.86, 0.83), min(0.84, 0.81).
    assert best["worst_case_accuracy"] == pytest.approx((0.80 + 0.83 + 0.81) / 3)
    assert best["worst_attack"] == "alie" and bad["worst_attack"] == "sign_flip"
    assert best["mean_attacked_accuracy"] == pytest.approx((0.825 + 0.845 + 0.825) / 3)
    assert best["clean_accuracy"] == pytest.approx(0.91)
    # The interval: t(0.975, 2) · s / √3 with s the standard deviation of the three worst cases.
    s = math.sqrt(sum((v - 0.81333333) ** 2 for v in (0.80, 0.83, 0.81)) / 2)
    assert best["worst_case_accuracy_ci95"] == pytest.approx(4.302652729911275 * s / math.sqrt(3), rel=1e-6)
    # TrimmedMean's worst cases (0.81, 0.82, 0.80) differ from the best's (0.80, 0.83, 0.81) by
    # +0.01, −0.01, −0.01: no evidence of a difference. FedAvg's (0.10, 0.12, 0.11) are far below.
    assert close["tied_with_best"] is True and close["p_vs_best"] > 0.05
    assert bad["tied_with_best"] is False and bad["p_vs_best"] < 0.001
    assert best["tied_with_best"] is True and best["p_vs_best"] is None
    assert [versus_best(e) for e in table] == ["best", f"tied (p = {close['p_vs_best']:.3f})", "worse (p < 0.001)"]


def test_one_seed_gives_no_interval_and_no_test() -> None:
    one = [r for r in results() if r.spec.seed == 0]
    v = verdicts(one)
    assert v["single_seed"] and all(e["worst_case_accuracy_ci95"] is None for e in v["table"])
    assert [e["tied_with_best"] for e in v["table"]] == [True, None, None]


def test_paired_p_value_edges() -> None:
    assert paired_p_value([0.5], [0.4]) is None  # one pair: no test
    assert paired_p_value([0.5, 0.6], [0.5, 0.6]) == 1.0  # identical
    assert paired_p_value([0.5, 0.6], [0.4, 0.5]) == 0.0  # a constant difference


def test_notices_name_what_weakens_the_verdict() -> None:
    rs = [
        run("FedAvg", None, 0, 0.60, late_accuracy_gain=0.08),  # still rising
        run("FedAvg", "alie", 0, 0.595),  # 0.005 below its clean twin: weak
        run("FedMedian", None, 0, 0.90, late_accuracy_gain=0.0),
        run("FedMedian", "alie", 0, 0.89, rounds_defence_acted=0),  # never acted
        run("Krum", "alie", 0, 0.80, rounds_defence_acted=7),
    ]
    notices = verdicts(rs)["notices"]
    assert any(n.startswith("Not converged: the clean run 'FedAvg | none") for n in notices)
    assert any(n.startswith("Defence never acted: FedMedian, in 'FedMedian | alie") for n in notices)
    assert not any("Krum" in n for n in notices)  # it acted, and it has no clean twin to compare with
    assert any(n.startswith("Weak attack: alie lowered no strategy's accuracy by more than 0.02") for n in notices)
    # A mean rule is not a defence: it gets no "never acted" notice.
    assert not any(n.startswith("Defence never acted: FedAvg") for n in notices)


def test_clean_runs_of_one_configuration_that_did_not_converge_are_one_notice() -> None:
    rs = [run("FedMedian", None, seed, 0.5, late_accuracy_gain=gain) for seed, gain in ((0, 0.08), (1, 0.01), (2, 0.094))]
    notices = [n for n in verdicts(rs)["notices"] if n.startswith("Not converged")]
    assert notices == [
        "Not converged: the clean runs of FedMedian at α=0.5 (seeds 0, 2) gained +0.080 to +0.094 accuracy over their last "
        "rounds; give them more rounds (or a larger lr) before trusting comparisons against them."
    ]


def test_a_defence_that_never_acted_in_several_runs_is_one_notice() -> None:
    rs = [run("FedMedian", "alie", seed, 0.8, rounds_defence_acted=0) for seed in range(3)]
    rs += [run("FedMedian", "alie", 3, 0.8, rounds_defence_acted=2)]
    notices = [n for n in verdicts(rs)["notices"] if n.startswith("Defence never acted")]
    assert notices == [
        "Defence never acted: FedMedian, in 3 of its 4 runs under alie, neither clipped, excluded nor reduced the "
        "malicious updates' share of the aggregate in any round: it did not limit this attack."
    ]


def test_the_comparison_leads_with_the_verdict() -> None:
    comp = build_comparison(results(), wall_s=None, parallel=None)
    assert next(iter(comp)) == "verdict" and comp["verdict"]["table"][0]["strategy"] == "FedMedian"
