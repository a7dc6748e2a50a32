"""Seconds per federated round against the limit no simulator can beat, and against Flower's
simulation of the same job, on this machine, side by side in one process.

The job: the MNIST-shaped built-in set (``synthetic-mnist(samples=12000)``: 9,600 training
examples of 1×28×28, 10 classes), an MLP 784→128→64→10, every client trains one local epoch of
SGD with batch 32, FedAvg, all clients every round.

- **centralised**: one torch training pass over the same 9,600 examples (batch 32, the same SGD)
  plus one evaluation of the test set. A federated round trains on the same examples, so this is
  its floor.
- **velocity**: ``FederatedServer`` with the trainer it picks itself (``batched=None``), and with
  each trainer forced (batched ``torch.func.vmap`` clients, or one client after another).
- **Flower**: its simulation (Ray) of the same job, a ``NumPyClient`` training the same torch model.

Per-round times leave out start-up: centralised and velocity report the mean of rounds 2…R + 1
(round 1 warms up); Flower's is (T(R + 1 rounds) − T(1 round)) / R, which removes Ray's start-up.

    python benchmarks/bench_rounds.py [--clients 10 100] [--rounds 3] [--no-flower] [--model cnn28]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from velocity.data import load_federated
from velocity.models import build_model
from velocity.server import FederatedServer
from velocity.training import LocalTrainingConfig, evaluate

DATASET = "synthetic-mnist(samples=12000)"
MODEL = "mlp-128-64"
LOCAL = LocalTrainingConfig(lr=0.05, batch_size=32, local_epochs=1)


def centralised_per_pass(data, model_id: str, *, rounds: int) -> float:
    """One epoch of minibatch SGD over every training example, then one evaluation."""
    model = build_model(model_id, input_shape=data.input_shape, num_classes=data.num_classes, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=LOCAL.lr)
    x, y = data.x_train, data.y_train
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        order = torch.randperm(len(y))
        for s in range(0, len(y), LOCAL.batch_size):
            b = order[s : s + LOCAL.batch_size]
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
        evaluate(model, data.x_test, data.y_test)
        times.append(time.perf_counter() - start)
    return float(np.mean(times[1:]))


def velocity_per_round(data, model_id: str, *, batched: bool | None, rounds: int) -> tuple[float, bool]:
    """Mean seconds per round, and whether the clients were trained batched."""
    server = FederatedServer(data, model_id=model_id, strategy="FedAvg", local=LOCAL, batched=batched, seed=0, device="cpu")
    history = server.run(rounds + 1)
    return float(np.mean([r.round_ms for r in history[1:]])) / 1000.0, server.batched


def flower_per_round(data, model_id: str, *, rounds: int) -> float:
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
            self.model = build_model(model_id, input_shape=shape, num_classes=classes, seed=0)

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
    ap.add_argument("--model", default=MODEL, help=f"a model id of velocity.models (default {MODEL})")
    args = ap.parse_args()

    print(f"{DATASET}, {args.model}, batch {LOCAL.batch_size}, 1 local epoch, FedAvg; torch threads {torch.get_num_threads()}")
    print(
        "| clients | centralised pass + eval (s) | velocity (s/round) | trainer picked | batched | loop "
        "| Flower simulation (s/round) | velocity / centralised | Flower / velocity |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in args.clients:
        data = load_federated(DATASET, num_clients=n, seed=0)
        central = centralised_per_pass(data, args.model, rounds=args.rounds)
        auto, picked = velocity_per_round(data, args.model, batched=None, rounds=args.rounds)
        batched, _ = velocity_per_round(data, args.model, batched=True, rounds=args.rounds)
        loop, _ = velocity_per_round(data, args.model, batched=False, rounds=args.rounds)
        flower = None
        if not args.no_flower:
            try:
                flower = flower_per_round(data, args.model, rounds=args.rounds)
            except ImportError as e:
                print(f"(Flower skipped: {e})")
        f_cell = f"{flower:.3f}" if flower is not None else "n/a"
        f_ratio = f"{flower / auto:.1f}×" if flower is not None else "n/a"
        print(
            f"| {n} | {central:.3f} | {auto:.3f} | {'batched' if picked else 'loop'} | {batched:.3f} | {loop:.3f} "
            f"| {f_cell} | {auto / central:.2f}× | {f_ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
