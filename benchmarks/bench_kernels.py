#!/usr/bin/env python
"""Time velocity's aggregation kernels against numpy, Flower and ByzFL on the same matrices.

Every rule is run on the same seeded float32 ``n × d`` matrix (one row per client) by

* ``velocity``     -- ``velocity.aggregate(x, spec)`` (the Rust core, through the public API);
* ``numpy``        -- a plain numpy reference written here (np.average, np.median,
                      np.partition, Gram-matrix Krum, Weiszfeld, centered clipping);
* ``flwr``         -- Flower's server-side functions in ``flwr.server.strategy.aggregate``,
                      fed the list of ``([layer], num_examples)`` tuples they expect;
* ``byzfl``        -- ByzFL's aggregator classes called on the numpy matrix;
* ``byzfl-torch``  -- the same classes called on ``torch.from_numpy(x)`` (ByzFL's torch path).

Each measurement is one warm-up call followed by ``--repeat`` timed calls (``time.perf_counter``);
the median is reported. A peer call predicted to take longer than ``--limit`` seconds (linear
extrapolation in ``d`` from a smaller ``d`` of the same rule, implementation and ``n``) is skipped
and the reason printed. Ratios are ``peer_time / velocity_time`` (above 1: velocity is faster).

A second table measures the FedAvg read bandwidth: ``n·d·4`` bytes over the time of velocity's
FedAvg, next to ``x.sum(axis=0)`` in numpy on the same matrix. A third puts each rule against
issue 19's goal 1: the ratio to the fastest peer library, and velocity's time over a physical
bound timed on the same matrix (reads as numpy's ``x.sum(axis=0)``, Gram matrices as numpy's
``x @ x.T``; ``--no-bounds`` skips it). ``--order blocks`` times each implementation's calls back
to back instead of in turns.

Peers that are not installed show ``n/a``; ``—`` means the peer has no such rule.

    python benchmarks/bench_kernels.py                 # full grid (takes a while)
    python benchmarks/bench_kernels.py --quick         # small subset, a minute or so
    python benchmarks/bench_kernels.py --rules krum,median --n 50 --d 1000000 --markdown
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _threads_from_argv(argv: list[str]) -> int | None:
    """``--threads N`` must act before numpy (OpenBLAS), torch and rayon start their pools."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return None


THREADS = _threads_from_argv(sys.argv[1:])
if THREADS:
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)
# OpenBLAS's idle threads spin for 2^28 cycles (about 0.1 s) after each call, on the cores the
# next implementation's call needs: velocity's CenteredClipping took 63 ms right after the numpy
# reference's `coef @ diff` and 35 ms after anything else. 2^20 cycles (about 0.3 ms) keeps the
# spinning inside the call that started it.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

import numpy as np

import velocity

try:  # Flower's server-side aggregation functions
    from flwr.server.strategy import aggregate as flwr_agg
except Exception as exc:
    flwr_agg = None
    FLWR_ERROR = f"{type(exc).__name__}: {exc}"
else:
    FLWR_ERROR = ""

try:
    import byzfl
except Exception as exc:
    byzfl = None
    BYZFL_ERROR = f"{type(exc).__name__}: {exc}"
else:
    BYZFL_ERROR = ""

try:
    import torch
except Exception:
    torch = None
else:
    if THREADS:
        torch.set_num_threads(THREADS)

IMPLS = ("velocity", "numpy", "flwr", "byzfl", "byzfl-torch")
PEERS = IMPLS[1:]
LIBRARY_PEERS = ("flwr", "byzfl", "byzfl-torch")  # the "other libraries" (numpy is our own reference)

# ----------------------------------------------------------------------------------------------
# Per-case parameters
# ----------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One (n, d) matrix and the parameters every implementation of a rule shares."""

    x: np.ndarray
    counts: np.ndarray  # per-client sample counts (FedAvg weights)
    f: int  # Byzantine clients tolerated (Krum, MultiKrum, Bulyan)
    trim: int  # values trimmed per side (TrimmedMean)
    beta: float  # trimmed fraction per side
    tau: float  # centered-clipping radius
    cc_iters: int  # centered-clipping iterations
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. Weiszfeld iteration count

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d(self) -> int:
        return self.x.shape[1]

    def sliced(self, d: int) -> Case:
        """The same case on the first ``d`` columns (a contiguous copy), for cost probes."""
        return Case(
            np.ascontiguousarray(self.x[:, :d]), self.counts, self.f, self.trim, self.beta, self.tau, self.cc_iters, dict(self.extra)
        )


def flwr_results(c: Case, counts: np.ndarray | None = None) -> list[tuple[list[np.ndarray], int]]:
    """Flower's input: one ``([layer], num_examples)`` tuple per client (rows are views, no copy)."""
    cnt = np.ones(c.n, dtype=np.int64) if counts is None else counts
    return [([c.x[i]], int(cnt[i])) for i in range(c.n)]


# ----------------------------------------------------------------------------------------------
# numpy references
# ----------------------------------------------------------------------------------------------


