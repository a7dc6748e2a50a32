"""Results across sweeps: every run of several sweep folders in polars frames, and the
leaderboards over them (each metric checked against the runs' own files), in Python, as JSON
and on the command line; unreadable runs are skipped and named."""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pytest

from velocity.cli import main as cli_main
from velocity.results import fingerprint, leaderboard, load
from velocity.sweep import Sweep
from velocity.sweep.files import read_rounds_csv
from velocity.sweep.report import read_config

FAST = {"dataset": "blobs(classes=4, dim=8, per_class=60)", "model_id": "mlp-16", "num_clients": 6, "lr": 0.1, "rounds": 3}


@pytest.fixture(scope="module")
def two_sweeps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sweeps under one folder: A runs FedAvg and FedMedian, clean and under sign flip, with
    seeds 0 and 1; B repeats FedAvg's seed-1 runs (the same runs again) and adds seed 2."""
    root = tmp_path_factory.mktemp("results")
    grid = {"strategies": ["FedAvg", "FedMedian"], "attacks": ["none", "sign_flip"], "malicious_fraction": 0.34, **FAST}
    Sweep.from_grid(seeds=[0, 1], out=root / "a", **grid).run()
    Sweep.from_grid(seeds=[1, 2], out=root / "b", **{**grid, "strategies": ["FedAvg"]}).run()
    return root


def _accuracies(root: Path) -> dict[tuple[str, str, int], float]:
    """(strategy, attack, seed) → final accuracy, read from every summary.json under ``root``
    (a run in both sweeps has the same numbers in both: same spec, same seed)."""
    out = {}
    for path in sorted(root.glob("*/*/summary.json")):
        strategy, attack, _, seed = json.loads(path.read_text())["run"].split(" | ")
        out[(strategy, attack, int(seed.removeprefix("seed=")))] = json.loads(path.read_text())["final_accuracy"]
    return out


def test_load_finds_every_run_of_every_sweep_with_its_rounds(two_sweeps: Path) -> None:
    results = load(two_sweeps)
    assert [s.name for s in results.sweeps] == ["a", "b"]
    assert results.runs.height == 8 + 4 and results.skipped == []
    assert set(results.runs["status"]) == {"finished"}
    # every round of every run, as its rounds.csv holds it
    assert results.rounds.height == 12 * 3
    one = results.runs.row(0, named=True)
    rows = read_rounds_csv(Path(one["run_dir"]) / "rounds.csv")
    mine = results.rounds.filter(pl.col("run_dir") == one["run_dir"]).sort("round")
    assert mine["accuracy"].to_list() == [r["accuracy"] for r in rows]
    # the fingerprint leaves out the seed (and only the seed)
    specs = {Path(d).name: read_config(Path(d) / "config.json") for d in results.runs["run_dir"]}
    by_print: dict[str, set] = {}
    for row in results.runs.iter_rows(named=True):
        by_print.setdefault(row["fingerprint"], set()).add(row["seed"])
        assert row["fingerprint"] == fingerprint(specs[Path(row["run_dir"]).name])
    assert len(by_print) == 4 and by_print[results.runs.filter(pl.col("strategy") == "FedAvg")["fingerprint"][0]] == {0, 1, 2}
    # the model's size is recorded, and the server's traffic follows from it
    params = results.runs["num_parameters"].unique().to_list()
    assert len(params) == 1 and params[0] == 8 * 16 + 16 + 16 * 4 + 4
    assert results.runs["comm_bytes"].to_list() == [2 * 4 * params[0] * 6 * 3] * 12


def test_accuracy_leaderboard_is_the_mean_over_seeds_with_a_t_interval_and_duplicates_count_once(two_sweeps: Path) -> None:
    board = leaderboard(two_sweeps, metric="accuracy")
    assert len(board.entries) == 4
    assert any("counted once" in n for n in board.notes)  # B's seed-1 FedAvg runs are A's
    fedavg_clean = next(e for e in board.entries if e["strategy"] == "FedAvg" and e["attack"] == "none")
    assert fedavg_clean["runs"] == 3 and fedavg_clean["seeds"] == [0, 1, 2]
    values = [_accuracies(two_sweeps)[("FedAvg", "none", seed)] for seed in (0, 1, 2)]
    assert fedavg_clean["value"] == pytest.approx(statistics.fmean(values))
    from scipy.stats import t

    half = t.ppf(0.975, 2) * statistics.stdev(values) / math.sqrt(3)
    assert fedavg_clean["ci95"] == pytest.approx(half)
    ranked = [e["value"] for e in board.entries]
    assert ranked == sorted(ranked, reverse=True) and [e["rank"] for e in board.entries] == [1, 2, 3, 4]
    assert any(e["pareto"] for e in board.entries)
    # min_runs hides the configurations repeated fewer times
    assert {e["strategy"] for e in leaderboard(two_sweeps, metric="accuracy", min_runs=3).entries} == {"FedAvg"}


