"""The ``device`` key: which device a name resolves to on machines with and without GPUs (the GPU
machines are simulated by patching torch's queries), the errors for names and devices that do not
exist, and that runs carry the key from a spec, the CLI and a sweep to the trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from velocity.sweep.spec import RunSpec, check_runnable
from velocity.training.device import available_devices, device_name, resolve_device


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA GPUs (the current one: 0) and no MPS, as torch would report it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def apple(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_auto_takes_cuda_then_mps_then_the_cpu(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device(None) == torch.device("cuda", 0)


def test_auto_on_a_mac_and_on_a_machine_without_a_gpu(apple, monkeypatch):
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpu", torch.device("cpu")),
        ("cuda", torch.device("cuda", 0)),
        ("CUDA:1", torch.device("cuda", 1)),
        (" cuda:0 ", torch.device("cuda", 0)),
    ],
)
def test_explicit_devices(two_gpus, name, expected):
    assert resolve_device(name) == expected
    assert resolve_device(expected) == expected  # a torch.device is taken as is


def test_a_device_the_machine_lacks_is_an_error_never_the_cpu(two_gpus, monkeypatch):
    with pytest.raises(ValueError, match=r"^Expected a CUDA device index below 2 \(the GPUs this machine has\), got 'cuda:2'$"):
        resolve_device("cuda:2")
    with pytest.raises(ValueError, match=r"^Expected a machine with Apple's MPS for device 'mps', got none here"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^Expected a machine with a CUDA GPU for device 'cuda:0', got none here"):
        resolve_device("cuda:0")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:-1", "tpu", "", "cuda 1"])
def test_names_that_are_not_devices(bad):
    with pytest.raises(
        ValueError, match=r"^Expected device as 'auto' \(CUDA, then Apple MPS, then the CPU\), 'cpu', 'cuda', 'cuda:N' or 'mps', got "
    ):
        device_name(bad)
    with pytest.raises(ValueError, match="Expected device as"):
        resolve_device(bad)


def test_the_spec_key_is_checked_for_its_form_and_left_out_of_the_runs_identity(no_gpu):
    spec = RunSpec(device="CUDA:1")  # a spec written for a GPU machine still loads on this one
    assert spec.device == "cuda:1"
    assert spec.spec_hash == RunSpec().spec_hash and spec.config_key == RunSpec().config_key
    with pytest.raises(ValueError, match=r"device\n.*Expected device as .*got 'gpu'"):
        RunSpec(device="gpu")
    # ... but a sweep refuses it before any run starts, naming the run
    with pytest.raises(ValueError, match=r"^FedAvg \| none \| α=iid \| seed=0: Expected a machine with a CUDA GPU for device 'cuda:1'"):
        check_runnable([spec])


def test_the_devices_a_machine_offers(two_gpus, apple, monkeypatch):
    assert available_devices() == ["auto", "cpu", "mps"]  # (apple patched last: MPS, no CUDA)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert available_devices() == ["auto", "cpu", "cuda:0", "cuda:1"]


def test_the_panel_queues_runs_on_the_device_chosen_and_refuses_one_the_machine_lacks(no_gpu):
    from velocity.panel.state import Controls, specs_from_controls
    from velocity.sweep import grid

    (base,) = grid(strategies=["FedAvg"], attacks=["none"], dataset="blobs", model_id="logreg", rounds=2, num_clients=4)
    new, skipped = specs_from_controls(base, Controls(("FedMedian",), ("none",), None, 0.2, 2, 4, device="cpu"), [base])
    assert [s.device for s in new] == ["cpu"] and skipped == []
    same, _ = specs_from_controls(base, Controls(("FedMedian",), ("none",), None, 0.2, 2, 4), [base])
    assert [s.device for s in same] == [base.device]  # no choice: the sweep's own
    new, skipped = specs_from_controls(base, Controls(("FedMedian",), ("none",), None, 0.2, 2, 4, device="cuda:1"), [base])
    assert new == [] and len(skipped) == 1
    assert "Expected a machine with a CUDA GPU for device 'cuda:1', got none here" in skipped[0]


def test_a_sweep_for_a_missing_gpu_fails_before_running(no_gpu, tmp_path):
    from velocity import Sweep

    with pytest.raises(ValueError, match="Expected a machine with a CUDA GPU for device 'cuda'"):
        Sweep([RunSpec(rounds=1, device="cuda")], out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_the_cli_refuses_a_device_name_in_one_line(capsys, tmp_path):
    from velocity.cli import main

    assert main(["sweep", "--strategies", "FedAvg", "--rounds", "1", "--device", "gpu", "--out", str(tmp_path / "s")]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "Expected device as" in out[0] and "'gpu'" in out[0], out
    assert not (tmp_path / "s").exists()


def test_a_run_trains_on_its_device_and_records_it(tmp_path):
    """On this machine "cpu" and "auto" name the same device when torch sees no GPU: the run's
    model lives there, and summary.json says where the run trained."""
    from velocity import Sweep

    sweep = Sweep([RunSpec(dataset="blobs", rounds=2, num_clients=4, device="cpu")], out=tmp_path / "s", parallel=1)
    sweep.run()
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "s").glob("*/summary.json")]
    assert summary["status"] == "finished" and summary["device"] == "cpu"


def test_the_federated_server_and_monna_put_model_and_data_on_the_device():
    from velocity.data import load_federated
    from velocity.decentralised import MonnaSimulation
    from velocity.models import build_model
    from velocity.server import FederatedServer

    data = load_federated("blobs", num_clients=4, seed=0)
    server = FederatedServer(data, device="cpu")
    assert server.device == torch.device("cpu")
    assert all(p.device == server.device for p in server.model.parameters())
    record = server.run_round()
    assert record.round == 1
    reference = FederatedServer(data)  # "auto": the same numbers where it resolves to the CPU
    if reference.device.type == "cpu":
        assert reference.run_round().global_loss == record.global_loss
    sim = MonnaSimulation(
        model=build_model("mlp-32", input_shape=data.input_shape, num_classes=data.num_classes),
        data=data,
        n=4,
        f=0,
        learning_rate=0.1,
        aggregator="average",
        device="cpu",
    )
    assert sim.device == torch.device("cpu")
    with pytest.raises(ValueError, match="Expected device as"):
        FederatedServer(data, device="gpu")


def test_sweep_workers_deal_runs_over_the_gpus_and_share_their_memory(two_gpus, monkeypatch):
    """With two GPUs and four workers, "auto" and "cuda" runs take the GPUs in turn, two workers
    to a GPU, each capped at half its memory; runs pinned to one GPU split it four ways; one
    worker alone is not capped; the CPU is never capped."""
    from velocity.sweep.worker import worker_device

    caps: list[tuple[float, torch.device]] = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda share, device: caps.append((share, device)))
    assert [worker_device("auto", i, 4) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert {share for share, _ in caps} == {0.5}
    caps.clear()
    assert worker_device("cuda:1", 3, 4) == "cuda:1" and caps == [(0.25, torch.device("cuda", 1))]
    caps.clear()
    assert worker_device("cuda", 5, 1) == "cuda:1" and caps == []
    assert worker_device("cpu", 0, 4) == "cpu" and caps == []


def test_a_matrix_on_the_host_is_handed_to_the_core_without_a_copy():
    from velocity.training.device import HostCopy

    m = torch.randn(3, 5)
    assert np.shares_memory(HostCopy()(m), m.numpy())
