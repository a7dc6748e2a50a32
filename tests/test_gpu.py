"""On a CUDA GPU: training there computes what it computes on the CPU, and the server, MoNNA and a
sweep's workers train there. Skipped on machines without one (CI has none); ``tests/test_device.py``
checks the device choice itself everywhere, with GPUs simulated."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from velocity.models import build_model
from velocity.training import ClientBatchPlan, LocalTrainingConfig, flatten_params, train_clients_batched, train_clients_loop

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda", 0)
CFG = LocalTrainingConfig(lr=0.05, batch_size=16, local_epochs=2, momentum=0.9, weight_decay=1e-3, mu=0.1)


def _case(model_id: str):
    shape = (1, 28, 28) if model_id == "cnn28" else (1, 8, 8)
    g = torch.Generator().manual_seed(0)
    n = 300 if model_id == "cnn28" else 600
    x, y = torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 10, (n,), generator=g)
    idx = np.array_split(np.arange(n), 6)
    idx[2] = idx[2][:7]  # uneven clients: the batched trainer freezes those whose plan is done
    model = build_model(model_id, input_shape=shape, num_classes=10, seed=3).double()
    return model, x, y, ClientBatchPlan.make(idx, CFG, seed=5, round=1, client_ids=range(6))


@pytest.mark.parametrize("model_id", ["logreg", "mlp-32-16", "cnn28"])
def test_both_trainers_on_the_gpu_compute_what_the_cpu_computes(model_id):
    """In float64 (no TF32 there), the GPU's kernels differ from the CPU's only in their reduction
    order, so the updates agree to the bound of ``test_batched_training_matches_the_loop``:
    √(5·10⁴)·14·ε ≈ 4e-13 for updates below 1, within 1e-12; a batch or a client on the wrong
    device, a lost mask or momentum moves an update by ≥ lr·|g| ≈ 1e-4."""
    model, x, y, plan = _case(model_id)
    g = flatten_params(model)
    on_cpu = train_clients_loop(model, g, x, y, plan, CFG)
    assert on_cpu.abs().max() > 1e-4, "clients must actually move"
    model_gpu = model.to(CUDA)
    for trainer in (train_clients_loop, train_clients_batched):
        got = trainer(model_gpu, g.to(CUDA), x.to(CUDA), y.to(CUDA), plan, CFG)
        assert got.device.type == "cuda" and got.dtype == torch.float64
        torch.testing.assert_close(got.cpu(), on_cpu, atol=1e-12, rtol=0, msg=trainer.__name__)


def test_the_server_trains_on_the_gpu_as_on_the_cpu():
    """One FedAvg round of the MLP in float32 on each device. Matrix products run in full float32
    on both (TF32 is off for them by default), so the rounds differ by rounding alone: about
    ε·√K ≈ 6e-6 relative for reductions of K ≲ 10⁴ terms, compounded over the clients' few
    steps; the global loss agrees within 1e-4 relative, while a client trained on other data, a
    lost update or a wrong weight changes it by percents."""
    from velocity.data import load_federated
    from velocity.server import FederatedServer

    data = load_federated("digits", num_clients=10, seed=0)
    records = []
    for device in ("cpu", "cuda"):
        server = FederatedServer(data, model_id="mlp", device=device, seed=0)
        assert all(p.device.type == device for p in server.model.parameters())
        records.append(server.run_round())
    cpu, gpu = records
    assert gpu.global_loss == pytest.approx(cpu.global_loss, rel=1e-4)
    assert gpu.accuracy == pytest.approx(cpu.accuracy, abs=0.01)  # a few of the 360 test digits


def test_monna_computes_its_gradients_on_the_gpu():
    """MoNNA's first step: the honest workers' gradients on the GPU against the CPU's, in float32
    (rounding ≈ 6e-6 relative, as above; 1e-4 allows it, a wrong minibatch moves them by O(1))."""
    from velocity.data import load_federated
    from velocity.decentralised import MonnaSimulation

    data = load_federated("digits", num_clients=5, seed=0)  # one per honest worker
    steps = []
    for device in ("cpu", "cuda"):
        sim = MonnaSimulation(
            model=build_model("mlp-32", input_shape=data.input_shape, num_classes=data.num_classes, seed=0),
            data=data,
            n=6,
            f=1,
            attack="sign_flip",
            batch_size=32,
            learning_rate=0.1,
            device=device,
            seed=0,
        )
        assert sim.device.type == device
        steps.append(sim.step())
    b, a = (s.gradients for s in steps)
    assert ((a - b).norm(dim=1) / b.norm(dim=1)).max() < 1e-4


def test_a_sweep_shares_the_gpu_between_its_workers(tmp_path):
    """Two spawned workers, each with its own CUDA context and half the GPU's memory: both runs
    finish on the GPU and say so."""
    from velocity import Sweep
    from velocity.sweep.spec import RunSpec

    specs = [RunSpec(dataset="digits", model_id="mlp", strategy=s, rounds=2, num_clients=6, device="cuda") for s in ("FedAvg", "FedMedian")]
    Sweep(specs, out=tmp_path / "s", parallel=2).run()
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "s").glob("*/summary.json")]
    assert sorted((s["status"], s["device"]) for s in summaries) == [("finished", "cuda:0")] * 2


def test_the_rounds_host_copy_reuses_one_page_locked_buffer():
    from velocity.training.device import HostCopy

    copy = HostCopy()
    m = torch.arange(12, dtype=torch.float32, device=CUDA).reshape(3, 4)
    first = copy(m)
    assert np.array_equal(first, np.arange(12, dtype=np.float32).reshape(3, 4))
    second = copy(2 * m)
    assert np.shares_memory(first, second) and np.array_equal(second, 2 * np.arange(12, dtype=np.float32).reshape(3, 4))
    assert torch.from_numpy(second).is_pinned()
    other = copy(torch.ones(2, 4, dtype=torch.float64, device=CUDA))  # another shape and dtype: a new buffer
    assert other.dtype == np.float64 and other.shape == (2, 4) and not np.shares_memory(other, second)


def test_a_python_rule_may_keep_the_matrices_of_earlier_rounds(clean_extend_registry):
    """The host buffer is reused from round to round: a Python rule gets its own copy, so the
    matrices it keeps stay those of their rounds."""
    from velocity.data import load_federated
    from velocity.extend import rule
    from velocity.server import FederatedServer

    kept: list[np.ndarray] = []

    @rule("KeepingMean")
    def keeping_mean(updates, *, f, weights):
        kept.append(updates)
        return updates.mean(axis=0)

    server = FederatedServer(load_federated("digits", num_clients=4, seed=0), model_id="logreg", strategy="KeepingMean", device="cuda")
    server.run(2)
    assert not np.shares_memory(kept[0], kept[1]) and not np.array_equal(kept[0], kept[1])
