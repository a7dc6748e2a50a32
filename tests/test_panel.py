"""The notebook panel without a browser: its state, the event path from a running sweep to the
messages the front end receives, the controls that queue runs, and the exports."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import traitlets

from velocity import Sweep
from velocity.data import partition_label_counts
from velocity.panel import SweepPanel
from velocity.panel.charts import CLEAN_LABEL, SOLID, LineKeys, chart_specs
from velocity.panel.presets import PRESETS, find_preset
from velocity.panel.state import (
    Controls,
    RoundRate,
    caption,
    client_rows,
    heatmap_cells,
    label_rows,
    panel_verdict,
    run_table,
    specs_from_controls,
    status_counts,
)
from velocity.rounds import panel_row_fixture
from velocity.sweep.experiment import grid

ROOT = Path(__file__).resolve().parents[1]
FAST = {"dataset": "blobs", "model_id": "logreg", "num_clients": 4, "lr": 0.5, "seed": 0}


def _wait(condition: Any, timeout: float = 120.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"Expected {what} within {timeout} s")
        time.sleep(0.05)


class Recorder:
    """Stands in for the comm: keeps every custom message the panel sends."""

    def __init__(self, panel: SweepPanel) -> None:
        self.messages: list[dict[str, Any]] = []
        panel.send = lambda content, buffers=None: self.messages.append(content)  # type: ignore[method-assign]

    def rows(self) -> list[dict[str, Any]]:
        """Rows as a view would hold them: each message must start where the last one ended."""
        held: list[dict[str, Any]] = []
        for m in self.messages:
            assert m["kind"] == "rows"
            assert m["start"] <= len(held), f"Expected no gap, got start {m['start']} with {len(held)} rows held"
            held.extend(m["rows"][len(held) - m["start"] :])
        return held


# ---------------------------------------------------------------------------- pure state
def test_specs_from_controls_builds_the_grid_on_the_first_run() -> None:
    base = grid(strategies=["FedAvg"], attacks=["none"], rounds=3, **FAST)[0]
    controls = Controls(
        strategies=("FedAvg", "FedMedian"), attacks=("none", "sign_flip"), alpha=0.5, malicious_fraction=0.25, rounds=5, clients=4
    )
    new, skipped = specs_from_controls(base, controls, [base])
    assert skipped == []
    assert [(s.strategy, s.attack_label) for s in new] == [
        ("FedAvg", "none"),
        ("FedAvg", "sign_flip"),
        ("FedMedian", "none"),
        ("FedMedian", "sign_flip"),
    ]
    for s in new:
        assert (s.partition, s.alpha, s.rounds, s.num_clients, s.dataset, s.model_id, s.lr, s.seed) == (
            "dirichlet",
            0.5,
            5,
            4,
            "blobs",
            "logreg",
            0.5,
            0,
        )
        assert s.malicious_fraction == (0.25 if s.attacks else 0.0)
    iid, _ = specs_from_controls(base, Controls(("Krum",), ("none",), None, 0.25, 3, 8), [base])
    assert (iid[0].partition, iid[0].alpha, iid[0].num_clients) == ("iid", None, 8)


def test_specs_from_controls_leaves_out_duplicates_and_invalid_runs_and_says_why() -> None:
    base = grid(strategies=["FedAvg"], attacks=["none"], rounds=3, **FAST)[0]
    controls = Controls(("FedAvg", "Krum"), ("none", "sign_flip"), None, 0.5, 3, 4)
    new, skipped = specs_from_controls(base, controls, [base])
    assert [(s.strategy, s.attack_label) for s in new] == [("FedAvg", "sign_flip"), ("Krum", "none")]
    assert skipped[0] == "FedAvg × none: already in this sweep"
    assert skipped[1].startswith("Krum × sign_flip: ") and "Krum cannot aggregate 4 clients" in skipped[1]
    assert not any(
        w in skipped[1] for w in ("(run)", "min_clients = None", ", run 1", "× sign_flip: Krum × sign_flip")
    )  # no internal words
    # a targeted attack the data set cannot carry (FAST's data set has fewer than 99 classes)
    _, refused = specs_from_controls(base, Controls(("FedAvg",), ("backdoor(target=99)",), None, 0.5, 3, 4), [base])
    assert (
        len(refused) == 1 and refused[0].startswith("FedAvg | backdoor(target=99) | ") and "Expected backdoor.target in 0.." in refused[0]
    )
    assert specs_from_controls(base, Controls((), ("none",), None, 0.2, 3, 4), [base]) == ([], ["Expected at least one strategy, got none"])
    assert specs_from_controls(base, Controls(("FedAvg",), (), None, 0.2, 3, 4), [base])[1] == [
        "Expected at least one attack (or 'none'), got none"
    ]


def test_seeds_queue_each_combination_once_per_seed_and_name_a_refusal_once() -> None:
    base = grid(strategies=["FedAvg"], attacks=["none"], rounds=3, **FAST)[0]
    controls = Controls(("FedAvg", "Krum"), ("none", "sign_flip"), None, 0.5, 3, 4, seeds=3)
    new, skipped = specs_from_controls(base, controls, [base])
    assert [(s.strategy, s.attack_label, s.seed) for s in new] == [
        ("FedAvg", "none", 1),
        ("FedAvg", "none", 2),
        ("FedAvg", "sign_flip", 0),
        ("FedAvg", "sign_flip", 1),
        ("FedAvg", "sign_flip", 2),
        ("Krum", "none", 0),
        ("Krum", "none", 1),
        ("Krum", "none", 2),
    ]
    assert len({s.config_key for s in new}) == 3  # seeds of one combination share their configuration
    assert skipped[0] == "FedAvg × none seed 0: already in this sweep"
    assert len(skipped) == 2 and skipped[1].startswith("Krum × sign_flip: ")  # invalid whatever the seed: said once
    assert specs_from_controls(base, Controls(("FedAvg",), ("none",), None, 0.2, 3, 4, seeds=0), [base])[1] == [
        "Expected at least one seed, got 0"
    ]


def test_the_accuracy_chart_draws_chance_and_a_band_over_seeds() -> None:
    spec = chart_specs(chance=0.1)["progress"]
    text = json.dumps(spec)
    assert '"chance": 0.1' in text and "chance (0.1)" in text
    band = spec["hconcat"][0]["layer"][0]
    assert band["mark"]["type"] == "area" and band["encoding"]["detail"]["field"] == "config"
    assert "chance" not in json.dumps(chart_specs()["progress"])  # unknown chance: no line


def test_a_run_that_differs_only_in_rounds_gets_a_distinct_name() -> None:
    base = grid(strategies=["FedAvg"], attacks=["none"], rounds=3, **FAST)[0]
    new, _ = specs_from_controls(base, Controls(("FedAvg",), ("none",), None, 0.2, 7, 4), [base])
    assert new[0].label == f"{base.label} | rounds=7"
    assert new[0].spec_hash != base.spec_hash


def test_run_table_reports_progress_twins_and_errors() -> None:
    specs = grid(strategies=["FedAvg"], attacks=["none", "sign_flip"], rounds=4, **FAST)
    summaries = {
        0: {"final_accuracy": 0.9, "final_loss": 0.3},
        1: {"status": "failed", "error": "ValueError: boom", "final_accuracy": None, "final_loss": None},
    }
    table = run_table(specs, ["finished", "failed"], summaries, {}, {0: 4, 1: 2})
    assert table[0] | {"run": None} == {
        "index": 0,
        "run": None,
        "strategy": "FedAvg",
        "attack": "none",
        "alpha": "iid",
        "setting": "iid",
        "attack_shown": "none",
        "seed": 0,
        "status": "finished",
        "rounds_done": 4,
        "rounds_total": 4,
        "accuracy": 0.9,
        "loss": 0.3,
        "accuracy_change": None,
        "loss_change": None,
        "attack_success": None,
        "malicious_share": None,
        "malicious_weight": None,
        "defence_note": None,
        "dp_epsilon": None,
        "server_dp_epsilon": None,
        "error": None,
    }
    assert (table[1]["status"], table[1]["error"], table[1]["accuracy_change"]) == ("failed", "ValueError: boom", None)
    # live: the latest round stands in for the final value; no change against the clean twin
    # until both finished (a run at round 3 is no match for a finished twin)
    latest = {1: {"accuracy": 0.4, "global_loss": math.nan}}
    table = run_table(specs, ["finished", "running"], {0: summaries[0]}, latest, {0: 4, 1: 3})
    assert table[1]["accuracy"] == 0.4 and table[1]["accuracy_change"] is None
    assert table[1]["loss"] is None and table[1]["loss_change"] is None  # NaN travels as null
    json.dumps(table, allow_nan=False)
    done = {0: summaries[0], 1: {"final_accuracy": 0.4, "final_loss": math.nan}}
    table = run_table(specs, ["finished", "finished"], done, {}, {0: 4, 1: 4})
    assert table[1]["accuracy_change"] == pytest.approx(-0.5) and table[1]["loss_change"] is None


def test_run_table_says_what_the_defence_let_through_and_when_it_never_acted() -> None:
    specs = grid(strategies=["FedAvg", "FedMedian"], attacks=["alie"], rounds=4, **FAST)
    quiet = {
        "final_accuracy": 0.5,
        "final_loss": 1.0,
        "mean_malicious_share": 0.25,
        "mean_malicious_weight": 0.25,
        "rounds_defence_acted": 0,
    }
    table = run_table(specs, ["finished", "finished"], {0: quiet, 1: quiet}, {}, {})
    assert [(e["strategy"], e["malicious_share"], e["malicious_weight"], e["defence_note"]) for e in table] == [
        ("FedAvg", 0.25, 0.25, None),  # the mean is not expected to act
        ("FedMedian", 0.25, 0.25, "never acted"),
    ]
    # while running, the latest round's share; no verdict on acting yet
    table = run_table(specs, ["running", "running"], {}, {1: {"malicious_share": 0.0, "malicious_weight": 0.25}}, {})
    assert (table[1]["malicious_share"], table[1]["malicious_weight"], table[1]["defence_note"]) == (0.0, 0.25, None)


def test_run_table_shows_a_targeted_attacks_success_rate() -> None:
    specs = grid(strategies=["FedAvg"], attacks=["none", "backdoor"], rounds=4, **FAST)
    table = run_table(specs, ["finished", "running"], {0: {"final_accuracy": 0.9}}, {1: {"attack_success": 0.4}}, {})
    assert [e["attack_success"] for e in table] == [None, 0.4]  # the latest round's while running
    table = run_table(specs, ["finished", "finished"], {0: {}, 1: {"final_attack_success": 0.97}}, {1: {"attack_success": 0.4}}, {})
    assert table[1]["attack_success"] == 0.97  # the summary's once finished


def test_heatmap_cells_average_seeds_with_an_interval_and_keep_settings_apart() -> None:
    specs = [
        *grid(strategies=["FedAvg"], attacks=["none"], alphas=[0.5, None], seeds=[0, 1, 2], rounds=4, **FAST),
        *grid(strategies=["FedAvg"], attacks=["none"], seeds=[0], rounds=4, **{**FAST, "num_clients": 8}),
    ]
    accuracy = {0: 0.8, 1: 0.9, 2: 0.7, 3: 0.6, 4: 0.6, 5: 0.6}
    statuses = ["finished"] * 6 + ["queued"]  # the queued run has no accuracy: no cell
    entries = run_table(specs, statuses, {i: {"final_accuracy": a} for i, a in accuracy.items()}, {}, {})
    cells = {c["setting"]: c for c in heatmap_cells(entries)}
    assert set(cells) == {"α=0.5 · 4 clients", "iid · 4 clients"}
    by_alpha = cells["α=0.5 · 4 clients"]
    # three seeds: mean 0.8, sample sd 0.1, t(0.975, 2) = 4.303 → half-width 4.303 · 0.1 / √3
    assert by_alpha["accuracy"] == pytest.approx(0.8) and by_alpha["ci95"] == pytest.approx(4.3027 * 0.1 / math.sqrt(3), rel=1e-4)
    assert by_alpha["runs"] == 3 and cells["iid · 4 clients"]["ci95"] == pytest.approx(0.0)


def test_runs_that_differ_in_clients_or_malicious_share_are_named_apart() -> None:
    specs = [
        *grid(strategies=["FedAvg"], attacks=["none", "sign_flip"], rounds=4, **FAST),
        *grid(strategies=["FedAvg"], attacks=["sign_flip"], rounds=4, malicious_fraction=0.5, **{**FAST, "num_clients": 6}),
    ]
    table = run_table(specs, ["finished"] * 3, {}, {}, {})
    names = [(e["attack_shown"], e["setting"]) for e in table]
    assert names == [("none", "iid · 4 clients"), ("sign_flip · f=1", "iid · 4 clients"), ("sign_flip · f=3", "iid · 6 clients")]


def test_an_exported_figure_says_what_it_shows() -> None:
    specs = grid(strategies=["FedAvg", "FedMedian"], attacks=["none", "alie"], alphas=[0.5], seeds=[0, 1], rounds=4, **FAST)
    assert (
        caption(specs)
        == "blobs · logreg · α=0.5 · 4 clients · 4 rounds · 2 local epochs · lr 0.5 · momentum 0.9 · 20% malicious in attacked runs · 2 seeds"
    )


def test_strategies_and_attacks_keep_their_colour_and_dash_as_runs_are_added() -> None:
    first = LineKeys().extended(grid(strategies=["FedAvg", "TrimmedMean"], attacks=["sign_flip"], **FAST))
    later = first.extended(grid(strategies=["FedMedian", "TrimmedMean"], attacks=["none", "alie", "sign_flip"], **FAST))
    assert later.strategies == ("FedAvg", "TrimmedMean", "FedMedian") and later.attacks == ("sign_flip", "none", "alie")
    before, after = first.colour_scale(), later.colour_scale()
    assert after["range"][:2] == before["range"] and len(set(after["range"])) == 3
    # the clean baseline, added second, is the solid line; sign_flip keeps its dash
    dashes = dict(zip(later.dash_scale()["domain"], later.dash_scale()["range"], strict=True))
    assert dashes[CLEAN_LABEL] == list(SOLID)
    assert dashes["sign_flip"] == first.dash_scale()["range"][0] != dashes["alie"]
    progress = chart_specs(later)["progress"]
    assert progress["hconcat"][0]["layer"][1]["encoding"]["color"]["scale"] == after
    assert progress["params"] == [{"name": "shown_runs", "value": None}]


def test_a_targeted_attack_adds_its_success_rate_beside_the_defence_chart() -> None:
    """The defence tab plots a targeted attack's success rate per round once a run has one; the
    other runs draw no line there (their rate is not measured)."""
    import vl_convert as vlc

    from velocity.panel.charts import with_data

    plain = LineKeys().extended(grid(strategies=["FedAvg"], attacks=["none", "alie"], **FAST))
    assert not plain.targeted and "hconcat" not in chart_specs(plain)["defence"]
    keys = plain.extended(grid(strategies=["FedAvg"], attacks=["backdoor(target=0)"], **FAST))
    assert keys.targeted and keys.extended([]).targeted
    rows = []
    for index, (attack, success) in enumerate([("backdoor(target=0)", [0.2, 0.9, 1.0]), ("alie", [None] * 3), ("none", [None] * 3)]):
        weight = 0.0 if attack == "none" else 0.2
        for rnd, rate in enumerate(success, 1):
            rows.append(
                {
                    "index": index, "run": f"FedAvg | {attack}", "strategy": "FedAvg", "attack": attack, "round": rnd,
                    "accuracy": 0.5, "global_loss": 1.0, "attack_success": rate, "malicious_share": weight,
                    "malicious_weight": weight, "config": index,
                }
            )  # fmt: skip
    svg = vlc.vegalite_to_svg(with_data(chart_specs(keys)["defence"], rounds=rows, labels=[], cells=[]))
    lines = re.findall(r'<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="line mark" d="([^"]*)"', svg)
    success = [(label, path) for label, path in lines if "attack success rate" in label]
    assert "Targeted attack success" in svg and len(success) == 1 and "backdoor" in success[0][0]
    # 180 px high, [0, 1]: 0.2, 0.9, 1.0 at y = 144, 18, 0 over rounds 1..3
    assert [round(float(y)) for y in re.findall(r"[ML][\d.]+,([\d.]+)", success[0][1])] == [144, 18, 0]
    assert sum(1 for label, path in lines if "malicious share" in label and path) == 2  # the attacked runs


def test_the_heatmap_puts_the_clean_baseline_first() -> None:
    specs = grid(strategies=["FedAvg"], attacks=["alie", "none", "sign_flip", "ipm"], rounds=4, **FAST)
    cells = heatmap_cells(run_table(specs, ["finished"] * len(specs), {i: {"final_accuracy": 0.5} for i in range(len(specs))}, {}, {}))
    assert sorted((c["attack_order"], c["attack"]) for c in cells) == [(0, "none"), (1, "alie"), (2, "ipm"), (3, "sign_flip")]


def test_panel_verdict_is_the_comparisons_verdict_over_finished_runs() -> None:
    specs = grid(strategies=["FedAvg", "FedMedian"], attacks=["none", "alie"], seeds=[0, 1], rounds=4, **FAST)
    accuracy = {("FedAvg", "none"): 0.9, ("FedAvg", "alie"): 0.3, ("FedMedian", "none"): 0.85, ("FedMedian", "alie"): 0.7}
    summaries = {i: {"final_accuracy": accuracy[(s.strategy, s.attack_label)] + 0.01 * s.seed} for i, s in enumerate(specs)}
    statuses = ["finished"] * len(specs)
    verdict = panel_verdict(specs, statuses, summaries)
    assert [(r["strategy"], r["rank"], r["tied_with_best"]) for r in verdict["table"]] == [("FedMedian", 1, True), ("FedAvg", 2, False)]
    json.dumps(verdict, allow_nan=False)
    # a run still going is not in it
    statuses[next(i for i, s in enumerate(specs) if s.strategy == "FedAvg" and s.attacks)] = "running"
    assert [r["seeds"] for r in panel_verdict(specs, statuses, summaries)["table"]] == [[0, 1], [1]]


def test_client_rows_read_the_per_client_columns_and_thin_long_runs() -> None:
    rounds = [
        {"round": r, "client_ids": "4;1;7", "malicious_clients": "7", "client_shares": "0.5;0.5;0", "update_norms": "1.5;2;40"}
        for r in range(1, 251)
    ]
    rows, note = client_rows(rounds[:2])
    assert rows[:3] == [
        {"round": 1, "client": 4, "role": "honest", "share": 0.5, "norm": 1.5},
        {"round": 1, "client": 1, "role": "honest", "share": 0.5, "norm": 2.0},
        {"round": 1, "client": 7, "role": "malicious", "share": 0.0, "norm": 40.0},
    ]
    assert len(rows) == 6 and note == ""
    rows, note = client_rows(rounds)  # 250 rounds: every 3rd, and the last
    shown = sorted({r["round"] for r in rows})
    assert shown[:3] == [1, 4, 7] and shown[-1] == 250 and len(shown) == 84  # rounds 1, 4, …, 250
    assert note == "1 round in 3 shown (84 of 250)"
    # a Python rule says nothing of the shares; a decentralised run has no per-client columns
    rows, note = client_rows([{**rounds[0], "client_shares": ""}])
    assert rows[0]["share"] is None and "does not say what share" in note
    assert client_rows([{"round": 1, "client_ids": "", "malicious_clients": "", "client_shares": "", "update_norms": ""}]) == ([], "")


def test_round_rate_and_counts() -> None:
    rate = RoundRate(window=5)
    assert rate.rate(now=0) is None
    rate.add(10, now=100)
    rate.add(10, now=102)
    assert rate.rate(now=104) == pytest.approx(20 / 4)
    assert rate.rate(now=106.5) == pytest.approx(10 / 5)  # the first ten left the window
    counts = status_counts(["queued", "running", "finished", "finished"], rounds=12, rate=2.0)
    assert counts == {"queued": 1, "running": 1, "finished": 2, "failed": 0, "cancelled": 0, "rounds": 12, "rounds_per_s": 2.0}


def test_label_rows_match_the_partition() -> None:
    counts = partition_label_counts("blobs", num_clients=4, partition="dirichlet", alpha=0.1, seed=0)
    rows = label_rows(counts)
    assert sum(r["count"] for r in rows) == counts.sum()
    assert all(r["count"] > 0 for r in rows)
    rebuilt = np.zeros_like(counts)
    for r in rows:
        rebuilt[r["client"], r["class"]] = r["count"]
    assert np.array_equal(rebuilt, counts)


def test_the_panel_keeps_a_quantity_or_natural_partition_and_draws_it() -> None:
    """The α slider is the label skew of a quantity skew's clients, and leaves a natural
    partition alone: the runs Run queues and the label picture are the base run's partition."""
    from velocity.panel.state import alpha_of, describe_partition, partition_keys
    from velocity.sweep import RunSpec

    quantity = RunSpec(dataset="blobs", partition="quantity", size_skew=0.8, alpha=0.5, num_clients=6)
    assert alpha_of(quantity) == 0.5
    new, skipped = specs_from_controls(quantity, Controls(("FedAvg",), ("none",), 0.2, 0.0, 3, 6), [])
    assert skipped == [] and [(s.partition, s.alpha, s.size_skew) for s in new] == [("quantity", 0.2, 0.8)]
    counts = partition_label_counts("blobs", test_fraction=0.2, **partition_keys(quantity, 0.2, 6))
    assert counts.sum(axis=1).max() > 2 * counts.sum(axis=1).min()  # the sizes follow the law, not the slider
    assert "quantity skew (power-law 0.8), Dirichlet α = 0.2" in describe_partition(quantity, 0.2, 6, counts)
    natural = RunSpec(dataset="synthetic-mnist(samples=600)", model_id="mlp-16", partition="natural", partition_by="writer", num_clients=6)
    new, skipped = specs_from_controls(natural, Controls(("FedAvg",), ("none",), 0.3, 0.0, 3, 6), [])
    assert skipped == [] and [(s.partition, s.partition_by, s.alpha) for s in new] == [("natural", "writer", None)]
    keys = partition_keys(natural, 0.3, 6)
    counts = partition_label_counts(natural.dataset, test_fraction=0.2, **keys)
    assert counts.shape[0] == 6 and "natural by writer" in describe_partition(natural, None, 6, counts)


