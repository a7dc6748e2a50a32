"""Rounds per second on each device, side by side in one process: the same federated job on the
CPU and on the GPU (CUDA or Apple MPS), and the `examples/robustness.toml` sweep on each.

Jobs (every client trains one local epoch of SGD, batch 32, FedAvg; round 1 warms up and is not
counted):

- ``mlp``: MNIST-shaped data (``synthetic-mnist``, 1×28×28), MLP 784→128→64→10, 100 clients;
- ``cnn``: CIFAR-shaped data (3×32×32, 10 classes, class-dependent means plus noise, generated
  here: timing only), the registry's ``cnn32``, 100 clients.

    python benchmarks/bench_gpu.py                       # cpu and the machine's GPU, if any
    python benchmarks/bench_gpu.py --devices cpu,cuda:0 --rounds 3 --no-sweep

On a machine without a GPU it measures the CPU alone and says so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from velocity.data import FederatedDataset, load_federated
from velocity.data.partition import label_counts
from velocity.server import FederatedServer
from velocity.training import LocalTrainingConfig
from velocity.training.device import resolve_device

LOCAL = LocalTrainingConfig(lr=0.05, batch_size=32, local_epochs=1, momentum=0.9)
ROOT = Path(__file__).resolve().parent.parent


def cifar_shaped(clients: int, per_client: int = 100, seed: int = 0) -> FederatedDataset:
    """3×32×32 inputs whose class shifts the mean of every pixel: learnable, and the shape of
    CIFAR-10. For timing only."""
    rng = np.random.default_rng(seed)
    n = clients * per_client
    y = rng.integers(0, 10, size=n + 1000)
    x = (rng.normal(size=(len(y), 3, 32, 32)) + 0.3 * y[:, None, None, None] / 10).astype(np.float32)
    parts = np.array_split(rng.permutation(n), clients)
    return FederatedDataset(
        name="cifar-shaped",
        x_train=torch.from_numpy(x[:n]),
        y_train=torch.from_numpy(y[:n]),
        x_test=torch.from_numpy(x[n:]),
        y_test=torch.from_numpy(y[n:]),
        client_indices=list(parts),
        num_classes=10,
        partition="iid",
        label_counts=label_counts(y[:n], list(parts), 10),
    )


def seconds_per_round(data: FederatedDataset, model_id: str, device: str, rounds: int) -> tuple[float, str]:
    """Mean seconds per round after the first, and where they went (training, aggregation and
    evaluation, in ms)."""
    server = FederatedServer(data, model_id=model_id, strategy="FedAvg", local=LOCAL, device=device, seed=0)
    timed = server.run(rounds + 1)[1:]
    parts = " / ".join(f"{np.mean([getattr(r, k) for r in timed]):.0f}" for k in ("train_ms", "aggregate_ms", "eval_ms"))
    return float(np.mean([r.round_ms for r in timed])) / 1000.0, parts


def sweep_seconds(device: str, out: Path) -> float:
    """Wall time of ``velocity sweep`` on `examples/robustness.toml` with ``device`` added to its
    ``[shared]`` keys (a fresh process, as a user runs it)."""
    text = (ROOT / "examples" / "robustness.toml").read_text()
    assert "\n[shared]\n" in text, "examples/robustness.toml has no [shared] table"
    experiment = out / f"robustness-{device.replace(':', '-')}.toml"
    experiment.write_text(text.replace("\n[shared]\n", f'\n[shared]\ndevice = "{device}"\n', 1))
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "velocity.cli", "sweep", str(experiment), "--out", str(experiment.with_suffix("")), "--quiet"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", help="comma-separated devices (default: cpu and the machine's GPU, if any)")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per job (after one warm-up round)")
    p.add_argument("--no-sweep", action="store_true", help="skip the examples/robustness.toml sweep")
    args = p.parse_args()

    auto = resolve_device("auto")
    devices = args.devices.split(",") if args.devices else ["cpu", *([str(auto)] if auto.type != "cpu" else [])]
    for d in devices:
        resolve_device(d)  # a device this machine lacks: one clear line before anything runs
    if len(devices) == 1 and devices[0] == "cpu":
        print("No GPU on this machine (torch sees neither CUDA nor MPS): measuring the CPU alone.")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads")
    if auto.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(auto)}")

    jobs = {
        "mlp": (load_federated("synthetic-mnist(samples=12000)", num_clients=args.clients, seed=0), "mlp-128-64"),
        "cnn": (cifar_shaped(args.clients), "cnn32"),
    }
    rows = []
    for job, (data, model_id) in jobs.items():
        measured = {d: seconds_per_round(data, model_id, d, args.rounds) for d in devices}
        times = {d: t for d, (t, _) in measured.items()}
        for d, (t, parts) in measured.items():
            rows.append(
                (
                    f"{job} ({model_id}), {args.clients} clients",
                    d,
                    f"{t:.3f} s",
                    parts,
                    f"{1 / t:.2f}",
                    f"{times['cpu'] / t:.1f}×" if "cpu" in times else "—",
                )
            )
    if not args.no_sweep:
        with tempfile.TemporaryDirectory() as out:
            times = {d: sweep_seconds(d, Path(out)) for d in devices}
        for d, t in times.items():
            rows.append(
                ("examples/robustness.toml sweep", d, f"{t:.1f} s (wall)", "—", "—", f"{times['cpu'] / t:.1f}×" if "cpu" in times else "—")
            )

    print("\n| job | device | per round | train / aggregate / eval ms | rounds/s | vs cpu |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
