"""Hostile but realistic input, one family per test: every case ends in one clear line naming
what was expected and what was given, or in a result that is right — never a NaN passed off as
an aggregate, a traceback from deep inside, or a broken run ranked first (docs/reliability.md)."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from velocity.aggregation import aggregate, alie_z, apply_attack
from velocity.orchestrator import Orchestrator
from velocity.rounds import ROUND_COLUMNS
from velocity.sweep.report import RunResult, build_comparison
from velocity.sweep.spec import RunSpec

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 4)).astype(np.float32)
TWO_NAN_ROWS = np.vstack([np.full((2, 4), np.nan, dtype=np.float32), X[:6]])


# ---------------------------------------------------------------------------- non-finite rows
@pytest.mark.parametrize(
    ("updates", "strategy", "said"),
    [
        (np.full((5, 4), np.nan, dtype=np.float32), "FedMedian", "5 of 5 rows are not finite"),
        (TWO_NAN_ROWS, "TrimmedMean(f=1)", "2 of 8 rows are not finite"),
        (TWO_NAN_ROWS, "MultiKrum(f=1)", "2 of 8 rows are not finite"),
        (TWO_NAN_ROWS, "NNM(f=1) + FedMedian", "2 of 8 rows are not finite"),
    ],
)
def test_a_rule_that_cannot_absorb_non_finite_rows_says_so_instead_of_returning_nan(updates: Any, strategy: str, said: str) -> None:
    with pytest.raises(ValueError) as e:
        aggregate(updates, strategy)
    assert str(e.value).startswith(f"Expected {strategy} to absorb the non-finite rows, got a non-finite aggregate: {said}")


@pytest.mark.parametrize("strategy", ["TrimmedMean(f=2)", "MultiKrum(f=2)", "FedMedian", "Krum(f=2)"])
def test_non_finite_rows_within_what_a_rule_tolerates_are_ignored(strategy: str) -> None:
    out = aggregate(TWO_NAN_ROWS, strategy)
    assert np.isfinite(out).all()
    # the NaN rows had no part: the same as aggregating without them, up to the rule's choice
    assert np.abs(out).max() <= np.abs(X[:6]).max()


def test_a_simulated_round_poisoned_past_repair_is_flagged() -> None:
    """In a simulated round a NaN attack with a malicious majority breaks the model: that is the
    attack's effect, recorded (aggregate_finite) and shown as a diverged run, not an error."""
    orch = Orchestrator("FedMedian", attacks="nan", num_clients=8, num_malicious=5)
    summary = orch.step(np.ones((8, 3), dtype=np.float32))
    assert summary.aggregate_finite is False


# ---------------------------------------------------------------------------- attack inputs
@pytest.mark.parametrize(
    ("call", "error", "said"),
    [
        (lambda: apply_attack(X, "alie", malicious=[0, 0]), ValueError, "Expected distinct malicious, got 0 twice"),
        (
            lambda: apply_attack(X, "alie", malicious=list(range(8))),
            ValueError,
            "Expected at least one honest row, got all 8 rows malicious",
        ),
        (
            lambda: apply_attack(X, "mimic(target=99)", malicious=[0]),
            ValueError,
            "Expected a client id below num_clients = 8 for mimic's target, got 99",
        ),
        (
            lambda: apply_attack(X, "mimic(target=1)", malicious=[0, 1]),
            ValueError,
            "Expected mimic's target to be an honest client, got client 1, which is malicious",
        ),
        (lambda: apply_attack(X, "alie", malicious=None), TypeError, "Expected malicious as a list of indices in [0, 8), got None"),
        (lambda: apply_attack(X, "alie", malicious=[-1]), ValueError, "Expected malicious as indices in [0, 8), got -1"),
        (lambda: apply_attack(X, "alie", malicious=[2**64]), ValueError, f"Expected malicious as indices in [0, 8), got {2**64}"),
        (
            lambda: apply_attack(X, "gaussian_noise(sigma=1e300)", malicious=[0]),
            ValueError,
            "Expected a value >= 0 and <= 3.4028234663852886e38 for gaussian_noise.sigma, got 1e300",
        ),
        (
            lambda: Orchestrator("FedAvg", attacks="mimic(target=2)", num_clients=6, malicious=[2]),
            ValueError,
            "Expected mimic's target to be an honest client, got client 2, which is malicious",
        ),
    ],
)
def test_attack_inputs_are_checked(call: Any, error: type[Exception], said: str) -> None:
    with pytest.raises(error) as e:
        call()
    assert str(e.value) == said