def np_sq_dists(x: np.ndarray) -> np.ndarray:
    """Pairwise squared L2 distances via the float32 Gram matrix (BLAS), as float64."""
    g = (x @ x.T).astype(np.float64)
    sq = np.diag(g)
    d2 = sq[:, None] + sq[None, :] - 2.0 * g
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def np_krum_scores(d2: np.ndarray, members: np.ndarray, f: int) -> np.ndarray:
    """Sum of squared distances to the n-f-2 nearest other members (Blanchard et al.)."""
    r = len(members)
    k = min(max(r - f - 2, 1), r - 1)
    sub = d2[np.ix_(members, members)]
    np.fill_diagonal(sub, np.inf)  # exclude self
    return np.sort(sub, axis=1)[:, :k].sum(axis=1)


def np_fedavg(c: Case) -> np.ndarray:
    return np.average(c.x, axis=0, weights=c.counts)


def np_median(c: Case) -> np.ndarray:
    return np.median(c.x, axis=0)


def np_trimmed_mean(c: Case) -> np.ndarray:
    k, n = c.trim, c.n
    if k == 0:
        return c.x.mean(axis=0)
    part = np.partition(c.x, (k, n - k - 1), axis=0)
    return part[k : n - k].mean(axis=0)


def np_krum(c: Case) -> np.ndarray:
    scores = np_krum_scores(np_sq_dists(c.x), np.arange(c.n), c.f)
    return c.x[int(np.argmin(scores))].copy()


def np_multikrum(c: Case) -> np.ndarray:
    scores = np_krum_scores(np_sq_dists(c.x), np.arange(c.n), c.f)
    chosen = np.argsort(scores, kind="stable")[: c.n - c.f]
    return c.x[chosen].mean(axis=0)


def np_bulyan(c: Case) -> np.ndarray:
    n, f = c.n, c.f
    d2 = np_sq_dists(c.x)
    remaining = list(range(n))
    chosen: list[int] = []
    theta = n - 2 * f
    while len(chosen) < theta:
        pos = 0 if len(remaining) == 1 else int(np.argmin(np_krum_scores(d2, np.asarray(remaining), f)))
        chosen.append(remaining.pop(pos))
    sel = c.x[chosen]
    beta = theta - 2 * f
    med = np.median(sel, axis=0)
    idx = np.argpartition(np.abs(sel - med), beta - 1, axis=0)[:beta]
    return np.take_along_axis(sel, idx, axis=0).mean(axis=0)


def np_geomed(c: Case, nu: float = 1e-6, tol: float = 1e-6, max_iter: int = 100) -> np.ndarray:
    """Smoothed Weiszfeld from the mean, same stopping rule as velocity's GeometricMedian."""
    x = c.x
    alpha = np.full(c.n, 1.0 / c.n)

    def objective(dists: np.ndarray) -> float:
        return float(np.sum(alpha * np.where(dists >= nu, dists, dists * dists / (2 * nu) + nu / 2)))

    z = alpha.astype(np.float32) @ x
    dists = np.linalg.norm(x - z, axis=1).astype(np.float64)
    obj = objective(dists)
    iters = 0
    while iters < max_iter:
        iters += 1
        b = alpha / np.maximum(dists, nu)
        z = (b / b.sum()).astype(np.float32) @ x
        dists = np.linalg.norm(x - z, axis=1).astype(np.float64)
        new_obj = objective(dists)
        converged = abs(obj - new_obj) <= tol * max(abs(new_obj), sys.float_info.min)
        obj = new_obj
        if converged:
            break
    c.extra["weiszfeld_iters"] = iters
    return z


def np_centered_clipping(c: Case) -> np.ndarray:
    v = np.zeros(c.d, dtype=np.float32)
    for _ in range(c.cc_iters):
        diff = c.x - v
        dist = np.linalg.norm(diff, axis=1)
        coef = np.minimum(1.0, c.tau / np.maximum(dist, 1e-30)) / c.n
        v = v + coef.astype(np.float32) @ diff
    return v


def np_meamed(c: Case) -> np.ndarray:
    """Per coordinate, the mean of the n − f values closest to the median (Xie et al. 2018)."""
    dist = np.abs(c.x - np.median(c.x, axis=0))
    idx = np.argpartition(dist, c.n - c.f - 1, axis=0)[: c.n - c.f]
    return np.take_along_axis(c.x, idx, axis=0).mean(axis=0)


def _subsets(c: Case) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(c.n), c.n - c.f))


def np_mda(c: Case) -> np.ndarray:
    """The mean of the n − f rows of smallest diameter, over every subset."""
    d2 = np_sq_dists(c.x)
    best = min(_subsets(c), key=lambda s: d2[np.ix_(s, s)].max())
    return c.x[list(best)].mean(axis=0)


def np_smea(c: Case) -> np.ndarray:
    """The mean of the n − f rows whose covariance has the smallest top eigenvalue (exact, from
    the subset's Gram matrix)."""
    g = (c.x @ c.x.T).astype(np.float64)

    def top(s: tuple[int, ...]) -> float:
        k = len(s)
        sub = g[np.ix_(s, s)]
        centring = np.eye(k) - 1.0 / k
        return float(np.linalg.eigvalsh(centring @ sub @ centring)[-1])

    return c.x[list(min(_subsets(c), key=top))].mean(axis=0)