def test_the_alpha_slider_says_when_the_partition_has_no_alpha_and_keeps_a_skewed_attribute() -> None:
    from velocity.panel.state import alpha_fixed
    from velocity.sweep import RunSpec

    natural = RunSpec(dataset="synthetic-mnist", partition="natural", partition_by="writer")
    assert alpha_fixed(natural) == "new runs keep the sweep's natural by writer partition, which has no Dirichlet α"
    assert "shard" in alpha_fixed(RunSpec(partition="shard", shards_per_client=2))
    assert alpha_fixed(RunSpec(alpha=0.5)) == alpha_fixed(RunSpec(partition="quantity")) == alpha_fixed(RunSpec()) == ""
    # a Dirichlet skew of another attribute: the slider moves that skew's α, and iid drops the attribute
    site = RunSpec(dataset="synthetic-mnist(samples=600)", model_id="mlp-16", alpha=0.5, partition_by="writer", num_clients=6)
    new, skipped = specs_from_controls(site, Controls(("FedAvg", "FedMedian"), ("none",), 0.2, 0.0, 3, 6), [])
    assert skipped == [] and {(s.partition, s.alpha, s.partition_by) for s in new} == {("dirichlet", 0.2, "writer")}
    new, skipped = specs_from_controls(site, Controls(("FedAvg",), ("none",), None, 0.0, 3, 6), [])
    assert skipped == [] and [(s.partition, s.partition_by) for s in new] == [("iid", None)]


