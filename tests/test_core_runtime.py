"""The Rust core's runtime: the vector code its kernels run and the threads they run on.

`VELOCITY_CPU_CAPABILITY` (``avx512``, ``avx2``, ``baseline``) lowers the width the kernels use,
so one machine runs the code an older CPU would. Each width runs in its own process (the cap is
read once), and every rule's result must match the widest's bit for bit. The worker threads are
sized when the first kernel runs and pinned one per CPU only when they cover the process's CPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from velocity import _core

ORDER = ("baseline", "avx2", "avx512")

# Each rule with its defaults and an f, on a 50-row matrix (the streamed trimmed mean, the
# extremes lists) and a 13-row one (the sorting networks); d leaves a ragged tail of columns.
SCRIPT = r"""
import dataclasses, hashlib, json
import numpy as np
from velocity import Orchestrator, _core, aggregate
from velocity.registry import list_strategies

COMPOSED = ("NNM + Krum", "Bucketing(s=2) + FedMedian", "Clipping + CenteredClipping", "ARC + TrimmedMean")
rng = np.random.default_rng(7)
out = {"capability": _core.cpu_capability()[0], "results": {}}
for n, d, f in ((50, 40_003, 5), (13, 1_027, 2)):
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[3] *= 20.0  # an outlier to clip, trim or leave out
    x[7, : d // 2] = x[8, : d // 2]  # exact ties for the sorts and the distances
    reference = rng.standard_normal(d).astype(np.float32)
    for name in [c.name for c in list_strategies()] + list(COMPOSED):
        try:
            v = aggregate(x, name, f=f, seed=1, reference=reference)
            result = hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
        except ValueError as e:
            result = f"refused: {e}"
        out["results"][f"{name} @ n={n}"] = result
    # a round's bookkeeping too (norms, the honest mean, shares), under an attack
    for name in ("TrimmedMean", "Krum", "CenteredClipping", "GeometricMedian"):
        orch = Orchestrator(name, attacks="alie", num_clients=n, num_malicious=f, seed=3)
        fields = dataclasses.asdict(orch.step(x))
        summary = {k: v for k, v in fields.items() if not k.endswith("_ms")}  # all but the timings
        digest = hashlib.sha256(orch.global_model.tobytes()).hexdigest()
        out["results"][f"round of {name} @ n={n}"] = f"{digest} {summary!r}"  # reprs of floats are exact
print(json.dumps(out))
"""


def run_with(script: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`script` in a new interpreter with the core's variables unset but for `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in ("VELOCITY_CPU_CAPABILITY", "VELOCITY_PIN_THREADS", "RAYON_NUM_THREADS")}
    return subprocess.run([sys.executable, "-c", script], env=env | variables, capture_output=True, text=True, timeout=600)


def run_capped(capability: str | None, script: str = SCRIPT) -> subprocess.CompletedProcess[str]:
    return run_with(script) if capability is None else run_with(script, VELOCITY_CPU_CAPABILITY=capability)


def test_every_width_gives_the_widest_bits() -> None:
    in_use, detected = _core.cpu_capability()
    assert detected in ORDER and in_use in ORDER
    widths = ORDER[: ORDER.index(detected) + 1]
    runs = {}
    for width in widths:
        proc = run_capped(width)
        assert proc.returncode == 0, proc.stderr
        runs[width] = json.loads(proc.stdout)
        assert runs[width]["capability"] == width  # the cap took effect
    widest = runs[detected]["results"]
    hashed = [k for k, v in widest.items() if not v.startswith("refused")]
    assert len(hashed) >= 50, f"too few rules ran: {sorted(set(widest) - set(hashed))}"
    for width in widths:
        differ = [k for k, v in runs[width]["results"].items() if v != widest[k]]
        assert not differ, f"{width} differs from {detected} in {differ}"


@pytest.mark.parametrize("value", ["AVX2", " baseline ", ""])
def test_capability_names_are_read_leniently(value: str) -> None:
    proc = run_capped(value, "from velocity import _core; print(_core.cpu_capability()[0])")
    assert proc.returncode == 0, proc.stderr
    _, detected = _core.cpu_capability()
    expected = detected if not value.strip() else min(value.strip().lower(), detected, key=ORDER.index)
    assert proc.stdout.strip() == expected


def test_a_misspelt_capability_is_refused_on_import() -> None:
    proc = run_capped("avx-2", "import velocity")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "ValueError: VELOCITY_CPU_CAPABILITY: expected one of 'avx512', 'avx2', 'baseline', got \"avx-2\""
    )


# The pool as the kernels see it, and each worker's CPUs as Linux reports them.
POOL = r"""
import json, os
from velocity import _core
threads, pinned = _core.thread_pool()
workers = {}
for task in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{task}/comm") as fh:
        name = fh.read().strip()
    if name.startswith("velocity-"):
        workers[name] = sorted(os.sched_getaffinity(int(task)))
print(json.dumps({"threads": threads, "pinned": pinned, "workers": workers, "cpus": sorted(os.sched_getaffinity(0))}))
"""

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pinning is done on Linux only")


@linux_only
def test_one_worker_per_cpu_is_pinned_each_to_its_own() -> None:
    proc = run_with(POOL)
    assert proc.returncode == 0, proc.stderr
    pool = json.loads(proc.stdout)
    cpus = pool["cpus"]
    assert pool["threads"] == len(cpus)
    assert len(pool["workers"]) == pool["threads"]
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to pin")
    assert pool["pinned"]
    assert sorted(cpu for w in pool["workers"].values() for cpu in w) == cpus
    assert all(len(w) == 1 for w in pool["workers"].values())


@linux_only
@pytest.mark.parametrize("variables", [{"VELOCITY_PIN_THREADS": "0"}, {"RAYON_NUM_THREADS": "1"}])
def test_workers_are_left_to_the_scheduler_when_asked_or_fewer_than_the_cpus(variables: dict[str, str]) -> None:
    proc = run_with(POOL, **variables)
    assert proc.returncode == 0, proc.stderr
    pool = json.loads(proc.stdout)
    assert not pool["pinned"]
    assert all(w == pool["cpus"] for w in pool["workers"].values())


def test_threads_are_sized_by_the_first_kernel_call_not_the_import() -> None:
    """A sweep's worker imports the package, then sets RAYON_NUM_THREADS for its share."""
    script = (
        "import os, numpy as np, velocity\n"
        "from velocity import _core\n"
        "os.environ['RAYON_NUM_THREADS'] = '1'\n"
        "velocity.aggregate(np.ones((4, 8), np.float32), 'FedMedian')\n"
        "print(*_core.thread_pool())"
    )
    proc = run_with(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False"]


def test_a_misspelt_pinning_choice_is_refused_on_import() -> None:
    proc = run_with("import velocity", VELOCITY_PIN_THREADS="yes")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "ValueError: VELOCITY_PIN_THREADS: expected 'auto', '1' or '0', got \"yes\""