def test_worst_case_and_robustness_pair_attacked_runs_with_their_clean_twins(two_sweeps: Path) -> None:
    acc = _accuracies(two_sweeps)
    worst = leaderboard(two_sweeps, metric="worst-case")
    assert {e["strategy"] for e in worst.entries} == {"FedAvg", "FedMedian"}
    for e in worst.entries:
        attacked = [acc[(e["strategy"], "sign_flip", seed)] for seed in e["seeds"]]
        assert e["value"] == pytest.approx(statistics.fmean(attacked)) and e["attacks"] == ["sign_flip"]
    robust = leaderboard(two_sweeps, metric="robustness")
    for e in robust.entries:
        drops = [acc[(e["strategy"], "none", seed)] - acc[(e["strategy"], "sign_flip", seed)] for seed in e["seeds"]]
        assert e["value"] == pytest.approx(statistics.fmean(drops))
    assert [e["value"] for e in robust.entries] == sorted(e["value"] for e in robust.entries)  # lower is better


def test_rounds_to_target_counts_the_first_round_at_the_target(two_sweeps: Path) -> None:
    results = load(two_sweeps)
    target = float(results.rounds["accuracy"].median())  # some runs reach it, some do not
    board = leaderboard(results, metric="rounds-to-target", target=target)
    for e in board.entries:
        runs = results.runs.filter((pl.col("strategy") == e["strategy"]) & (pl.col("attack") == e["attack"])).unique(
            ["fingerprint", "seed"]
        )
        firsts = []
        for d in runs["run_dir"]:
            hit = [r["round"] for r in read_rounds_csv(Path(d) / "rounds.csv") if r["accuracy"] >= target]
            firsts.extend(hit[:1])
        assert e["reached"] == len(firsts)
        assert e["value"] == (pytest.approx(statistics.fmean(firsts)) if firsts else None)
    reached = [e["reached"] / e["runs"] for e in board.entries]
    assert reached == sorted(reached, reverse=True)


def test_filters_select_by_dataset_attack_and_alpha(two_sweeps: Path) -> None:
    assert {e["attack"] for e in leaderboard(two_sweeps, attack="sign_flip").entries} == {"sign_flip"}
    assert {e["attack"] for e in leaderboard(two_sweeps, attack="none").entries} == {"none"}
    assert leaderboard(two_sweeps, dataset="mnist").entries == []
    assert leaderboard(two_sweeps, alpha="<=0.5").entries == []  # every run here is iid
    assert len(leaderboard(two_sweeps, alpha="iid").entries) == 4
    with pytest.raises(ValueError, match=r"Expected alpha as a number, a comparison such as <=0\.5.*got '<=half'"):
        leaderboard(two_sweeps, alpha="<=half")
    with pytest.raises(ValueError, match="Expected a metric among accuracy, worst-case"):
        leaderboard(two_sweeps, metric="speed")  # type: ignore[arg-type]


def test_unreadable_runs_are_skipped_and_named_and_a_folder_without_sweeps_is_refused(two_sweeps: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(two_sweeps, copy)
    runs = sorted(copy.glob("a/*/summary.json"))
    runs[0].write_text('{"status": "finished", "final_accuracy": 7.5}')  # hand-edited: no accuracy is 7.5
    (runs[1].parent / "rounds.csv").write_text("round,accuracy\n1,0.5,extra\n")
    (runs[2].parent / "config.json").write_text("{not json")
    results = load(copy)
    assert results.runs.height == 12 - 3 and len(results.skipped) == 3
    assert any("final_accuracy in [0, 1]" in s for s in results.skipped)
    assert any("rounds.csv" in s for s in results.skipped) and any("config.json" in s for s in results.skipped)
    board = leaderboard(results, metric="accuracy")
    assert board.skipped == results.skipped
    # each readable run once (a run in both sweeps counts once)
    assert sum(e["runs"] for e in board.entries) == results.runs.unique(["fingerprint", "seed"]).height
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"Expected a sweep folder .* or a folder of sweeps, got '.*empty' with none"):
        load(empty)
    with pytest.raises(ValueError, match="which does not exist"):
        load(tmp_path / "nowhere")
    run = runs[3].parent
    with pytest.raises(ValueError, match=re.escape(f"got the run folder '{run}': give its sweep, '{run.parent}'")):
        load(run)


