"""What a federated round costs around its aggregation kernel: ``Orchestrator.step`` against
``velocity.aggregate`` of the same matrix with the same rule, side by side in one process.

The step does what a round needs besides the kernel: the honest clients' mean (how far the
attack moved the aggregate), every update's norm, the defence's trace (which rows it used), the
server optimiser and the round record. Goal (issue 19): step ≤ 1.2 × kernel at n = 1000,
d = 100k. ``kernel_ms`` is the core's own timing of attack + aggregation + server step inside the
step.

    python benchmarks/bench_round_overhead.py [--n 1000] [--d 109386] [--rules FedAvg,FedMedian,TrimmedMean] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import velocity
from velocity import Orchestrator


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (first-touch of the output pages, rayon's pool)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--d", type=int, default=109_386, help="default: the parameters of the MLP 784-128-64-10")
    p.add_argument("--rules", default="FedAvg,FedMedian,TrimmedMean,MultiKrum")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n, args.d)).astype(np.float32)
    f = max(1, args.n // 10)
    print(f"n = {args.n}, d = {args.d} ({x.nbytes / 2**20:.0f} MiB float32), f = {f} for the rules that take it; median of {args.repeats}")
    print("\n| rule | aggregate | Orchestrator.step | step / aggregate | kernel_ms in the step |\n|---|---:|---:|---:|---:|")
    for rule in args.rules.split(","):
        text = f"{rule}(f={f})" if rule in ("TrimmedMean", "MultiKrum", "Krum", "Meamed", "Bulyan") else rule
        kernel = median_ms(lambda text=text: velocity.aggregate(x, text), args.repeats)
        orch = Orchestrator(text, num_clients=args.n, seed=0)
        kernel_ms: list[float] = []

        def step(orch=orch, kernel_ms=kernel_ms) -> None:
            kernel_ms.append(orch.step(x).kernel_ms)

        full = median_ms(step, args.repeats)
        print(f"| {text} | {kernel:.1f} ms | {full:.1f} ms | {full / kernel:.2f}× | {np.median(kernel_ms):.1f} ms |")


if __name__ == "__main__":
    main()