def np_caf(c: Case) -> np.ndarray:
    """CAF with the exact top eigenpair of the weighted covariance (via the n × n Gram matrix)."""
    x = c.x.astype(np.float64)
    n, f = c.n, c.f
    weights = np.ones(n)
    best = (np.inf, x.mean(axis=0))
    g = x @ x.T
    for _ in range(4 * n):
        if weights.sum() <= n - 2 * f:
            break
        p = weights / weights.sum()
        centring = np.eye(n) - p[None, :]
        r = centring @ g @ centring.T  # residual inner products
        sq = np.sqrt(p)
        lam, vec = np.linalg.eigh(sq[:, None] * r * sq[None, :])
        if lam[-1] < best[0]:
            best = (lam[-1], p @ x)
        if lam[-1] <= 0:
            break
        tau = (r @ (sq * vec[:, -1])) ** 2 / lam[-1]
        weights = weights * np.maximum(1 - tau / tau.max(), 0)
    return best[1]


# ----------------------------------------------------------------------------------------------
# Rules: one entry per rule, one callable per implementation (None: the peer has no such rule)
# ----------------------------------------------------------------------------------------------


@dataclass
class Rule:
    key: str
    title: str
    velocity_spec: Callable[[Case], str]
    velocity_weights: bool
    numpy: Callable[[Case], Any]
    flwr: Callable[[Case], Any] | None
    byzfl: Callable[[Case, Any], Any] | None  # (case, x as numpy or torch) -> aggregate
    # extra memory each implementation allocates, in multiples of x (for the memory guard)
    mem: dict[str, float] = field(default_factory=dict)
    # the largest n timed: the subset searches (MDA, SMEA) enumerate C(n, f) subsets in ByzFL and
    # in the numpy reference
    max_n: int | None = None
    # why a peer's numbers may differ from the reference (shown beside the agreement)
    note: str = ""
    # the physical bound of issue 19's goal 1 as (reads of x, Gram matrices): reads are timed as
    # numpy's ``x.sum(axis=0)``, a Gram matrix as numpy's SGEMM ``x @ x.T``; None: no bound stated
    bound: Callable[[Case], tuple[int, int]] | None = None


def _byz(name: str, **kw: Any) -> Callable[[Case, Any], Any]:
    def call(c: Case, x: Any) -> Any:
        cls = getattr(byzfl, name)
        params = {k: (v(c) if callable(v) else v) for k, v in kw.items()}
        return cls(**params)(x)  # fresh instance: CenteredClipping keeps state across calls

    return call


RULES: dict[str, Rule] = {
    r.key: r
    for r in [
        Rule(
            "fedavg",
            "FedAvg",
            lambda c: "FedAvg",
            True,
            np_fedavg,
            lambda c: flwr_agg.aggregate(flwr_results(c, c.counts)),
            _byz("Average"),
            mem={"numpy": 2.2, "flwr": 1.2, "byzfl": 0.1, "byzfl-torch": 0.1},
            bound=lambda c: (1, 0),
        ),
        Rule(
            "median",
            "FedMedian",
            lambda c: "FedMedian",
            False,
            np_median,
            lambda c: flwr_agg.aggregate_median(flwr_results(c)),
            _byz("Median"),
            mem={"numpy": 1.1, "flwr": 2.1, "byzfl": 1.1, "byzfl-torch": 2.5},
            bound=lambda c: (1, 0),
        ),
        Rule(
            "trimmed_mean",
            "TrimmedMean",
            lambda c: f"TrimmedMean(beta={c.beta})",
            False,
            np_trimmed_mean,
            lambda c: flwr_agg.aggregate_trimmed_avg(flwr_results(c), proportiontocut=c.beta),
            _byz("TrMean", f=lambda c: c.trim),
            mem={"numpy": 2.1, "flwr": 3.1, "byzfl": 1.1, "byzfl-torch": 3.1},
            bound=lambda c: (1, 0),
        ),
        Rule(
            "krum",
            "Krum",
            lambda c: f"Krum(f={c.f})",
            False,
            np_krum,
            lambda c: flwr_agg.aggregate_krum(flwr_results(c), num_malicious=c.f, to_keep=0),
            _byz("Krum", f=lambda c: c.f),
            mem={"numpy": 0.1, "flwr": 1.1, "byzfl": 2.1, "byzfl-torch": 0.5},
            bound=lambda c: (0, 1),
        ),
        Rule(
            "multikrum",
            "MultiKrum",
            lambda c: f"MultiKrum(f={c.f}, m={c.n - c.f})",
            False,
            np_multikrum,
            lambda c: flwr_agg.aggregate_krum(flwr_results(c), num_malicious=c.f, to_keep=c.n - c.f),
            _byz("MultiKrum", f=lambda c: c.f),
            mem={"numpy": 1.1, "flwr": 2.1, "byzfl": 3.1, "byzfl-torch": 1.5},
            bound=lambda c: (1, 1),  # the Gram matrix, then the chosen rows averaged
        ),
        Rule(
            "bulyan",
            "Bulyan",
            lambda c: f"Bulyan(f={c.f})",
            False,
            np_bulyan,
            lambda c: flwr_agg.aggregate_bulyan(flwr_results(c), num_malicious=c.f, aggregation_rule=flwr_agg.aggregate_krum, to_keep=0),
            None,
            mem={"numpy": 5.1, "flwr": 6.1},
            bound=lambda c: (1, 1),  # the Gram matrix, then the coordinate-wise stage
        ),
        Rule(
            "geomed",
            "GeometricMedian",
            lambda c: "GeometricMedian",
            False,
            np_geomed,
            None,
            _byz("GeometricMedian", nu=1e-6, T=lambda c: int(c.extra.get("weiszfeld_iters", 2)) + 1),
            mem={"numpy": 1.1, "byzfl": 2.1, "byzfl-torch": 2.1},
            bound=lambda c: (1 + int(c.extra.get("weiszfeld_iters", 1)), 0),  # the mean, then a read per step
        ),
        Rule(
            "cclip",
            "CenteredClipping",
            lambda c: f"CenteredClipping(tau={c.tau}, iters={c.cc_iters})",
            False,
            np_centered_clipping,
            None,
            _byz("CenteredClipping", tau=lambda c: float(c.tau), L=lambda c: c.cc_iters),
            mem={"numpy": 1.1, "byzfl": 2.1, "byzfl-torch": 2.1},
            bound=lambda c: (1 + c.cc_iters, 0),  # the first distances, then a read per iteration
        ),
        Rule(
            "meamed",
            "Meamed",
            lambda c: f"Meamed(f={c.f})",
            False,
            np_meamed,
            None,
            _byz("Meamed", f=lambda c: c.f),
            mem={"numpy": 3.1, "byzfl": 3.1, "byzfl-torch": 3.1},
            bound=lambda c: (1, 0),
        ),
        Rule(
            "mda",
            "MDA",
            lambda c: f"MDA(f={c.f})",
            False,
            np_mda,
            None,
            _byz("MDA", f=lambda c: c.f),
            mem={"numpy": 1.1, "byzfl": 1.1, "byzfl-torch": 1.1},
            max_n=20,
        ),
        Rule(
            "smea",
            "SMEA",
            lambda c: f"SMEA(f={c.f})",
            False,
            np_smea,
            None,
            _byz("SMEA", f=lambda c: c.f),
            mem={"numpy": 1.1, "byzfl": 1.1, "byzfl-torch": 1.1},
            max_n=20,
            note="ByzFL estimates the eigenvalue with one random power step: its subset can differ",
        ),
        Rule(
            "caf",
            "CAF",
            lambda c: f"CAF(f={c.f})",
            False,
            np_caf,
            None,
            _byz("CAF", f=lambda c: c.f),
            mem={"numpy": 1.1, "byzfl": 2.1, "byzfl-torch": 2.1},
            note="ByzFL estimates the eigenpair with one random power step: its weights can differ",
        ),
    ]
}


