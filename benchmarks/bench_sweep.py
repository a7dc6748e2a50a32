"""Wall time of a 2-run sweep against one run, on this machine (issue target: ≤ 1.15×).

Both go through ``Sweep`` (process pool, spawn), so both pay for starting workers; the single
run gets every core (threads = cores), the pair one core per run. Also prints the same run in
this process without a pool, to show the pool's own overhead.

    python benchmarks/bench_sweep.py [--rounds 30] [--dataset digits] [--model mlp] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from velocity.sweep import RunSpec, Sweep
from velocity.sweep.manifest import available_cpus


def timed_sweep(specs: list[RunSpec]) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        sweep = Sweep(specs, out=out).run()
        wall = time.perf_counter() - start
        if sweep.status.get("finished") != len(specs):
            raise RuntimeError(f"runs did not finish: {sweep.status}")
    return wall


def timed_in_process(spec: RunSpec) -> float:
    from velocity.runs import build_trainer

    start = time.perf_counter()
    server, _ = build_trainer(spec)
    server.run(spec.rounds)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    shared = {
        "dataset": args.dataset,
        "model_id": args.model,
        "rounds": args.rounds,
        "num_clients": args.clients,
        "lr": 0.1,
        "momentum": 0.9,
    }
    one = [RunSpec(name="one", strategy="FedAvg", **shared)]
    two = [RunSpec(name="a", strategy="FedAvg", **shared), RunSpec(name="b", strategy="FedMedian", **shared)]
    timed_sweep(one)  # warm the file caches and the data set decode
    singles, pairs, inproc = [], [], []
    for _ in range(args.repeat):  # interleaved, so drifts in machine load hit both
        singles.append(timed_sweep(one))
        pairs.append(timed_sweep(two))
        inproc.append(timed_in_process(one[0]))
    s, p, i = statistics.median(singles), statistics.median(pairs), statistics.median(inproc)
    print(f"{available_cpus()} cores; {args.dataset}, {args.model}, {args.clients} clients, {args.rounds} rounds; median of {args.repeat}")
    print("| case | wall (s) |\n|---|---:|")
    print(f"| one run, in this process (no pool) | {i:.2f} |")
    print(f"| sweep of 1 run | {s:.2f} |")
    print(f"| sweep of 2 runs, 2 parallel | {p:.2f} |")
    print(f"\n2-run sweep / 1-run sweep = {p / s:.2f}×  (target ≤ 1.15×; serial would be 2×)")


if __name__ == "__main__":
    main()
