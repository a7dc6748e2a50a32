"""Seconds per federated round: VelocityFL batched (torch.func vmap) vs looped clients, and the same
job in Flower's simulation (Ray), on this machine, side by side.

The job: the MNIST-shaped built-in set (``synthetic-mnist``, 1×28×28, 10 classes), an MLP
784→128→64→10, every client trains one local epoch of SGD with batch 64, FedAvg. Per-round time
excludes start-up: VelocityFL reports the mean of rounds 2…R (round 1 warms up); Flower's is
(T(R + 1 rounds) − T(1 round)) / R, which removes Ray's start-up.

    python benchmarks/bench_rounds.py [--clients 10 100] [--rounds 3] [--no-flower]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from velocity.data import load_federated
from velocity.models import build_model
from velocity.server import FederatedServer
from velocity.training import LocalTrainingConfig

DATASET = "synthetic-mnist(samples=12000)"
MODEL = "mlp-128-64"
LOCAL = LocalTrainingConfig(lr=0.05, batch_size=64, local_epochs=1)


def velocity_per_round(data, *, batched: bool, rounds: int) -> float:
    server = FederatedServer(data, model_id=MODEL, strategy="FedAvg", local=LOCAL, batched=batched, seed=0)
    history = server.run(rounds + 1)
    return float(np.mean([r.round_ms for r in history[1:]])) / 1000.0


def flower_per_round(data, *, rounds: int) -> float:
    """The same job as Flower users write it: a NumPyClient training a torch model with SGD."""
    import flwr as fl
    from flwr.client import NumPyClient
    from flwr.server.strategy import FedAvg

    x_train, y_train = data.x_train, data.y_train
    parts = data.client_indices
    shape, classes = data.input_shape, data.num_classes

    class Client(NumPyClient):
        def __init__(self, cid: int) -> None:
            self.idx = torch.from_numpy(parts[cid])
            self.model = build_model(MODEL, input_shape=shape, num_classes=classes, seed=0)

        def get_parameters(self, config):
            return [p.detach().numpy().copy() for p in self.model.state_dict().values()]

        def fit(self, parameters, config):
            keys = list(self.model.state_dict())
            self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in zip(keys, parameters, strict=True)})
            opt = torch.optim.SGD(self.model.parameters(), lr=LOCAL.lr)
            x, y = x_train[self.idx], y_train[self.idx]
            order = torch.randperm(len(y))
            for start in range(0, len(y), LOCAL.batch_size):
                b = order[start : start + LOCAL.batch_size]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(self.model(x[b]), y[b]).backward()
                opt.step()
            return self.get_parameters({}), len(y), {}

    def client_fn(context):
        return Client(int(context.node_config["partition-id"])).to_client()

    n = len(parts)

    def run(num_rounds: int) -> float:
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_available_clients=n, min_evaluate_clients=0)
        start = time.perf_counter()
        fl.simulation.start_simulation(
            client_fn=client_fn,
            num_clients=n,
            config=fl.server.ServerConfig(num_rounds=num_rounds),
            strategy=strategy,
            client_resources={"num_cpus": 1, "num_gpus": 0.0},
            ray_init_args={"num_cpus": os.cpu_count(), "include_dashboard": False, "log_to_driver": False},
        )
        return time.perf_counter() - start

    one = run(1)
    many = run(rounds + 1)
    return (many - one) / rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-flower", action="store_true")
    args = ap.parse_args()

    print(f"{DATASET}, {MODEL}, batch {LOCAL.batch_size}, 1 local epoch, FedAvg; torch threads {torch.get_num_threads()}")
    print(
        "| clients | velocity batched (s/round) | velocity loop (s/round) | Flower simulation (s/round) | loop / batched | Flower / batched |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.clients:
        data = load_federated(DATASET, num_clients=n, seed=0)
        batched = velocity_per_round(data, batched=True, rounds=args.rounds)
        loop = velocity_per_round(data, batched=False, rounds=args.rounds)
        flower = None
        if not args.no_flower:
            try:
                flower = flower_per_round(data, rounds=args.rounds)
            except ImportError as e:
                print(f"(Flower skipped: {e})")
        f_cell = f"{flower:.3f}" if flower is not None else "n/a"
        f_ratio = f"{flower / batched:.1f}×" if flower is not None else "n/a"
        print(f"| {n} | {batched:.3f} | {loop:.3f} | {f_cell} | {loop / batched:.1f}× | {f_ratio} |", flush=True)


if __name__ == "__main__":
    main()