def impl_callable(rule: Rule, impl: str, c: Case) -> Callable[[], Any] | str:
    """The zero-argument call to time, or why there is none ('n/a' / '—')."""
    if impl == "velocity":
        spec = rule.velocity_spec(c)
        w = c.counts.astype(np.float64) if rule.velocity_weights else None
        return lambda: velocity.aggregate(c.x, spec, weights=w)
    if impl == "numpy":
        return lambda: rule.numpy(c)
    if impl == "flwr":
        if flwr_agg is None:
            return "n/a"
        return (lambda: rule.flwr(c)) if rule.flwr else "—"
    if impl in ("byzfl", "byzfl-torch"):
        if byzfl is None or (impl == "byzfl-torch" and torch is None):
            return "n/a"
        if rule.byzfl is None:
            return "—"
        xin = torch.from_numpy(c.x) if impl == "byzfl-torch" else c.x
        return lambda: rule.byzfl(c, xin)
    raise ValueError(impl)


def as_vector(out: Any) -> np.ndarray:
    if isinstance(out, list):  # Flower: one array per layer
        out = out[0]
    if torch is not None and isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float64).ravel()


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    status: str  # "ok", "skip", "n/a", "—", "err"
    seconds: float = math.nan
    reps: int = 0
    note: str = ""
    max_abs_diff: float = math.nan  # against the numpy reference
    times: list[float] = field(default_factory=list)  # every timed call, seconds
    warmup: float = math.nan  # the untimed-for-the-median first call, seconds


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


ORDERS = ("round-robin", "blocks")