def test_the_command_prints_a_table_or_json_and_the_chart_draws_the_front(two_sweeps: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["leaderboard", str(two_sweeps), "--metric", "worst-case", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == "worst-case" and data["higher_is_better"] and len(data["entries"]) == 2
    assert cli_main(["leaderboard", str(two_sweeps), "--metric", "accuracy", "--attack", "sign_flip"]) == 0
    out = capsys.readouterr().out
    assert "FedMedian" in out and "sign_flip" in out and "±" in out
    assert cli_main(["leaderboard", str(two_sweeps / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().out
    spec = leaderboard(two_sweeps).chart().to_dict()
    assert {layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]} == {"line", "point"}


# ---------------------------------------------------------------------------- archive and reproduce


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    Sweep.from_grid(
        strategies=["FedAvg", "FedMedian"], attacks=["none", "sign_flip"], malicious_fraction=0.34, out=root / "sweep", **FAST
    ).run()
    assert cli_main(["archive", str(root / "sweep"), "-o", str(root / "sweep.zip")]) == 0
    return root / "sweep.zip"


def _rewrite(src: Path, dst: Path, edit: dict[str, bytes], *, rehash: bool) -> None:
    """A copy of the archive with some files replaced; with ``rehash``, their recorded SHA-256
    updated too (a result changed by someone who knew to update the metadata)."""
    import hashlib
    import zipfile

    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files.update(edit)
    if rehash:
        meta = json.loads(files["ro-crate-metadata.json"])
        for e in meta["@graph"]:
            if unquote(e["@id"]) in edit:
                e["sha256"] = hashlib.sha256(edit[unquote(e["@id"])]).hexdigest()
        files["ro-crate-metadata.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)


def test_an_archive_is_an_ro_crate_of_the_sweeps_files_specs_and_versions(packed: Path) -> None:
    import hashlib
    import zipfile

    with zipfile.ZipFile(packed) as z:
        names = set(z.namelist())
        meta = json.loads(z.read("ro-crate-metadata.json"))
        files = {unquote(e["@id"]): e for e in meta["@graph"] if e.get("@type") == "File"}
        for ident, e in files.items():  # every file listed, with its hash
            assert ident in names and e["sha256"] == hashlib.sha256(z.read(ident)).hexdigest()
        specs = json.loads(z.read("specs.json"))
        env = json.loads(z.read("environment.json"))
    assert meta["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    root = next(e for e in meta["@graph"] if e["@id"] == "./")
    assert root["velocityArchiveFormat"] == 1 and {unquote(p["@id"]) for p in root["hasPart"]} == set(files)
    assert len(specs) == 4 and {s["strategy"] for s in specs} == {"FedAvg", "FedMedian"}
    assert sum(n.endswith("/summary.json") for n in names) == 4 and "sweep/manifest.json" in names
    assert env["packages"]["torch"] and env["velocity"] and ("Cargo.lock" in names) != ("cargo_lock" in env)
    from velocity.sweep.files import FILE_MODE

    assert packed.stat().st_mode & 0o777 == FILE_MODE  # as the umask gives, like every sweep file


def test_reproduce_check_runs_every_run_again_and_finds_a_changed_result(
    packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["reproduce", str(packed), "--check", "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert out.count("match") >= 4 and "4 of 4 run(s) reproduced" in out
    # a result that does not come out again (its hash updated, so the pack itself is consistent)
    import zipfile

    with zipfile.ZipFile(packed) as z:
        name = next(n for n in z.namelist() if n.endswith("summary.json") and "FedMedian__sign_flip" in n)
        summary = json.loads(z.read(name))
    summary["final_accuracy"] = round(1.0 - summary["final_accuracy"], 6) if summary["final_accuracy"] != 0.5 else 0.25
    changed = tmp_path / "changed.zip"
    _rewrite(packed, changed, {name: json.dumps(summary).encode()}, rehash=True)
    assert cli_main(["reproduce", str(changed), "--check", "--out", str(tmp_path / "again2")]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "FedMedian | sign_flip" in out and "final_accuracy" in out and "3 of 4" in out


def test_a_tampered_a_newer_or_a_foreign_archive_is_refused_with_one_line(
    packed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    with zipfile.ZipFile(packed) as z:
        name = next(n for n in z.namelist() if n.endswith("rounds.csv"))
        meta = json.loads(z.read("ro-crate-metadata.json"))
        rounds = z.read(name)
    tampered = tmp_path / "tampered.zip"
    last = b"8" if rounds[-2:-1] == b"9" else b"9"  # a digit it did not have: the file really changes
    _rewrite(packed, tampered, {name: rounds[:-2] + last + b"\n"}, rehash=False)
    assert cli_main(["reproduce", str(tampered), "--check", "--out", str(tmp_path / "t")]) == 2
    assert "the file was changed after packing" in capsys.readouterr().out
    for e in meta["@graph"]:
        if e["@id"] == "./":
            e["velocityArchiveFormat"] = 99
    newer = tmp_path / "newer.zip"
    _rewrite(packed, newer, {"ro-crate-metadata.json": json.dumps(meta).encode()}, rehash=False)
    assert cli_main(["reproduce", str(newer), "--out", str(tmp_path / "n")]) == 2
    assert "format 99" in capsys.readouterr().out
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("notes.txt", "hello")
    assert cli_main(["reproduce", str(foreign), "--out", str(tmp_path / "f")]) == 2
    assert "without one" in capsys.readouterr().out
    assert cli_main(["archive", str(tmp_path), "-o", str(tmp_path / "x.zip")]) == 2
    assert "Expected a sweep folder" in capsys.readouterr().out
