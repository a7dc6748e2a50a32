"""manifest.json: what produced a sweep (code, environment, host, spec)."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from velocity.sweep.spec import RunSpec

PACKAGES = ("velocity-fl", "torch", "numpy", "datasets", "polars", "pydantic", "safetensors", "fsspec")


def available_cpus() -> int:
    """CPUs this process may use: the scheduler affinity, capped by a cgroup CPU quota
    (``os.cpu_count()`` ignores container quotas such as Binder's)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _lock_hash() -> str | None:
    root = Path(__file__).resolve().parents[2]
    lock = root / "Cargo.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16] if lock.exists() else None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def sweep_hash(specs: list[RunSpec]) -> str:
    return hashlib.sha256("\n".join(s.spec_hash for s in specs).encode()).hexdigest()[:16]


def build_manifest(specs: list[RunSpec], *, parallel: int) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "git_commit": _git_commit(),
        "cargo_lock_sha256": _lock_hash(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": {
            "cpus_available": available_cpus(),
            "cpu_count": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "processor": platform.processor() or platform.machine(),
        },
        "packages": versions,
        "sweep_spec_hash": sweep_hash(specs),
        "runs": len(specs),
        "parallel": parallel,
    }