def test_mimic_copies_the_target_it_was_given() -> None:
    out, outcome = apply_attack(X, "mimic(target=5)", malicious=[0, 1])
    assert outcome["strength"] == 5 and (out[0] == X[5]).all() and (out[1] == X[5]).all()


# ---------------------------------------------------------------------------- numbers from Python
@pytest.mark.parametrize(
    ("call", "error", "said"),
    [
        (lambda: aggregate(X, "Krum", f=-1), ValueError, "Expected f as an integer in [0, 18446744073709551615], got -1"),
        (lambda: aggregate(X, "Krum", f=2**70), ValueError, f"Expected f as an integer in [0, 18446744073709551615], got {2**70}"),
        (lambda: aggregate(X, "Krum", f=1.5), TypeError, "Expected f as a non-negative integer, got 1.5"),
        (
            lambda: aggregate(X, "Bucketing + FedAvg", seed=-1),
            ValueError,
            "Expected seed as an integer in [0, 18446744073709551615], got -1",
        ),
        (
            lambda: aggregate(X, "FedAvg", weights=["a"] * 8),
            ValueError,
            "Expected weights as 8 numbers (one per update row), got ['a', 'a', 'a', 'a', 'a', 'a', 'a', 'a']",
        ),
        (
            lambda: aggregate([[1.0, 2.0], [3.0]], "FedAvg"),
            ValueError,
            "Expected updates as a 2-D array (n clients × d parameters), got rows of different lengths",
        ),
        (
            lambda: Orchestrator("FedAvg", num_clients=6, num_malicious=-1),
            ValueError,
            "Expected num_malicious as an integer in [0, 6], got -1",
        ),
        (lambda: Orchestrator("FedAvg", num_clients=6, malicious=[-1]), ValueError, "Expected malicious as indices in [0, 6), got -1"),
        (
            lambda: Orchestrator("FedAvg", num_clients=6, seed=2**64),
            ValueError,
            f"Expected seed as an integer in [0, 18446744073709551615], got {2**64}",
        ),
        (lambda: alie_z(-1, 2), ValueError, "Expected n as an integer in [0, 18446744073709551615], got -1"),
    ],
)
def test_numbers_out_of_range_get_one_line_not_an_overflow(call: Any, error: type[Exception], said: str) -> None:
    with pytest.raises(error) as e:
        call()
    assert str(e.value) == said


def test_an_accuracy_outside_0_1_is_refused_and_nan_means_not_measured() -> None:
    orch = Orchestrator("FedAvg", num_clients=4)
    orch.step(X[:4])
    with pytest.raises(ValueError, match=r"^Expected a fraction in \[0, 1\] for accuracy, got 5$"):
        orch.report_metrics(math.nan, 5.0)
    orch.report_metrics(math.nan, math.nan)
    orch.report_metrics(0.7, 0.25)
    assert (orch.history[0].global_loss, orch.history[0].accuracy) == (0.7, 0.25)


# ---------------------------------------------------------------------------- what wins
def _result(name: str, accuracy: float, loss: float, status: str = "finished") -> RunResult:
    strategy = {"diverged": "FedAvg", "nothing": "FedMedian", "healthy": "TrimmedMean"}[name]  # three configurations
    spec = RunSpec(name=name, strategy=strategy, dataset="blobs", seed=0)
    return RunResult(spec, {"status": status, "final_accuracy": accuracy, "final_loss": loss, "elapsed_s": 1.0}, name)


