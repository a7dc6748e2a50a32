"""What DP-SGD costs a federated round, by how each example's gradient is clipped, side by side in
one process: no DP, ghost clipping (the default where it applies, ``velocity/training/dp_sgd.py``)
and per-example gradients (forced, for comparison), each with the clients trained together
(batched) and one by one.

Job: synthetic-mnist (offline, MNIST-shaped), 100 clients, one local epoch of batch 32, σ = 1,
C = 1; the number is the local training time of a round (``RoundRecord.train_ms``), the median of
the rounds after the first.

    python benchmarks/bench_dp.py                                # logreg, mlp-32, mlp-64, mlp, cnn28
    python benchmarks/bench_dp.py --models mlp --rounds 5

A batched per-example step holds clients × batch × parameters float32 gradients; cells that would
hold more than ``--per-example-cap`` GiB are skipped, and convolutional models train one by one
on the CPU (batched convolutions are slower there), so their batched cells are skipped too.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import numpy as np
import torch

from velocity.data import load_federated
from velocity.models import build_model
from velocity.privacy import ClientDP
from velocity.server import FederatedServer
from velocity.training import LocalTrainingConfig, dp_sgd

DP = ClientDP(noise_multiplier=1.0, max_grad_norm=1.0)


def round_ms(data, model_id: str, local: LocalTrainingConfig, batched: bool | None, rounds: int) -> float:
    server = FederatedServer(data, model_id=model_id, local=local, seed=0, batched=batched)
    server.run(1)
    return float(np.median([server.run_round().train_ms for _ in range(rounds)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="logreg,mlp-32,mlp-64,mlp,cnn28", help="comma list of registry model ids")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds after the first (median reported)")
    ap.add_argument("--per-example-cap", type=float, default=1.0, help="GiB of per-example gradients a batched step may hold")
    args = ap.parse_args()
    data = load_federated("synthetic-mnist", num_clients=args.clients, seed=0)
    plain, private = LocalTrainingConfig(local_epochs=1), LocalTrainingConfig(local_epochs=1, dp=DP)
    print(
        f"synthetic-mnist, {args.clients} clients, batch {private.batch_size}, 1 local epoch, σ = 1, C = 1; torch threads {torch.get_num_threads()}"
    )
    print("local training per round (ms), median of rounds 2 onwards\n")
    print("| model (parameters) | no DP | ghost, batched | ghost, one by one | per-example, batched | per-example, one by one |")
    print("|---|---:|---:|---:|---:|---:|")
    for model_id in args.models.split(","):
        model = build_model(model_id, input_shape=data.input_shape, num_classes=data.num_classes)
        parameters = sum(p.numel() for p in model.parameters())
        convolutional = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        per_example_bytes = 4 * args.clients * private.batch_size * parameters
        cells = [f"{round_ms(data, model_id, plain, None, args.rounds):,.0f}"]
        for ghost in (True, False):
            # per-example: every lookup of ghost_clipping_applies (the trainers', the server's) says no
            forced = mock.patch.object(dp_sgd, "ghost_clipping_applies", lambda _m: False)
            with contextlib.nullcontext() if ghost else forced:
                for batched in (True, False):
                    if batched and (convolutional or (not ghost and per_example_bytes > args.per_example_cap * 2**30)):
                        cells.append("")
                        continue
                    cells.append(f"{round_ms(data, model_id, private, batched, args.rounds):,.0f}")
        print(f"| {model_id} ({parameters:,}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - t0:.0f} s)")
