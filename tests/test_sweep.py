"""Sweeps end to end: the TOML and flag forms produce every file; failures, dead workers, cancel
and resume lose nothing; a dask executor runs a sweep unchanged."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from velocity.cli import main as cli_main
from velocity.sweep import RunSpec, SpecError, Sweep, load_experiment
from velocity.sweep.files import read_rounds_csv

# Tiny, fast runs: 4 blob classes, an MLP with 16 hidden units.
FAST = {"dataset": "blobs(classes=4, dim=8, per_class=60)", "model_id": "mlp-16", "num_clients": 6, "lr": 0.1}

EXPERIMENT = """
[shared]
model_id = "mlp-16"
dataset = "blobs(classes=4, dim=8, per_class=60)"
storage = "local://{storage}"
rounds = 3
num_clients = 6
min_clients = 5
seed = 0

[[runs]]
name = "baseline-fedavg"
strategy = "FedAvg"

[[runs]]
name = "fedmedian-baseline"
strategy = "FedMedian"

[[runs]]
name = "fedavg-under-poisoning"
strategy = "FedAvg"
malicious_fraction = 0.2
[[runs.attacks]]
type = "model_poisoning"
intensity = 0.5
"""


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_toml_experiment_writes_every_file(tmp_path):
    toml = tmp_path / "experiment.toml"
    toml.write_text(EXPERIMENT.format(storage=tmp_path / "ckpt"))
    out = tmp_path / "sweep"
    assert cli_main(["sweep", str(toml), "--out", str(out), "--quiet"]) == 0

    for name in ("baseline-fedavg", "fedmedian-baseline", "fedavg-under-poisoning"):
        run = out / name
        config = json.loads((run / "config.json").read_text())
        assert config["name"] == name and config["min_clients"] == 5
        rows = read_rounds_csv(run / "rounds.csv")
        assert [r["round"] for r in rows] == [1, 2, 3]
        assert all(r["num_clients"] == 5 for r in rows)
        summary = _summary(run)
        assert summary["status"] == "finished" and summary["rounds_completed"] == 3
        assert summary["final_loss"] == pytest.approx(rows[-1]["global_loss"])
        ckpt = Path(summary["checkpoint"].removeprefix("local://").removeprefix("file://"))
        assert ckpt.exists() and ckpt.parent == tmp_path / "ckpt"
        from safetensors.torch import load_file

        assert load_file(ckpt), "the checkpoint holds the model tensors"
    poisoned = read_rounds_csv(out / "fedavg-under-poisoning" / "rounds.csv")
    assert all("model_poisoning" in r["attacks"] for r in poisoned)

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"] == 3 and manifest["packages"]["torch"] and manifest["host"]["cpus_available"] >= 1
    assert len(manifest["sweep_spec_hash"]) == 16
    comparison = json.loads((out / "comparison.json").read_text())
    assert [e["rank"] for e in comparison["ranking"]] == [1, 2, 3]
    assert comparison["winner"] in {"baseline-fedavg", "fedmedian-baseline", "fedavg-under-poisoning"}
    attacked = next(e for e in comparison["ranking"] if e["run"] == "fedavg-under-poisoning")
    clean = next(e for e in comparison["ranking"] if e["run"] == "baseline-fedavg")
    assert attacked["loss_change_vs_clean"] == pytest.approx(attacked["final_loss"] - clean["final_loss"])
    assert comparison["most_robust"] == "FedAvg"  # the only strategy with an attacked run and a clean twin
    md = (out / "comparison.md").read_text()
    assert "| Rank | Run | Strategy | Attack | α | Final loss | Final accuracy | Mean loss | Elapsed (s)" in md
    assert "**Winner:**" in md and "**Smallest loss change under attack:** FedAvg" in md
    # The verdict leads: the attacked strategy's worst case, with its clean accuracy beside it.
    assert md.index("## Verdict") < md.index("## Every run") < md.index("**Winner:**")
    assert [(e["strategy"], e["worst_attack"]) for e in comparison["verdict"]["table"]] == [("FedAvg", "model_poisoning(intensity=0.5)")]
    assert "3 runs, " in md and "serial would be" in md and "× speedup)" in md

    # `velocity report` rebuilds the same comparison from the files.
    (out / "comparison.md").unlink()
    assert cli_main(["report", str(out)]) == 0
    assert (out / "comparison.md").read_text() == md


def test_flag_sweep_with_seeds_reports_mean_and_interval(tmp_path, capsys):
    out = tmp_path / "flags"
    argv = ["sweep", "--strategies", "FedAvg,FedMedian", "--attacks", "none,sign_flip", "--alphas", "1,inf", "--seeds", "2"]
    argv += ["--rounds", "2", "--clients", "6", "--dataset", FAST["dataset"], "--model", "mlp-16", "--out", str(out), "--quiet"]
    assert cli_main(argv) == 0
    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(runs) == 16
    comparison = json.loads((out / "comparison.json").read_text())
    assert len(comparison["ranking"]) == 8, "one row per configuration, seeds pooled"
    assert all(e["seeds"] == [0, 1] and e["final_loss_ci95"] is not None for e in comparison["ranking"])
    means = [e["final_accuracy"] for e in comparison["ranking"]]
    assert means == sorted(means, reverse=True), "ranked on the mean"
    assert {e["alpha"] for e in comparison["ranking"]} == {"1", "inf"}
    assert "mean ± the half-width of a 95% Student-t interval" in (out / "comparison.md").read_text()
    # Paired seeds: repetition r of every configuration shares the partition and the malicious clients.
    configs = [json.loads((out / r / "config.json").read_text()) for r in runs]
    assert {c["seed"] for c in configs} == {0, 1}


def test_bad_specs_fail_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[shared]\nrounds = 3\n[[runs]\nname = 'x'\n")
    with pytest.raises(SpecError, match="malformed TOML"):
        load_experiment(bad)
    bad.write_text('[[runs]]\nname = "typo"\nstrategy = "FedMedain"\n')
    with pytest.raises(SpecError, match=r"run 1 \('typo'\), key 'strategy': .*FedMedain.*FedMedian"):
        load_experiment(bad)
    bad.write_text('[[runs]]\nname = "tight"\nstrategy = "Krum"\nnum_clients = 10\nmalicious_fraction = 0.4\nattacks = ["sign_flip"]\n')
    with pytest.raises(SpecError, match=r"Krum cannot aggregate 10 clients per round with up to 4 malicious.*Expected n > 2f \+ 2"):
        load_experiment(bad)
    bad.write_text('[[runs]]\nname = "k"\nrounds = 3\nlearning_rate = 0.1\n')
    with pytest.raises(SpecError, match="key 'learning_rate': unknown key; expected one of: name, dataset"):
        load_experiment(bad)
    out = tmp_path / "never"
    assert cli_main(["sweep", "--strategies", "Krum(f=3)", "--clients", "8", "--out", str(out), "--quiet"]) == 2
    assert not out.exists(), "nothing ran, nothing was written"
    assert cli_main(["sweep", str(bad), "--rounds", "3"]) == 2  # a file and grid flags at once


def test_a_run_that_raises_is_recorded_and_the_others_finish(tmp_path, capsys):
    out = tmp_path / "fails"
    specs = [
        RunSpec(name="ok", rounds=2, **FAST),
        RunSpec(name="broken", rounds=2, **{**FAST, "dataset": str(tmp_path / "missing.parquet")}),
    ]
    sweep = Sweep(specs, out=out, parallel=2).run()
    assert sweep.status == {"finished": 1, "failed": 1}
    broken = _summary(out / "broken")
    assert broken["status"] == "failed" and "FileNotFoundError" in broken["error"] and "missing.parquet" in broken["error"]
    assert "Traceback" in broken["traceback"]
    comparison = sweep.comparison()
    assert [f["run"] for f in comparison["failed"]] == ["broken"]
    assert comparison["winner"] == "ok"
    assert "## Failed runs" in (out / "comparison.md").read_text()


def test_cli_exits_non_zero_and_names_the_failed_run(tmp_path, capsys):
    toml = tmp_path / "e.toml"
    toml.write_text(
        f'[shared]\ndataset = "{FAST["dataset"]}"\nmodel_id = "mlp-16"\nnum_clients = 6\nrounds = 2\n'
        f'[[runs]]\nname = "fine"\n[[runs]]\nname = "nofile"\ndataset = "{tmp_path / "nope.csv"}"\n'
    )
    assert cli_main(["sweep", str(toml), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "1 run(s) failed" in printed and "nofile" in printed


def test_cli_progress_marks_each_run_once_and_prints_names_literally(tmp_path, capsys):
    name = "run [bold]x[/bold]"
    args = ["sweep", "--strategies", "FedAvg", "--rounds", "3", "--dataset", FAST["dataset"], "--model-id", "logreg"]
    assert cli_main([*args, "--num-clients", "4", "--name", name, "--out", str(tmp_path / "o[1]")]) == 0
    printed = capsys.readouterr().out
    assert name in printed and str(tmp_path / "o[1]") in printed  # user text, never markup
    assert printed.count("✓") == 1, printed
    # one mark per finished run, not one per update: the first of two runs in a row ends long before the sweep
    assert cli_main([*args, "--strategies", "FedAvg,FedMedian", "--parallel", "1", "--out", str(tmp_path / "two")]) == 0
    assert capsys.readouterr().out.count("✓") == 2


def _kill_whenever_started(sweep: Sweep, index: int, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set():
        pid = sweep.worker_pids().get(index)
        if pid and pid not in killed:
            time.sleep(0.3)  # let it write a round or two
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.02)


def test_a_worker_that_dies_is_recorded_and_the_others_are_rerun(tmp_path):
    out = tmp_path / "dies"
    specs = [
        RunSpec(name="victim", rounds=400, **FAST),
        RunSpec(name="bystander", rounds=3, **FAST),
        RunSpec(name="later", rounds=3, **FAST),
    ]
    sweep = Sweep(specs, out=out, parallel=2)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_whenever_started, args=(sweep, 0, stop, killed), daemon=True)
    killer.start()
    try:
        sweep.start().wait(timeout=240)
    finally:
        stop.set()
    assert not sweep.running
    statuses = dict(sweep.run_status())
    assert statuses == {"victim": "failed", "bystander": "finished", "later": "finished"}
    assert len(killed) >= 1
    victim = _summary(out / "victim")
    assert "worker process died" in victim["error"]
    assert victim["rounds_completed"] == len(read_rounds_csv(out / "victim" / "rounds.csv"))
    assert _summary(out / "bystander")["rounds_completed"] == 3


def test_a_run_submitted_to_a_pool_that_just_broke_waits_for_the_next_one(tmp_path):
    """A worker can die between the driver's wait and its next submission: the pool refuses the
    new run (BrokenProcessPool) before the dead run's future says anything. That run never
    started; it is submitted again, not lost and not the sweep's end."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    refused: list[str] = []

    class BreaksOnce(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            if not refused and args[2] == 1:  # the second run, while the first is in flight
                refused.append(args[1])
                raise BrokenProcessPool("a child process terminated abruptly")
            return super().submit(fn, *args, **kwargs)

    specs = [RunSpec(name=f"run-{k}", rounds=2, seed=k, **FAST) for k in range(3)]
    with BreaksOnce(max_workers=2) as executor:
        sweep = Sweep(specs, out=tmp_path / "broke", executor=executor, parallel=2).start().wait(timeout=120)
        assert not sweep.running, "the sweep hung on the refused run"
    assert len(refused) == 1
    assert dict(sweep.run_status()) == {"run-0": "finished", "run-1": "finished", "run-2": "finished"}


def test_cancel_stops_the_pool_and_keeps_finished_rounds(tmp_path):
    out = tmp_path / "cancel"
    specs = [RunSpec(name=f"long-{k}", rounds=500, seed=k, **FAST) for k in range(3)]
    sweep = Sweep(specs, out=out, parallel=2).start()
    deadline = time.time() + 90
    while time.time() < deadline and sweep.results["run"].n_unique() < 2:  # both workers mid-run
        time.sleep(0.05)
    assert sweep.results["run"].n_unique() == 2, "rounds stream in while runs are going"
    sweep.cancel()
    assert not sweep.running
    statuses = [st for _, st in sweep.run_status()]
    assert statuses.count("cancelled") == 3 or (statuses.count("cancelled") >= 2 and "finished" not in statuses[2:])
    for k in range(2):
        summary = _summary(out / f"long-{k}")
        assert summary["status"] == "cancelled"
        kept = read_rounds_csv(out / f"long-{k}" / "rounds.csv")
        assert summary["rounds_completed"] == len(kept) and 0 < len(kept) < 500
    assert (out / "comparison.json").exists()


def test_rerunning_into_the_same_folder_resumes(tmp_path):
    out = tmp_path / "resume"
    specs = [RunSpec(name="a", rounds=2, **FAST), RunSpec(name="b", rounds=2, **FAST)]
    Sweep(specs, out=out, parallel=2).run()
    first = _summary(out / "a")
    changed = [specs[0], RunSpec(name="b", rounds=3, **FAST)]  # b's spec changed: it runs again
    again = Sweep(changed, out=out, parallel=2).run()
    summaries = again.summaries()
    assert summaries[0].get("resumed") is True and summaries[0]["elapsed_s"] == first["elapsed_s"]
    assert not summaries[1].get("resumed") and summaries[1]["rounds_completed"] == 3
    assert len(again.results.filter(again.results["run"] == "a")) == 2, "resumed runs bring their rounds from the files"
    # the resumed run is compared but not timed: its time was spent by the earlier sweep
    timing = json.loads((out / "comparison.json").read_text())["timing"]
    assert timing["resumed"] == ["a"] and timing["serial_s"] == pytest.approx(summaries[1]["elapsed_s"])
    assert "2 runs (1 finished earlier, 1 run now), 2 parallel" in (out / "comparison.md").read_text()


def test_add_queues_into_a_running_sweep_and_callbacks_see_every_round(tmp_path):
    seen = []
    sweep = Sweep([RunSpec(name="first", rounds=3, **FAST)], out=tmp_path / "add", parallel=1)
    sweep.on_round(seen.append).start()
    sweep.add(RunSpec(name="second", rounds=2, **FAST))
    sweep.wait(timeout=120)
    assert sweep.status == {"finished": 2}
    assert sorted((r["run"], r["round"]) for r in seen) == [("first", 1), ("first", 2), ("first", 3), ("second", 1), ("second", 2)]
    df = sweep.results
    assert df.columns[:3] == ["run", "index", "strategy"] and len(df) == 5


def test_a_finished_sweep_restarts_for_added_runs_and_its_wall_time_skips_the_idle_gap(tmp_path):
    began = time.perf_counter()
    sweep = Sweep([RunSpec(name="first", rounds=1, **FAST)], out=tmp_path / "restart", parallel=1).run()
    first_wall = sweep.wall_s
    time.sleep(3.0)  # idle
    sweep.add(RunSpec(name="later", rounds=1, **FAST))  # restarts the finished sweep
    sweep.wait(timeout=120)
    elapsed = time.perf_counter() - began
    assert sweep.status == {"finished": 2}
    assert first_wall < sweep.wall_s < elapsed - 2.5, (first_wall, sweep.wall_s, elapsed)
    assert json.loads((tmp_path / "restart" / "comparison.json").read_text())["timing"]["runs"] == 2


def test_dask_executor_runs_a_sweep_and_streams_rounds(tmp_path):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        streamed = []
        specs = [RunSpec(name="d1", rounds=2, **FAST), RunSpec(name="d2", rounds=2, strategy="FedMedian", **FAST)]
        sweep = Sweep(specs, out=tmp_path / "dask", executor=client.get_executor(), parallel=2)
        sweep.on_round(streamed.append).run()
    assert sweep.status == {"finished": 2}
    assert len(streamed) == 4
    assert set(sweep.worker_pids()) == {0, 1}, "'started' events arrived live from the dask workers"
    assert all(_summary(tmp_path / "dask" / n)["status"] == "finished" for n in ("d1", "d2"))


@pytest.mark.parametrize("name", ["robustness.toml", "experiment.toml"])
def test_shipped_examples_are_valid(name):
    specs = load_experiment(Path(__file__).parents[1] / "examples" / name)
    assert specs and len({s.label for s in specs}) == len(specs)


def test_ctrl_c_on_the_command_stops_cleanly_and_keeps_rounds(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "velocity.cli", "sweep", "--strategies", "FedAvg,FedMedian,TrimmedMean", "--rounds", "2000"]
    cmd += ["--clients", "6", "--dataset", FAST["dataset"], "--model", "mlp-16", "--parallel", "2", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and sum(len(read_rounds_csv(p, growing=True)) for p in out.glob("*/rounds.csv")) < 4:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    printed, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, printed
    assert "Every finished round is kept" in printed
    summaries = [json.loads(p.read_text()) for p in out.glob("*/summary.json")]
    assert {s["status"] for s in summaries} == {"cancelled"} and len(summaries) >= 2
    for s in summaries:
        run_dir = next(p.parent for p in out.glob("*/summary.json") if json.loads(p.read_text()) == s)
        assert s["rounds_completed"] == len(read_rounds_csv(run_dir / "rounds.csv"))
    assert sum(s["rounds_completed"] for s in summaries) >= 4


def test_a_sweep_mixes_federated_and_decentralised_runs(tmp_path):
    toml = tmp_path / "mixed.toml"
    toml.write_text(
        f'[shared]\ndataset = "{FAST["dataset"]}"\nmodel_id = "mlp-16"\nnum_clients = 7\nrounds = 3\nlr = 0.1\nbatch_size = 16\n'
        'malicious_fraction = 0.28\nattacks = ["sign_flip"]\n'
        '[[runs]]\nname = "federated-median"\nstrategy = "FedMedian"\n'
        '[[runs]]\nname = "monna"\ntopology = "decentralised"\nstrategy = "nearest_neighbour"\nclient_momentum = 0.9\n'
        '[[runs]]\nname = "gossip"\ntopology = "decentralised"\nstrategy = "FedAvg"\n'
        '[[runs]]\nname = "gossip-clean"\ntopology = "decentralised"\nstrategy = "FedAvg"\nattacks = []\nmalicious_fraction = 0.0\n'
    )
    out = tmp_path / "mixed"
    assert cli_main(["sweep", str(toml), "--out", str(out), "--quiet"]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert {e["run"] for e in comparison["ranking"]} == {"federated-median", "monna", "gossip", "gossip-clean"}
    for name in ("monna", "gossip"):
        rows = read_rounds_csv(out / name / "rounds.csv")
        assert [r["num_malicious"] for r in rows] == [2, 2, 2] and all("sign_flip" in r["attacks"] for r in rows)
    gossip = next(e for e in comparison["ranking"] if e["run"] == "gossip")
    assert gossip["loss_change_vs_clean"] is not None, "the decentralised clean twin is found"


def test_decentralised_specs_are_checked():
    with pytest.raises(ValueError, match="Expected topology 'decentralised' for strategy 'nearest_neighbour'"):
        RunSpec(strategy="nearest_neighbour")
    with pytest.raises(ValueError, match=r"Expected n − f > f \(an honest majority\) for a decentralised run, got n = 10, f = 5"):
        RunSpec(topology="decentralised", strategy="nearest_neighbour", malicious_fraction=0.5, attacks=["sign_flip"])
    with pytest.raises(ValueError, match="Expected an update attack for a decentralised run"):
        RunSpec(topology="decentralised", malicious_fraction=0.2, attacks=["label_flipping"])
    with pytest.raises(ValueError, match="Krum cannot aggregate the 7 models a worker receives with f = 3"):
        RunSpec(topology="decentralised", strategy="Krum", malicious_fraction=0.3, attacks=["ipm"])
    # These two passed the spec and failed later in the worker: both fail before anything runs.
    with pytest.raises(ValueError, match=r"Expected an aggregator without a server optimiser \(there is no server\), got FedAdam"):
        RunSpec(topology="decentralised", strategy="FedAdam")
    with pytest.raises(ValueError, match="Expected an attack for the f = 2 Byzantine workers"):
        RunSpec(topology="decentralised", malicious_fraction=0.2)
    # MoNNA's aliases name its mixer; gossip's name the mean
    assert RunSpec(topology="decentralised", strategy="MoNNA").strategy == "nearest_neighbour"
    assert RunSpec(topology="decentralised", strategy="gossip").strategy == "average"


def test_the_shipped_example_experiments_are_valid():
    root = Path(__file__).resolve().parents[1] / "examples"
    for path in sorted(root.glob("*.toml")):
        assert load_experiment(path), f"Expected runs in {path.name}"
    # the bucketing paper's experiment 3 (docs/fidelity.md): 25 clients of which 5 malicious, label-sorted shards
    specs = load_experiment(root / "karimireddy2022.toml")
    assert len(specs) == 13 * 7 * 3
    attacked = [s for s in specs if s.attacks]
    assert {(s.num_clients, s.num_malicious, s.partition, s.rounds, s.client_momentum) for s in attacked} == {(25, 5, "shard", 600, 0.9)}


def test_a_quantity_skewed_sweep_runs_from_flags(tmp_path):
    """Clients of power-law sizes, with and without a Dirichlet label skew, in one sweep."""
    out = tmp_path / "quantity"
    flags = ["--dataset", FAST["dataset"], "--model-id", "mlp-16", "--num-clients", "6", "--rounds", "2", "--partition", "quantity"]
    # 192 training examples over 6 clients of sizes ∝ (k + 1)^-1.5: the smallest gets 7
    assert cli_main(["sweep", *flags, "--size-skew", "1.5", "--out", str(tmp_path / "refused"), "--quiet"]) == 2
    assert not (tmp_path / "refused").exists(), "refused before any run started"
    flags += ["--min-partition-size", "5"]
    assert cli_main(["sweep", *flags, "--size-skew", "1.5", "--alphas", "0.5,inf", "--out", str(out), "--quiet"]) == 0
    configs = [json.loads(p.read_text()) for p in sorted(out.glob("*/config.json"))]
    assert {(c["partition"], c["alpha"], c["size_skew"]) for c in configs} == {("quantity", 0.5, 1.5), ("quantity", "inf", 1.5)}
    assert all(_summary(p.parent)["status"] == "finished" for p in out.glob("*/config.json"))


def test_a_natural_partition_runs_by_its_column_and_too_few_groups_are_refused_first(tmp_path):
    """Each writer's examples on one client (synthetic-mnist's writer column); fewer writers
    than clients is an error before any run starts."""
    flags = ["--model-id", "mlp-16", "--num-clients", "6", "--rounds", "2", "--partition", "natural", "--partition-by", "writer"]
    few = ["--dataset", "synthetic-mnist(samples=600, writers=4)"]
    assert cli_main(["sweep", *flags, *few, "--out", str(tmp_path / "refused"), "--quiet"]) == 2
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "natural"
    assert cli_main(["sweep", *flags, "--dataset", "synthetic-mnist(samples=600, writers=20)", "--out", str(out), "--quiet"]) == 0
    (config,) = [json.loads(p.read_text()) for p in out.glob("*/config.json")]
    assert (config["partition"], config["partition_by"]) == ("natural", "writer")
    assert _summary(next(out.glob("*/config.json")).parent)["status"] == "finished"