def measure(
    fns: dict[str, Callable[[], Any]],
    repeat: int,
    limit: float,
    budget: float,
    log: Callable[[str], None] = lambda m: None,
    order: str = "round-robin",
) -> tuple[dict[str, Result], dict[str, np.ndarray]]:
    """Warm each call up once, then time them in turns (``round-robin``), so that every
    implementation sees the same machine load, or each implementation's calls one after the
    other (``blocks``, as ``timeit`` does); a call slower than ``limit`` keeps its warm-up time
    only, and no call spends more than about ``budget`` seconds in timed repetitions. Returns the
    results and the warm-up outputs (as float64 vectors, for the agreement check).

    The order matters for calls of a few milliseconds on a virtual machine: in turns, a
    multi-threaded call often follows a peer's single-threaded one, during which the other
    virtual CPU sat idle, and waking it can take milliseconds (see docs/benchmarks.md)."""
    results: dict[str, Result] = {}
    outputs: dict[str, np.ndarray] = {}
    times: dict[str, list[float]] = {}
    reps: dict[str, int] = {}
    warm: dict[str, float] = {}
    for k, fn in fns.items():
        gc.collect()
        try:
            t, out = timed(fn)
        except Exception as exc:
            first = str(exc).splitlines()[0][:120] if str(exc) else ""
            results[k] = Result("err", note=f"{type(exc).__name__}: {first}")
            log(f"  {k:12s} error: {results[k].note}")
            continue
        outputs[k] = as_vector(out)
        del out
        warm[k] = t
        if t > limit:
            results[k] = Result("ok", t, 1, f"warm-up only ({t:.1f} s > {limit:g} s)", times=[t], warmup=t)
        else:
            times[k] = []
            reps[k] = max(1, min(repeat, int(budget // max(t, 1e-9))))
    gc.collect()
    if order == "blocks":
        for k, want in reps.items():
            times[k] = [timed(fns[k])[0] for _ in range(want)]
    else:
        for r in range(max(reps.values(), default=0)):
            for k, want in reps.items():
                if r < want:
                    times[k].append(timed(fns[k])[0])
    for k, ts in times.items():
        note = f"{len(ts)} of {repeat} reps (warm-up {warm[k]:.1f} s, budget {budget:g} s)" if len(ts) < repeat else ""
        results[k] = Result("ok", statistics.median(ts), len(ts), note, times=ts, warmup=warm[k])
    return results, outputs


def mem_available() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


class Predictor:
    """Skip peer calls that would run past the limit, extrapolating linearly in d."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.history: dict[tuple[str, str, int], list[tuple[int, float]]] = {}

    def record(self, key: tuple[str, str, int], d: int, t: float) -> None:
        self.history.setdefault(key, []).append((d, t))

    def predict(self, key: tuple[str, str, int], d: int) -> tuple[float, int] | None:
        below = [(dd, t) for dd, t in self.history.get(key, []) if dd <= d]
        if not below:
            return None
        dd, t = max(below)
        return t * d / dd, dd

    def check(self, rule: Rule, impl: str, c: Case, log: Callable[[str], None]) -> str | None:
        """Why to skip (``None``: run it). Probes smaller d (10k, 100k, ...) when there is no history."""
        key = (rule.key, impl, c.n)
        if self.predict(key, c.d) is None:
            dp = 10_000
            while dp < c.d // 5:
                probe = c.sliced(dp)
                fn = impl_callable(rule, impl, probe)
                if isinstance(fn, str):
                    return None
                try:
                    t, _ = timed(fn)
                except Exception:
                    return None
                log(f"    probe {impl:12s} d={dp:>10,d}: {t:8.3f} s")
                self.record(key, dp, t)
                if t * c.d / dp > self.limit:
                    break
                dp *= 10
        pred = self.predict(key, c.d)
        if pred is not None and pred[0] > self.limit:
            return f"predicted {pred[0]:.0f} s per call > {self.limit:g} s (linear in d from {pred[1]:,d})"
        return None


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def make_case(n: int, d: int, seed: int, f_frac: float, beta: float, tau: float, cc_iters: int) -> Case:
    rng = np.random.default_rng([seed, n, d])
    x = rng.standard_normal((n, d), dtype=np.float32)
    x += rng.standard_normal(d, dtype=np.float32) * np.float32(0.1)  # common drift, like real updates
    counts = rng.integers(50, 500, size=n)
    f = max(1, int(f_frac * n))
    while n < 4 * f + 3 and f > 0:  # Bulyan's n >= 4f + 3 (the strictest requirement here)
        f -= 1
    return Case(x, counts, f, math.floor(beta * n), beta, tau, cc_iters)


def run_cell(
    rule: Rule, c: Case, impls: list[str], args: argparse.Namespace, pred: Predictor, log: Callable[[str], None]
) -> dict[str, Result]:
    results: dict[str, Result] = {}
    fns: dict[str, Callable[[], Any]] = {}
    if rule.max_n is not None and c.n > rule.max_n:
        why = f"n = {c.n} > {rule.max_n}: C(n, f) subsets"
        log(f"  skipped: {why}")
        return {impl: Result("skip", note=why) for impl in impls}
    x_bytes = c.x.nbytes
    # numpy first (always, as the reference; it also fixes the Weiszfeld iteration count ByzFL gets)
    for impl in ["numpy", "velocity"] + [i for i in impls if i not in ("numpy", "velocity")]:
        fn = impl_callable(rule, impl, c)
        if isinstance(fn, str):
            results[impl] = Result(fn)
            continue
        need = rule.mem.get(impl, 1.0) * x_bytes
        if need > 0.6 * mem_available():
            results[impl] = Result("skip", note=f"needs ~{need / 2**30:.1f} GiB, {mem_available() / 2**30:.1f} GiB available")
            log(f"  {impl:12s} skipped: {results[impl].note}")
            continue
        if impl not in ("velocity", "numpy"):
            why = pred.check(rule, impl, c, log)
            if why:
                results[impl] = Result("skip", note=why)
                log(f"  {impl:12s} skipped: {why}")
                continue
        if impl == "numpy":  # run once before the others so that c.extra is filled in
            fn()
        fns[impl] = fn
    measured, outputs = measure(fns, args.repeat, args.limit, args.budget, log, args.order)
    for impl, res in measured.items():
        results[impl] = res
        if res.status == "ok":
            pred.record((rule.key, impl, c.n), c.d, res.seconds)
            log(f"  {impl:12s} {fmt_time(res.seconds):>10s}  ({res.reps} reps){'  ' + res.note if res.note else ''}")
    ref = outputs.get("numpy")
    for impl, vec in outputs.items():
        if ref is not None and vec.shape == ref.shape:
            results[impl].max_abs_diff = float(np.max(np.abs(vec - ref)))
    if "numpy" not in impls:
        results.pop("numpy", None)
    return {k: results[k] for k in IMPLS if k in results}


def bandwidth_cell(c: Case, args: argparse.Namespace) -> dict[str, float]:
    xs = c.x
    w = c.counts.astype(np.float64)
    res, _ = measure(
        {
            "numpy_sum": lambda: xs.sum(axis=0),
            "velocity": lambda: velocity.aggregate(xs, "FedAvg"),
            "velocity_weighted": lambda: velocity.aggregate(xs, "FedAvg", weights=w),
        },
        args.repeat,
        args.limit,
        args.budget,
        order=args.order,
    )
    return {"bytes": float(xs.nbytes), **{k: r.seconds for k, r in res.items()}}


def bound_cell(c: Case, args: argparse.Namespace) -> dict[str, float]:
    """The two yardsticks of goal 1's physical bound on this matrix: one read of it (numpy's
    ``x.sum(axis=0)``) and its Gram matrix (numpy's SGEMM ``x @ x.T``)."""
    xs = c.x
    res, _ = measure({"read": lambda: xs.sum(axis=0), "gram": lambda: xs @ xs.T}, args.repeat, args.limit, args.budget, order=args.order)
    return {k: r.seconds for k, r in res.items()}


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------


def fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "—"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def fmt_cell(r: Result | None) -> str:
    if r is None:
        return ""
    if r.status == "ok":
        return fmt_time(r.seconds) + ("*" if r.note.startswith("warm-up only") else "")
    return {"skip": "skipped", "err": "error"}.get(r.status, r.status)


def fmt_ratio(peer: Result | None, vel: Result | None) -> str:
    if peer is None or vel is None or peer.status != "ok" or vel.status != "ok":
        return {"skip": "skipped", "err": "error", "n/a": "n/a", "—": "—"}.get(peer.status if peer else "", "")
    return f"{peer.seconds / vel.seconds:.3g}×"


def best_peer(res: dict[str, Result], names: tuple[str, ...]) -> tuple[str, Result] | None:
    ok = [(k, r) for k, r in res.items() if k in names and r.status == "ok"]
    return min(ok, key=lambda kr: kr[1].seconds) if ok else None


def render_table(headers: list[str], rows: list[list[str]], markdown: bool, right: set[int]) -> str:
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if i in right else ":---" for i in range(len(headers))) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def main_table(cells: list[tuple[Rule, int, int, dict[str, Result]]], impls: list[str], markdown: bool) -> str:
    peers = [p for p in PEERS if p in impls]
    headers = ["rule", "n", "d", "velocity"] + peers + [f"×{p}" for p in peers] + ["×best lib", "best lib"]
    rows = []
    for rule, n, d, res in cells:
        vel = res.get("velocity")
        bp = best_peer(res, LIBRARY_PEERS)
        row = [rule.title, str(n), f"{d:,}", fmt_cell(vel)]
        row += [fmt_cell(res.get(p)) for p in peers]
        row += [fmt_ratio(res.get(p), vel) for p in peers]
        row += [fmt_ratio(bp[1], vel) if bp else "—", bp[0] if bp else "—"]
        rows.append(row)
    return render_table(headers, rows, markdown, right=set(range(1, len(headers) - 1)))


def agreement_table(cells: list[tuple[Rule, int, int, dict[str, Result]]], impls: list[str], markdown: bool) -> str:
    others = [p for p in IMPLS if p in impls and p != "numpy"]
    headers = ["rule", "n", "d"] + [f"{p} max abs Δ" for p in others]
    rows = []
    for rule, n, d, res in cells:
        row = [rule.title, str(n), f"{d:,}"]
        for p in others:
            r = res.get(p)
            row.append(
                f"{r.max_abs_diff:.2g}"
                if r is not None and math.isfinite(r.max_abs_diff)
                else (fmt_cell(r) if r is not None and r.status != "ok" else "")
            )
        rows.append(row)
    table = render_table(headers, rows, markdown, right=set(range(1, len(headers))))
    notes = {rule.title: rule.note for rule, _, _, _ in cells if rule.note}
    return table + "".join(f"\n\n{title}: {note}." for title, note in notes.items())


Bound = tuple[int, int, float]  # (reads of x, Gram matrices, seconds)


def goals_table(cells: list[tuple[Rule, int, int, dict[str, Result]]], bounds: dict[tuple[str, int, int], Bound], markdown: bool) -> str:
    """Issue 19's goal 1 per rule: ≥ 10× the fastest peer library, within 3× of the bound."""
    headers = ["rule", "n", "d", "velocity", "best lib", "×best lib", "≥ 10×", "bound", "bound is", "velocity / bound", "≤ 3×"]
    rows = []
    for rule, n, d, res in cells:
        vel = res.get("velocity")
        if vel is None or vel.status != "ok" or (rule.key, n, d) not in bounds:
            continue
        bp = best_peer(res, LIBRARY_PEERS)
        ratio = bp[1].seconds / vel.seconds if bp else math.nan
        reads, grams, bound = bounds[(rule.key, n, d)]
        parts = ([f"{reads} read{'s' * (reads > 1)}"] if reads else []) + (["Gram"] if grams else [])
        rows.append(
            [
                rule.title,
                str(n),
                f"{d:,}",
                fmt_cell(vel),
                f"{bp[0]} {fmt_time(bp[1].seconds)}" if bp else "—",
                f"{ratio:.3g}×" if bp else "—",
                ("yes" if ratio >= 10 else "no") if bp else "—",
                fmt_time(bound),
                " + ".join(parts),
                f"{vel.seconds / bound:.2f}×",
                "yes" if vel.seconds <= 3 * bound else "no",
            ]
        )
    return render_table(headers, rows, markdown, right={1, 2, 3, 5, 7, 9})


def bandwidth_table(bw: list[tuple[int, int, dict[str, float]]], markdown: bool) -> str:
    headers = [
        "n",
        "d",
        "MiB read",
        "numpy x.sum(0)",
        "GB/s",
        "velocity FedAvg",
        "GB/s",
        "% of numpy",
        "velocity FedAvg (weighted)",
        "% of numpy",
    ]
    rows = []
    for n, d, b in bw:

        def gbs(t: float, b: dict = b) -> float:
            return b["bytes"] / t / 1e9

        rows.append(
            [
                str(n),
                f"{d:,}",
                f"{b['bytes'] / 2**20:.0f}",
                fmt_time(b["numpy_sum"]),
                f"{gbs(b['numpy_sum']):.2f}",
                fmt_time(b["velocity"]),
                f"{gbs(b['velocity']):.2f}",
                f"{100 * b['numpy_sum'] / b['velocity']:.0f}%",
                fmt_time(b["velocity_weighted"]),
                f"{100 * b['numpy_sum'] / b['velocity_weighted']:.0f}%",
            ]
        )
    return render_table(headers, rows, markdown, right=set(range(len(headers))))


def core_hash() -> str:
    """Short hash of the loaded Rust extension, so a rebuild during a run is noticed."""
    with open(velocity._core.__file__, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]


def environment() -> dict[str, str]:
    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:
            return "not installed"

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pool_threads, pinned = velocity._core.thread_pool()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "python": platform.python_version(),
        "velocity": f"{velocity.__version__} (_core sha256 {core_hash()})",
        "vector code": "{} (the CPU has {})".format(*velocity._core.cpu_capability()),
        "velocity threads": f"{pool_threads} ({'pinned, one per CPU' if pinned else 'not pinned'})",
        "numpy": np.__version__,
        "torch": version("torch") + (f" ({torch.get_num_threads()} threads)" if torch is not None else ""),
        "flwr": version("flwr") if flwr_agg is not None else f"n/a ({FLWR_ERROR})",
        "byzfl": version("byzfl") if byzfl is not None else f"n/a ({BYZFL_ERROR})",
        "threads": str(THREADS) if THREADS else "library defaults",
        "OPENBLAS_THREAD_TIMEOUT": os.environ["OPENBLAS_THREAD_TIMEOUT"],
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def parse_ints(s: str) -> list[int]:
    return [int(float(v.replace("_", ""))) for v in s.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small subset: n=10,50, d=100,000, 3 reps, no 10M FedAvg (explicit flags win)")
    p.add_argument("--rules", default=",".join(RULES), help=f"comma list from {','.join(RULES)}")
    p.add_argument("--n", default="10,50,100", help="client counts (comma list)")
    p.add_argument("--d", default="100000,1000000", help="update sizes (comma list; 1e6 and 1_000_000 work)")
    p.add_argument("--big-d", default="10000000", help="extra d for FedAvg only (comma list; empty or 0 to skip)")
    p.add_argument("--big-n", default="10,50,100", help="n for the --big-d FedAvg cases (memory permitting)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma list from {','.join(PEERS)}")
    p.add_argument("--repeat", type=int, default=5, help="timed calls per measurement (median reported)")
    p.add_argument("--limit", type=float, default=30.0, help="skip a peer call predicted to exceed this (s)")
    p.add_argument("--budget", type=float, default=60.0, help="cap on timed seconds per measurement (fewer reps)")
    p.add_argument("--f-frac", type=float, default=0.1, help="f = max(1, f_frac·n) (lowered to keep n >= 4f+3)")
    p.add_argument("--beta", type=float, default=0.1, help="TrimmedMean fraction trimmed per side")
    p.add_argument("--tau", type=float, default=1.0, help="CenteredClipping radius")
    p.add_argument("--cc-iters", type=int, default=3, help="CenteredClipping iterations")
    p.add_argument(
        "--threads", type=int, default=None, help="thread count for velocity (rayon), numpy's BLAS and torch (default: their own)"
    )
    p.add_argument(
        "--order",
        choices=ORDERS,
        default="round-robin",
        help="time the implementations' calls in turns (default) or each one's calls back to back",
    )
    p.add_argument("--no-bounds", action="store_true", help="skip timing the physical bounds (x.sum(0), x @ x.T)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action="store_true", help="emit markdown tables")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = p.parse_args(argv)

    if args.quick:  # only where the corresponding flag was left at its default
        for name, value in (("n", "10,50"), ("d", "100000"), ("big_d", ""), ("repeat", 3)):
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
    rules = [RULES[r.strip()] for r in args.rules.split(",") if r.strip()]
    ns, ds = parse_ints(args.n), parse_ints(args.d)
    big_ds = [v for v in parse_ints(args.big_d) if v > 0] if args.big_d else []
    big_ns = parse_ints(args.big_n)
    impls = ["velocity"] + [q.strip() for q in args.peers.split(",") if q.strip()]
    for q in impls:
        if q not in IMPLS:
            p.error(f"unknown peer {q!r}; choose from {', '.join(PEERS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    env = environment()
    cmd = "python " + " ".join([os.path.relpath(__file__)] + (sys.argv[1:] if argv is None else argv))
    log(f"# {cmd}")
    for k, v in env.items():
        log(f"# {k}: {v}")

    grid: list[tuple[int, int, list[Rule]]] = []
    for n in ns:
        for d in ds:
            grid.append((n, d, rules))
    if big_ds and any(r.key == "fedavg" for r in rules):
        for n in big_ns:
            for d in big_ds:
                grid.append((n, d, [RULES["fedavg"]]))
    grid.sort(key=lambda t: (t[0], t[1]))  # ascending d per n feeds the skip predictor

    def write_json() -> None:
        """Raw results so far (rewritten after every cell, so an interrupted run keeps them)."""
        if not args.json:
            return
        payload = {
            "command": cmd,
            "environment": env,
            "cells": [{"rule": r.title, "n": n, "d": d, "results": {k: vars(v) for k, v in res.items()}} for r, n, d, res in cells],
            "bandwidth": [{"n": n, "d": d, **b} for n, d, b in bw],
            "bounds": [{"rule": k, "n": n, "d": d, "reads": r, "grams": g, "seconds": t} for (k, n, d), (r, g, t) in bounds.items()],
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=1, default=float)

    pred = Predictor(args.limit)
    cells: list[tuple[Rule, int, int, dict[str, Result]]] = []
    bw: list[tuple[int, int, dict[str, float]]] = []
    bounds: dict[tuple[str, int, int], Bound] = {}
    t_start = time.perf_counter()
    for n, d, rs in grid:
        if 3.2 * n * d * 4 > 0.6 * mem_available():
            log(f"## n={n} d={d:,}: skipped (matrix of {n * d * 4 / 2**30:.1f} GiB does not fit the memory guard)")
            continue
        case = make_case(n, d, args.seed, args.f_frac, args.beta, args.tau, args.cc_iters)
        log(f"## n={n} d={d:,} (f={case.f}, trim={case.trim}) loadavg {os.getloadavg()[0]:.2f}")
        yard: dict[str, float] = {}  # the bound's yardsticks, timed once per matrix when a rule needs them
        for rule in rs:
            log(f" {rule.title}")
            res = run_cell(rule, case, impls, args, pred, log)
            cells.append((rule, n, d, res))
            if rule.key == "fedavg":
                bw.append((n, d, bandwidth_cell(case, args)))
            if rule.bound is not None and not args.no_bounds:
                yard = yard or bound_cell(case, args)
                reads, grams = rule.bound(case)
                bounds[(rule.key, n, d)] = (reads, grams, reads * yard["read"] + grams * yard["gram"])
            write_json()
        if "weiszfeld_iters" in case.extra:
            log(f"  (numpy Weiszfeld stopped after {case.extra['weiszfeld_iters']} iterations)")
        del case
        gc.collect()
    env["loadavg_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    env["wall"] = f"{time.perf_counter() - t_start:.0f} s"
    if core_hash() not in env["velocity"]:
        env["WARNING"] = f"velocity/_core changed on disk during the run (now {core_hash()})"

    md = args.markdown
    out = []
    h = (lambda s: f"\n### {s}\n") if md else (lambda s: f"\n== {s} ==")
    out.append(h("Environment"))
    out += [f"- {k}: {v}" if md else f"{k:12s} {v}" for k, v in env.items()]
    out.append(h("Median time per call; ratio = peer time / velocity time (>1: velocity faster)"))
    out.append(main_table(cells, impls, md))
    out.append("\n`*` one call only (the warm-up ran past the limit)." if md else "* one call only")
    notes = [(r.title, n, d, impl, res.status, res.note) for r, n, d, rr in cells for impl, res in rr.items() if res.note]
    if notes:
        out.append(h("Skipped, failed or shortened measurements"))
        out += [f"- {t} n={n} d={d:,} {impl}: {st} — {note}" for t, n, d, impl, st, note in notes]
    out.append(h("Agreement: max abs difference of the output from the numpy reference"))
    out.append(agreement_table(cells, impls, md))
    if bounds:
        out.append(h("Issue 19, goal 1: ≥ 10× the fastest peer library, within 3× of the physical bound"))
        out.append(goals_table(cells, bounds, md))
        out.append(
            f"\nbound = reads × numpy's `x.sum(axis=0)` + Gram matrices × numpy's `x @ x.T` on the same matrix (timed {args.order})."
        )
    if bw:
        out.append(h("FedAvg read bandwidth (n·d·4 bytes / time) vs numpy x.sum(axis=0)"))
        out.append(bandwidth_table(bw, md))
    gm = [c for c in cells if c[0].key == "geomed"]
    if gm:
        out.append(h("Notes"))
        out.append(
            "- GeometricMedian: velocity runs its defaults (nu=1e-6, tol=1e-6, max_iter=100); the numpy "
            "reference replicates that stopping rule; ByzFL runs a fixed T = (numpy iterations + 1) "
            "from zero, the same number of passes over x."
        )
    print("\n".join(out))

    write_json()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