def test_a_panel_on_a_natural_partition_turns_its_slider_off(tmp_path: Path) -> None:
    from velocity.sweep import RunSpec

    natural = RunSpec(dataset="synthetic-mnist(samples=600)", model_id="mlp-16", partition="natural", partition_by="writer", num_clients=6)
    panel = SweepPanel(Sweep([natural], out=tmp_path / "natural"), interval=3600)
    try:
        assert "natural by writer" in panel.alpha_note and panel.alpha is None
    finally:
        panel.close()
    plain = SweepPanel(Sweep([RunSpec(dataset="digits", alpha=0.5)], out=tmp_path / "plain"), interval=3600)
    try:
        assert plain.alpha_note == "" and plain.alpha == 0.5
    finally:
        plain.close()


def test_the_front_end_test_fixture_is_the_current_chart_specs() -> None:
    fixture = json.loads((ROOT / "widgets" / "test" / "fixtures" / "specs.json").read_text())
    assert fixture == json.loads(json.dumps(chart_specs())), "run `make widgets/test/fixtures/specs.json`"


def test_the_front_end_test_fixture_is_the_current_round_row() -> None:
    fixture = json.loads((ROOT / "widgets" / "test" / "fixtures" / "round_row.json").read_text())
    assert fixture == panel_row_fixture(), "run `make widgets/test/fixtures/round_row.json`"