def test_a_diverged_or_unmeasured_run_never_wins() -> None:
    comp = build_comparison(
        [_result("diverged", 0.9, math.nan), _result("nothing", math.nan, math.nan), _result("healthy", 0.6, 0.8)],
        wall_s=None,
        parallel=None,
    )
    assert comp["winner"] == "healthy"
    assert [e["run"] for e in comp["ranking"]] == ["healthy", "diverged", "nothing"]
    alone = build_comparison([_result("diverged", 0.9, math.nan)], wall_s=None, parallel=None)
    assert alone["winner"] is None


def test_a_run_of_zero_rounds_is_refused() -> None:
    with pytest.raises(ValueError, match=r"rounds"):
        RunSpec(rounds=0)


# ---------------------------------------------------------------------------- the command line
def test_a_failed_runs_error_is_printed_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from velocity.cli import main

    missing = tmp_path / "no[/x]" / "d.parquet"
    assert main(["sweep", "--dataset", str(missing), "--rounds", "1", "--out", str(tmp_path / "out"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "1 run(s) failed:" in out and f"got '{missing}'" in out.replace("\n", "")


def test_values_separated_by_spaces_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    from velocity.cli import main

    assert main(["sweep", "--strategies", "FedAvg", "FedMedian"]) == 2
    assert capsys.readouterr().out.strip() == (
        "error: Expected comma-separated values after a grid flag (--strategies FedAvg,FedMedian), got 'FedMedian' as a "
        "separate word, read as an experiment file that does not exist"
    )


def test_the_timing_line_says_when_nothing_ran_and_when_workers_shared_cores() -> None:
    from velocity.sweep.report import timing_line

    assert timing_line({"runs": 2, "parallel": 2, "wall_s": 0.01, "serial_s": 0.0, "speedup": 0.0, "resumed": ["a", "b"]}) == (
        "2 runs, all finished earlier: nothing was run now"
    )
    crowded = timing_line({"runs": 6, "parallel": 6, "cores": 2, "wall_s": 10.0, "serial_s": 30.6, "speedup": 3.06, "resumed": []})
    assert crowded.endswith("6 workers shared 2 cores, so the serial time, and the speedup, are overstated")


# ---------------------------------------------------------------------------- run folders
def test_a_run_named_dot_or_dot_dot_stays_inside_the_sweep_folder(tmp_path: Path) -> None:
    from velocity.sweep import Sweep

    sweep = Sweep([RunSpec(name="..", dataset="blobs"), RunSpec(name=".", dataset="blobs", seed=1)], out=tmp_path / "out")
    for i in (0, 1):
        assert sweep.run_dir(i).parent == tmp_path / "out" and sweep.run_dir(i).name not in (".", "..")


def test_two_runs_whose_names_give_one_folder_are_refused(tmp_path: Path) -> None:
    from velocity.sweep import Sweep
    from velocity.sweep.experiment import SpecError

    with pytest.raises(SpecError, match=r"^Expected run names that give distinct folders, got 'a/b' and 'a\?b' \(both 'a-b'\)$"):
        Sweep([RunSpec(name="a/b", dataset="blobs"), RunSpec(name="a?b", dataset="blobs", seed=1)], out=tmp_path)


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    """A temporary file is created 0600 and a rename keeps it: the sweep's files must get what
    the umask gives a new file (read once, at import: a fresh interpreter per umask)."""
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        path = tmp_path / f"x{umask:o}.json"
        code = f"import os; os.umask({umask}); from velocity.sweep.files import atomic_write_text as w; w(__import__('pathlib').Path({str(path)!r}), '{{}}')"
        subprocess.run([sys.executable, "-c", code], check=True)
        assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)


# ---------------------------------------------------------------------------- damaged files
def _spec() -> RunSpec:
    return RunSpec(name="only", dataset="blobs", model_id="logreg", num_clients=4, rounds=2, lr=0.5)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from velocity.sweep import Sweep

    out = tmp_path_factory.mktemp("finished") / "sweep"
    Sweep([_spec()], out=out, parallel=1).run()
    return out


SUMMARY_DAMAGE = {
    "truncated": (lambda text: text[: len(text) // 2], "Expected JSON in {path}, got text that is not"),
    "a list": (lambda text: "[]", "Expected a JSON object in {path}, got list []"),
    "accuracy 7.5": (
        lambda text: text.replace('"final_accuracy": ', '"final_accuracy": 7.5, "was": '),
        "Expected final_accuracy in [0, 1] in {path}, got 7.5",
    ),
    "a string for a number": (
        lambda text: text.replace('"final_loss": ', '"final_loss": "low", "was": '),
        "Expected final_loss as a number in {path}, got 'low'",
    ),
}


def _keep_cells(text: str, cells: int) -> str:
    """The file with its last row cut after ``cells`` cells (as a crash mid-write would)."""
    head, last = text.rstrip("\n").rsplit("\n", 1)
    return head + "\n" + ",".join(last.split(",")[:cells])


ROUNDS_DAMAGE = {
    "garbage": (lambda text: "\x00\x01garbage,\n1,2\n", "Expected a rounds.csv header in {path}"),
    "cut mid-row": (lambda text: _keep_cells(text, 3), f"Expected {len(ROUND_COLUMNS)} cells per row in {{path}}, got 3 on line 3"),
    "a word for a number": (lambda text: text.replace("\n2,", "\ntwo,"), "Expected numbers in their columns in {path}, got line 3"),
}


def test_a_running_runs_rounds_file_grows_by_whole_lines(tmp_path: Path) -> None:
    """rounds.csv gains one line per round while its run runs (no O(rounds²) rewrites); a worker
    that dies mid-append leaves a last line without its newline, which a reader of a growing
    file leaves out, while in a finished run's file it is damage."""
    from velocity.sweep.files import FILE_MODE, DamagedFile, RoundsAppender, read_rounds_csv

    path = tmp_path / "rounds.csv"
    rows = [{"round": r, "global_loss": 1.0 / r, "accuracy": 0.5, "num_clients": 4} for r in (1, 2, 3)]
    appender = RoundsAppender(path)
    for count, row in enumerate(rows, start=1):
        appender.append(row)  # flushed: on disk before the next round, a header and one line each
        assert path.read_text(encoding="utf-8").count("\n") == 1 + count
        assert [r["round"] for r in read_rounds_csv(path, growing=True)] == list(range(1, count + 1))
    appender.close()
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE
    with path.open("a", encoding="utf-8") as f:  # a fourth round cut off
        f.write("4,0.25,0.")
    assert [r["round"] for r in read_rounds_csv(path, growing=True)] == [1, 2, 3]
    with pytest.raises(DamagedFile, match="cells per row"):
        read_rounds_csv(path)
    again = RoundsAppender(path)  # a new attempt starts the file afresh
    again.append(rows[0])
    again.close()
    assert [r["round"] for r in read_rounds_csv(path)] == [1]


@pytest.mark.parametrize(("file", "damage"), [*(("summary.json", d) for d in SUMMARY_DAMAGE), *(("rounds.csv", d) for d in ROUNDS_DAMAGE)])
def test_a_damaged_run_is_named_and_run_again(finished_sweep: Path, tmp_path: Path, file: str, damage: str) -> None:
    from velocity.sweep import Sweep

    out = tmp_path / "sweep"
    shutil.copytree(finished_sweep, out)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    path = run_dir / file
    change, said = (SUMMARY_DAMAGE if file == "summary.json" else ROUNDS_DAMAGE)[damage]
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    sweep = Sweep([_spec()], out=out, parallel=1).run()
    comparison = sweep.comparison()
    assert comparison["file_problems"][0].startswith(f"Running 'only' again: {said.format(path=path)}"), comparison["file_problems"]
    assert comparison["winner"] == "only" and comparison["timing"]["resumed"] == []  # run again, not taken as finished
    assert len((run_dir / "rounds.csv").read_text(encoding="utf-8").splitlines()) == 1 + 2


def test_report_names_a_damaged_config_and_leaves_its_run_out(
    finished_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from velocity.cli import main

    out = tmp_path / "sweep"
    shutil.copytree(finished_sweep, out)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    shutil.copytree(run_dir, out / "second")
    (out / "second" / "config.json").write_text('{"strategy": "FedAvg", "rounds": ', encoding="utf-8")
    (out / "comparison.json").write_text("[", encoding="utf-8")
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out.replace("\n", "")
    assert (
        f"File problem: Expected JSON in {out / 'second' / 'config.json'}, got text that is not" in text and "(the run is left out)" in text
    )
    assert f"File problem: Expected JSON in {out / 'comparison.json'}" in text
    assert "## File problems" in (out / "comparison.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- output folders
def test_an_output_folder_that_cannot_be_one_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from velocity.sweep import Sweep

    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^Expected a folder for the sweep's files, got '{file}', which is a file$"):
        Sweep([_spec()], out=file)
    with pytest.raises(ValueError, match=rf"^Expected a folder for the sweep's files, got '{file / 'sub'}', below '{file}', a file$"):
        Sweep([_spec()], out=file / "sub")


# ---------------------------------------------------------------------------- one sweep per folder
def test_a_second_sweep_into_a_folder_in_use_is_refused_and_welcome_once_it_is_free(tmp_path: Path) -> None:
    from velocity.sweep import Sweep

    out = tmp_path / "shared"
    first = Sweep([RunSpec(name="long", dataset="blobs", model_id="logreg", num_clients=4, rounds=400, lr=0.5)], out=out, parallel=1)
    second = Sweep([RunSpec(name="other", dataset="blobs", model_id="logreg", num_clients=4, rounds=2, lr=0.1)], out=out, parallel=1)
    first.start()
    try:
        with pytest.raises(
            ValueError, match=rf"^Expected no other sweep writing to '{out}', got one running there now \(pid {os.getpid()}\)"
        ):
            second.start()
        assert not (out / "other").exists()  # nothing of it was written
    finally:
        first.cancel()
    second.run()  # free again
    assert second.comparison()["winner"] == "other"


# ---------------------------------------------------------------------------- memory
def test_a_batch_size_beyond_the_data_pads_nothing() -> None:
    """batch_size = 10**9 once grew a worker to 24 GB (padding to the batch size): the batched
    trainer pads to the widest batch drawn, so it is the same job as a batch of the whole data."""
    from velocity.data import load_federated
    from velocity.server import FederatedServer
    from velocity.training import LocalTrainingConfig

    data = load_federated("blobs", num_clients=4)
    models = []
    for batch_size in (10**9, len(data.y_train)):
        server = FederatedServer(data, model_id="logreg", local=LocalTrainingConfig(lr=0.5, batch_size=batch_size), batched=True, seed=0)
        server.run(1)
        models.append(server.orchestrator.global_model)
    assert np.array_equal(models[0], models[1])


# ---------------------------------------------------------------------------- a full disk
@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    """A 512 KiB tmpfs, nearly full (needs the right to mount: root, as in CI)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"needs a tmpfs mount: {done.stderr.decode().strip()}")
    try:
        (mount / "fill").write_bytes(b"\0" * 480_000)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_the_sweep_with_one_line_per_problem(tiny_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from velocity.cli import main

    out = tiny_disk / "out"
    argv = ["sweep", "--dataset", "blobs", "--model", "logreg", "--rounds", "40", "--clients", "6", "--parallel", "1", "--quiet"]
    assert main([*argv, "--strategies", "FedAvg,FedMedian,Krum,TrimmedMean", "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "Traceback" not in text
    assert "File problem: No space left on device: the runs not yet started were not started" in text
    assert "File problem: Could not write the comparison (No space left on device" in text
    failed = text[text.index("4 run(s) failed:") :].splitlines()[1:]
    assert "No space left on device" in failed[0] and all(line.endswith(": not run") for line in failed[1:]), failed


# ---------------------------------------------------------------------------- data
def test_a_data_set_with_non_finite_features_is_refused(tmp_path: Path) -> None:
    from velocity.data import load_federated

    rows = ["f1,f2,label"] + [f"{i * 0.1:.1f},{'nan' if i in (3, 7) else 1.0},{i % 2}" for i in range(40)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^Expected finite features in {path}, got NaN or infinite values in 2 of 40 examples$"):
        load_federated(str(path), num_clients=2)


def test_a_batched_run_that_cannot_fit_in_memory_is_refused_or_trained_one_client_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from velocity import server as server_module
    from velocity.data import load_federated
    from velocity.server import FederatedServer
    from velocity.training import LocalTrainingConfig, batched_memory_floor

    data = load_federated("blobs", num_clients=4)
    # logreg on blobs: 20 × 10 + 10 = 210 parameters; batch 32 of 20 features; momentum 0.9
    need = batched_memory_floor(4, 210, 32, 20, momentum=True)
    assert need == 4 * 4 * (3 * 210 + 32 * 20)
    # a machine one byte short (of host memory: the runs train on the CPU, whatever GPU it has)
    monkeypatch.setattr(server_module, "available_memory", lambda: need - 1)
    local = LocalTrainingConfig(lr=0.5, batch_size=32, momentum=0.9)
    with pytest.raises(
        ValueError, match=r"^Expected a run that fits in memory, got one that needs at least .* GiB to train 4 clients at once"
    ):
        FederatedServer(data, model_id="logreg", local=local, batched=True, seed=0, device="cpu")
    assert not FederatedServer(data, model_id="logreg", local=local, batched=False, seed=0, device="cpu").batched  # one at a time: fine
    # left to choose, the server trains one client at a time rather than fail
    assert not FederatedServer(data, model_id="logreg", local=local, seed=0, device="cpu").batched
    monkeypatch.setattr(server_module, "available_memory", lambda: need)
    assert FederatedServer(data, model_id="logreg", local=local, batched=True, seed=0, device="cpu").batched
    assert FederatedServer(data, model_id="logreg", local=local, seed=0, device="cpu").batched


def test_a_run_name_like_markup_is_printed_as_written_by_sweep_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from velocity.cli import main

    toml = tmp_path / "exp.toml"
    toml.write_text(
        '[shared]\ndataset = "blobs"\nmodel_id = "logreg"\nrounds = 1\nnum_clients = 4\n\n[[runs]]\nname = "a[/x]b [bold]c"\n',
        encoding="utf-8",
    )
    for argv in (["sweep", str(toml), "--out", str(tmp_path / "out"), "--quiet"], ["report", str(tmp_path / "out")]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "Best run: a[/x]b [bold]c" in out, out


def test_ctrl_c_on_the_command_line_keeps_the_rounds_and_writes_the_comparison(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: the command and its workers."""
    import signal
    import time

    out = tmp_path / "out"
    argv = [sys.executable, "-m", "velocity.cli", "sweep", "--dataset", "blobs", "--model", "logreg", "--rounds", "100000"]
    argv += ["--strategies", "FedAvg,FedMedian", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # (a background job starts with it ignored)
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/rounds.csv")) and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "Cancelled. Every finished round is kept in" in text
    assert (out / "comparison.json").exists() and (out / "comparison.md").exists()
    for run_dir in (p for p in out.iterdir() if p.is_dir()):
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        assert summary["status"] == "cancelled" and summary["rounds_completed"] >= 0