def test_the_bundle_is_shipped_and_loads_nothing_from_the_network() -> None:
    bundle = (ROOT / "velocity" / "static" / "panel.js").read_text(encoding="utf-8")
    assert "export" in bundle and "renderSnapshot" in bundle
    for cdn in ("cdn.jsdelivr.net", "esm.sh", "unpkg.com"):
        assert cdn not in bundle


# ---------------------------------------------------------------------------- a live panel
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A panel attached before its sweep starts; the sweep runs 2 × 2 runs of 3 rounds."""
    sweep = Sweep.from_grid(
        strategies=["FedAvg", "FedMedian"],
        attacks=["none", "sign_flip(scale=4.0)"],
        rounds=3,
        out=tmp_path_factory.mktemp("panel"),
        parallel=2,
        **FAST,
    )
    panel = sweep.panel(interval=0.05)
    recorder = Recorder(panel)
    assert sweep.panel() is panel  # one panel per sweep
    sweep.start().wait()
    panel.sync()
    yield sweep, panel, recorder
    panel.close()


def test_rows_stream_to_the_front_end_in_order(live: Any) -> None:
    sweep, panel, recorder = live
    held = recorder.rows()
    assert panel.row_count == len(held) == 4 * 3
    attacked = [r for r in held if r["attack"] != "none"]
    assert all(0 <= r["malicious_share"] <= 1 and r["malicious_weight"] == pytest.approx(0.25) for r in attacked)
    assert {(r["run"], r["round"]) for r in held} == {(r["run"], r["round"]) for r in sweep.results.to_dicts()}
    assert set(held[0]) == {"run", "index", "strategy", "attack", "alpha", "seed", "round", "global_loss", "accuracy"} | {
        "attack_success",
        "malicious_share",
        "malicious_weight",
        "clipped",
        "selected_malicious",
        "config",
    }
    # each run of the live sweep is its own configuration (one seed each)
    assert len({r["config"] for r in held}) == 4 and all(r["config"] == held[0]["config"] for r in held if r["run"] == held[0]["run"])
    assert [r["status"] for r in panel.runs] == ["finished"] * 4
    assert panel.counts["finished"] == 4 and panel.counts["rounds"] == 12
    assert panel.running is False and panel.counts["rounds_per_s"] is None  # no rate once nothing runs
    # each attacked run is compared with its clean twin
    by_run = {r["run"]: r for r in panel.runs}
    for r in panel.runs:
        if r["attack"] != "none":
            clean = next(c for c in panel.runs if c["strategy"] == r["strategy"] and c["attack"] == "none")
            assert r["accuracy_change"] == pytest.approx(r["accuracy"] - clean["accuracy"])
    assert by_run  # every run named


def test_the_heatmap_and_the_verdict_follow_the_finished_sweep(live: Any) -> None:
    _, panel, _ = live
    assert {(c["strategy"], c["attack"], c["runs"]) for c in panel.cells} == {
        (s, a, 1) for s in ("FedAvg", "FedMedian") for a in ("none", "sign_flip(scale=4.0)")
    }
    final = {(e["strategy"], e["attack"]): e["accuracy"] for e in panel.runs}
    assert all(c["accuracy"] == final[(c["strategy"], c["attack"])] for c in panel.cells)
    assert [r["strategy"] for r in panel.verdict["table"]] == sorted(
        ("FedAvg", "FedMedian"), key=lambda s: -final[(s, "sign_flip(scale=4.0)")]
    )
    assert panel.verdict["single_seed"] is True


def test_rows_that_arrive_between_updates_go_in_one_message(live: Any, tmp_path: Path) -> None:
    finished, _, _ = live
    template = finished.results.to_dicts()[0]
    sweep = Sweep(finished.specs[:1], out=tmp_path / "burst")  # its rounds arrive by hand here
    sweep.store.add_rounds(0, [{**template, "round": r} for r in range(1, 13)])
    panel = SweepPanel(sweep, interval=3600)  # no timed update: only sync() flushes
    try:
        panel.sync()
        recorder = Recorder(panel)
        sweep.store.add_rounds(0, [{**template, "round": r} for r in range(100, 150)])  # a burst of rounds from a fast run
        sweep.store.add_rounds(0, [{**template, "round": 100}])  # a duplicate (event and file) is dropped
        panel.sync()
        assert [(m["start"], len(m["rows"])) for m in recorder.messages] == [(12, 50)]
        assert panel.row_count == 62
    finally:
        panel.close()


def test_a_view_that_renders_late_gets_every_row_replayed(live: Any) -> None:
    _, panel, recorder = live
    before = len(recorder.messages)
    panel._on_front_end_message(panel, {"kind": "replay", "have": 5}, [])
    panel.sync()
    reply = recorder.messages[before:]
    assert reply == [{"kind": "rows", "start": 5, "rows": panel.rows[5:]}]


def test_a_panel_opened_after_the_sweep_shows_every_round(live: Any, tmp_path: Path) -> None:
    sweep, first, _ = live
    late = SweepPanel(sweep, interval=0.05)
    try:
        late.sync()
        assert late.row_count == 12
        assert sorted((r["index"], r["round"]) for r in late.rows) == sorted((r["index"], r["round"]) for r in first.rows)
    finally:
        late.close()


def test_the_per_client_view_shows_the_first_attacked_run_or_the_chosen_one(live: Any) -> None:
    sweep, panel, _ = live
    first_attacked = next(i for i, s in enumerate(sweep.specs) if s.attacks)
    results = sweep.results.filter(sweep.results["index"] == first_attacked).sort("round").to_dicts()
    assert panel.client_run is None and panel.client_note.startswith(sweep.specs[first_attacked].label)
    # 4 clients × 3 rounds, as the run's rows say: its malicious client marked, shares summing to 1
    assert len(panel.client_rows) == 4 * 3
    malicious = {int(c) for c in results[0]["malicious_clients"].split(";")}
    assert {r["client"] for r in panel.client_rows if r["role"] == "malicious"} == malicious and len(malicious) == 1
    for rnd in (1, 2, 3):
        shares = [r["share"] for r in panel.client_rows if r["round"] == rnd]
        assert sum(shares) == pytest.approx(1.0, abs=4e-4)  # four shares written to 4 significant digits
    clean = next(i for i, s in enumerate(sweep.specs) if not s.attacks)
    panel.client_run = clean
    panel.sync()
    assert panel.client_note.startswith(sweep.specs[clean].label)
    assert {r["role"] for r in panel.client_rows} == {"honest"}
    panel.client_run = None
    panel.sync()
    assert panel.client_note.startswith(sweep.specs[first_attacked].label)


def test_the_sweep_and_its_panel_meet_through_public_seams(live: Any) -> None:
    """The panel reads the sweep through rows() and snapshot(); the sweep asks its panel whether
    it is closed (a closed panel is replaced by a fresh one)."""
    sweep, panel, _ = live
    rows = sweep.rows()

    def same(a: Any, b: Any) -> bool:  # NaN (a column that does not apply) equals NaN here
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))

    frame = sweep.results.to_dicts()
    assert len(rows) == len(frame) and all(
        r.keys() == f.keys() and all(same(r[k], f[k]) for k in r) for r, f in zip(rows, frame, strict=True)
    )
    assert rows is not sweep.rows()
    specs, statuses, summaries = sweep.snapshot()
    assert len(specs) == len(statuses) == len(summaries) == 4 and statuses == ["finished"] * 4
    assert set(sweep.worker_pids()) == {0, 1, 2, 3} and all(pid > 0 for pid in sweep.worker_pids().values())
    extra = SweepPanel(sweep, interval=0.05)
    assert not extra.closed
    extra.close()
    assert extra.closed and sweep.panel() is panel


def test_every_choice_says_what_it_is(live: Any) -> None:
    _, panel, _ = live
    assert set(panel.option_help) == {*panel.strategy_options, *panel.attack_options}
    assert (
        panel.option_help["sign_flip(scale=4.0)"]
        == "sign_flip: Each malicious client sends -scale times its own update. Here with scale=4.0."
    )
    assert panel.option_help["none"].startswith("No attack")


def test_controls_are_validated_with_clear_errors(live: Any) -> None:
    _, panel, _ = live
    with pytest.raises(traitlets.TraitError, match=r"Expected alpha > 0 or None \(iid\), got -1"):
        panel.alpha = -1.0
    with pytest.raises(traitlets.TraitError, match=r"Expected clients >= 1, got 0"):
        panel.clients = 0
    with pytest.raises(traitlets.TraitError, match=r"Expected seeds >= 1, got 0"):
        panel.seeds = 0
    with pytest.raises(traitlets.TraitError, match=r"Expected malicious_fraction in \[0, 1\), got 1.5"):
        panel.malicious_fraction = 1.5
    with pytest.raises(traitlets.TraitError, match=r"Expected device as 'auto' .*, got 'gpu'"):
        panel.device = "gpu"
    panel.alpha = math.inf  # the same as iid
    assert panel.alpha is None


def test_every_preset_is_a_valid_grid_in_canonical_words() -> None:
    from velocity.specs import parse_attack, parse_strategy

    base = grid(strategies=["FedAvg"], attacks=["none"], **{**FAST, "num_clients": 10})[0]
    for preset in PRESETS:
        assert [parse_strategy(s).text for s in preset.strategies] == list(preset.strategies), preset.name
        assert [a if a == "none" else parse_attack(a).text for a in preset.attacks] == list(preset.attacks), preset.name
        controls = Controls(preset.strategies, preset.attacks, preset.alpha, preset.malicious_fraction, 3, preset.clients or 10)
        new, skipped = specs_from_controls(base, controls, [])
        assert skipped == [] and len(new) == len(preset.strategies) * len(preset.attacks), (preset.name, skipped)
    with pytest.raises(ValueError, match=r"Expected one of the presets 'Sign flip: mean vs median', .*, got 'nope'"):
        find_preset("nope")


def test_presets_reset_and_attack_strengths_set_the_controls(live: Any) -> None:
    _, panel, _ = live
    before = {name: getattr(panel, name) for name in ("strategies", "attacks", "alpha", "clients", "malicious_fraction", "seeds")}
    panel._on_front_end_message(panel, {"kind": "preset", "name": "Bucketing on non-iid data, small"}, [])
    panel.sync()
    assert panel.strategies == ["Krum", "Bucketing + Krum", "FedMedian", "Bucketing + FedMedian"]
    assert (panel.attacks, panel.alpha, panel.clients) == (["none", "alie"], 0.1, 25)
    assert "Bucketing + Krum" in panel.strategy_options and panel.option_help["Bucketing + Krum"]
    assert panel.message.startswith("Bucketing on non-iid data, small: Karimireddy et al.") and panel.message.endswith(
        "Press Run to queue it."
    )

    # an attack at a chosen strength becomes a ticked choice; bad strengths are refused in words
    panel._on_front_end_message(panel, {"kind": "strength", "attack": "ipm", "value": 0.5}, [])
    panel.sync()
    assert panel.message == "Added ipm(epsilon=0.5) to the attacks."
    assert panel.attacks[-1] == "ipm(epsilon=0.5)" and "ipm(epsilon=0.5)" in panel.attack_options
    assert panel.option_help["ipm(epsilon=0.5)"].endswith("Here with epsilon=0.5.")
    for value, said in ((-1, "Expected a value > 0 for ipm.epsilon, got -1.0"), (None, "Expected a number for ipm's epsilon, got nothing")):
        panel._on_front_end_message(panel, {"kind": "strength", "attack": "ipm", "value": value}, [])
        panel.sync()
        assert panel.message == said
    with pytest.raises(ValueError, match=r"Expected one of gaussian_noise, sign_flip, .*, got 'sybil'"):
        panel.add_attack_strength("sybil", 1.0)

    panel._on_front_end_message(panel, {"kind": "reset"}, [])
    panel.sync()
    assert {name: getattr(panel, name) for name in before} == before
    assert panel.message == "Controls reset to the sweep's own settings."


def test_moving_alpha_redraws_the_label_distribution(live: Any) -> None:
    _, panel, _ = live
    panel.alpha = 0.1
    panel.sync()
    expected = partition_label_counts("blobs", num_clients=4, partition="dirichlet", alpha=0.1, seed=0)
    assert panel.label_rows == label_rows(expected)
    assert "Dirichlet α = 0.1" in panel.label_note
    panel.alpha = None
    panel.sync()
    assert "iid" in panel.label_note
    assert len(panel.label_rows) == 4 * 10  # every client holds every one of the 10 classes


def test_a_decentralised_panel_draws_the_data_of_the_honest_workers_only(tmp_path: Path) -> None:
    sweep = Sweep.from_grid(
        strategies=["MoNNA"],
        attacks=["sign_flip"],
        topology="decentralised",
        num_clients=16,
        malicious_fraction=5 / 16,
        rounds=2,
        out=tmp_path,
        **{k: v for k, v in FAST.items() if k != "num_clients"},
    )
    panel = sweep.panel(interval=0.05)
    try:
        panel.sync()
        assert {r["client"] for r in panel.label_rows} == set(range(11))  # the 5 Byzantine workers hold no data
        assert "11 honest of 16 workers hold the data" in panel.label_note
    finally:
        panel.close()


def test_an_impossible_partition_is_shown_and_run_refuses_it(live: Any) -> None:
    sweep, panel, _ = live
    # blobs keeps 2400 training examples: 300 clients cannot hold min_partition_size = 10 each
    panel.clients, panel.alpha = 300, 0.5
    n = len(sweep.specs)
    assert panel.queue_runs() == []  # refused at once, before the feeder redraws the labels
    panel.sync()
    assert panel.label_note.startswith("No partition: Expected a Dirichlet partition with at least min_partition_size = 10")
    assert panel.label_rows == []
    assert panel.queue_runs() == []
    assert len(sweep.specs) == n
    panel.sync()
    assert panel.message.startswith("Queued nothing. Left out: the partition cannot be made")
    panel.clients, panel.alpha = 4, None
    panel.sync()
    assert panel.label_note.startswith("blobs · 4 clients · iid")


def test_run_queues_into_the_sweep_and_it_runs_them(live: Any) -> None:
    sweep, panel, recorder = live
    panel.strategies, panel.attacks, panel.alpha, panel.rounds = ["TrimmedMean"], ["none", "sign_flip(scale=4.0)"], 2.0, 2
    panel.sync()
    n = len(sweep.specs)
    colours = panel.specs["progress"]["hconcat"][0]["layer"][1]["encoding"]["color"]["scale"]
    # the Run button, with the α the slider shows: its own state update may not have arrived yet
    panel._on_front_end_message(panel, {"kind": "run", "controls": {"alpha": 0.5}}, [])
    _wait(lambda: len(sweep.specs) == n + 2, 30, "two runs queued")
    panel.sync()
    assert panel.message.startswith("Queued 2 runs.") or not panel.running  # (cleared once they finished)
    assert panel.alpha == 0.5
    added = sweep.specs[n:]
    assert [(s.strategy, s.attack_label, s.alpha, s.rounds) for s in added] == [
        ("TrimmedMean", "none", 0.5, 2),
        ("TrimmedMean", "sign_flip(scale=4.0)", 0.5, 2),
    ]
    sweep.wait()
    panel.sync()
    assert panel.counts["finished"] == n + 2
    assert panel.row_count == 12 + 2 * 2 == len(recorder.rows())
    assert panel.message == ""  # "Queued 2 runs." is done with once they finished
    # the new strategy got a colour of its own; the others kept theirs
    now = panel.specs["progress"]["hconcat"][0]["layer"][1]["encoding"]["color"]["scale"]
    assert now["domain"] == [*colours["domain"], "TrimmedMean"] and now["range"][:2] == colours["range"]
    # showing one setting: its runs in the charts, the table and the export; then every run again
    setting = next(e["setting"] for e in panel.runs if e["index"] == n)
    assert setting != panel.runs[0]["setting"]
    panel.show_setting = setting
    panel.sync()
    assert panel.shown_runs == [n, n + 1]
    assert panel.full_spec("progress")["params"] == [{"name": "shown_runs", "value": [n, n + 1]}]
    panel.show_setting = ""
    panel.sync()
    assert panel.shown_runs is None
    # pressing Run again queues nothing and says so
    assert panel.queue_runs() == []
    panel.sync()
    assert "already in this sweep" in panel.message


def test_stop_cancels_and_run_works_again_after_it(tmp_path: Path) -> None:
    sweep = Sweep.from_grid(strategies=["FedAvg"], attacks=["none"], rounds=200, out=tmp_path, parallel=1, **FAST)
    panel = sweep.panel(interval=0.05)
    try:
        sweep.start()
        _wait(lambda: len(sweep.results) >= 2, 120, "rounds of the long run")
        panel._on_front_end_message(panel, {"kind": "stop"}, [])  # the Stop button
        _wait(lambda: not sweep.running, 60, "the sweep to stop")
        panel.sync()
        assert panel.runs[0]["status"] == "cancelled" and panel.running is False
        assert panel.message.startswith("Stopped: runs that had not finished are cancelled")
        assert panel.runs[0]["rounds_done"] >= 2
        panel.strategies, panel.rounds = ["FedMedian"], 2
        assert [s.strategy for s in panel.queue_runs()] == ["FedMedian"]
        sweep.wait()
        panel.sync()
        assert [r["status"] for r in panel.runs] == ["cancelled", "finished"]
    finally:
        panel.close()


def test_display_of_a_sweep_is_its_panel(live: Any) -> None:
    sweep, panel, _ = live
    bundle = sweep._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) or data
    view = data["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == panel.model_id


def test_charts_export_to_png_svg_and_a_self_contained_html_page(live: Any, tmp_path: Path) -> None:
    _, panel, _ = live
    spec = panel.full_spec("progress")
    assert len(spec["datasets"]["rounds"]) == panel.row_count
    png = panel.save_chart(tmp_path / "panel.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = panel.save_chart(tmp_path / "heatmap.svg", "heatmap")
    assert "<svg" in svg.read_text()[:200]
    with pytest.raises(ValueError, match=r"Expected a chart file ending in \.png or \.svg, got 'x\.jpg'"):
        panel.save_chart(tmp_path / "x.jpg")
    assert panel.chart("labels").to_dict()["datasets"]["labels"] == panel.label_rows
    assert panel.full_spec("heatmap")["datasets"]["cells"] == panel.cells
    for chart in ("all", "progress", "heatmap", "defence", "labels"):  # each as the Altair chart of its kind, valid
        panel.chart(chart).to_dict()
        assert panel.full_spec(chart)["title"]["subtitle"] == caption(panel.sweep.specs)  # the settings shown

    page = panel.save_html(tmp_path / "panel.html").read_text()
    data = json.loads(page.split('id="velocity-panel-data">', 1)[1].split("</script>", 1)[0])
    assert len(data["rows"]) == panel.row_count and data["state"]["runs"] == panel.runs
    head, rest = page.split('id="velocity-panel-bundle">', 1)
    outside_bundle = head + rest.split("</script>", 1)[1]
    # (the specs' "$schema" URLs name a version; nothing fetches them)
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?:|@import|url\(\s*[\"']?https?:", outside_bundle), (
        "Expected a page that loads nothing"
    )
