"""What runs inside a worker process: one RunSpec, start to finish.

This module is imported by the pool's workers (spawn/forkserver), so everything here is a
plain top-level function of a package module, never a closure or a notebook-defined function.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

from velocity import extend
from velocity.rounds import RoundRecord, defence_metrics, late_accuracy_gain
from velocity.sweep.files import RoundsAppender, atomic_write_json, atomic_write_text, rounds_csv
from velocity.sweep.spec import RunSpec


class EventSink(Protocol):
    def put(self, item: Any) -> None: ...


def configure_threads(threads: int) -> None:
    """Size torch's and the Rust core's thread pools so workers × threads ≤ cores.

    Must run before the first kernel call in the process (rayon reads the variable once)."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)


def worker_device(device: str, index: int, workers: int) -> str:
    """The device run ``index`` of a sweep trains on, with ``workers`` runs at once: with
    ``"auto"`` or ``"cuda"`` and several GPUs, the runs take them in turn (run i on GPU i mod
    count). On a CUDA device the process's memory is capped at an equal share among the workers
    that may share that GPU, so that none can starve the others; each worker process has its own
    CUDA context (workers are spawned, never forked)."""
    import torch

    from velocity.training.device import resolve_device

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    dealt = device in ("auto", "cuda") and gpus > 1
    if dealt:
        device = f"cuda:{index % gpus}"
    resolved = resolve_device(device)
    # dealt out, each GPU serves about workers / gpus runs; pinned to one GPU, every worker shares it
    sharing = math.ceil(workers / gpus) if dealt else workers
    if resolved.type == "cuda" and sharing > 1:
        torch.cuda.set_per_process_memory_fraction(1.0 / sharing, resolved)
    return str(resolved)


def save_checkpoint(model: Any, storage: str, run_name: str, meta: dict[str, str]) -> str:
    """Write the global model as safetensors under ``storage`` (an fsspec URI, e.g.
    ``local://checkpoints`` or ``file:///data/ckpt``); returns the URI written."""
    import fsspec
    from safetensors.torch import save

    fs, root = fsspec.core.url_to_fs(storage)
    safe_name = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in run_name)
    path = f"{root.rstrip('/')}/{safe_name}.safetensors"
    fs.makedirs(root, exist_ok=True)
    blob = save({k: v.detach().contiguous() for k, v in model.state_dict().items()}, metadata=meta)
    tmp = path + ".tmp"
    with fs.open(tmp, "wb") as f:
        f.write(blob)
    fs.mv(tmp, path)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{path}"


def execute_run(
    spec_json: str,
    run_dir: str,
    index: int,
    events: EventSink | None,
    threads: int,
    python_components: bytes | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run one spec, streaming an event per round and appending it to rounds.csv.

    Returns the summary (also written to summary.json). A failure is recorded in summary.json
    with its error and traceback and returned with ``status = "failed"``; it never raises, so
    one bad run cannot take the sweep down. ``python_components`` carries the user's Python
    rules and attacks (``velocity.extend.export``) to this process; ``workers``: how many runs
    the sweep runs at once (they share the GPUs' memory, see :func:`worker_device`).
    """
    configure_threads(threads)
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C reaches the whole process group; the parent decides what stops (and records it).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    extend.install(python_components)  # the user's Python rules/attacks, before the spec names them
    spec = RunSpec.model_validate_json(spec_json)
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    appender = RoundsAppender(out / "rounds.csv")  # one line per round; the whole file rewritten at the end

    def emit(kind: str, **payload: Any) -> None:
        if events is not None:
            events.put({"type": kind, "index": index, "run": spec.label, **payload})

    emit("started", pid=os.getpid())
    summary: dict[str, Any] = {"run": spec.label, "index": index, "spec_hash": spec.spec_hash}
    try:
        from velocity.runs import build_trainer

        device = worker_device(spec.device, index, workers)
        trainer, data_name = build_trainer(spec, device=device)
        # the model's size: what a round's traffic is counted from (``velocity.results``)
        summary.update(dataset=data_name, device=device, num_parameters=sum(p.numel() for p in trainer.model.parameters()))

        def on_round(record: RoundRecord) -> None:
            row = record.row()
            rows.append(row)
            appender.append(row)
            emit("round", row=row)

        try:
            trainer.run(spec.rounds, on_round=on_round)
        finally:
            appender.close()
        if spec.storage:
            summary["checkpoint"] = save_checkpoint(trainer.model, spec.storage, spec.label, {"spec_hash": spec.spec_hash})
        summary.update(status="finished", initial_loss=trainer.initial_loss, initial_accuracy=trainer.initial_accuracy)
    except Exception as e:  # recorded, not raised: the other runs go on
        summary.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    summary.update(round_metrics(rows), rounds_completed=len(rows), elapsed_s=time.perf_counter() - start)
    atomic_write_text(out / "rounds.csv", rounds_csv(rows))
    atomic_write_json(out / "summary.json", summary)
    emit(summary["status"], summary=summary)
    return summary


def round_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and mean loss/accuracy of a run's rounds (None when it has none), and what its
    defence did over them (:func:`velocity.rounds.defence_metrics`)."""
    if not rows:
        empty = {
            "final_loss": None,
            "final_accuracy": None,
            "mean_loss": None,
            "mean_accuracy": None,
            "late_accuracy_gain": None,
            "final_attack_success": None,
            "final_dp_epsilon": None,
            "final_server_dp_epsilon": None,
        }
        return {**empty, **defence_metrics([])}
    losses = [r["global_loss"] for r in rows]
    accs = [r["accuracy"] for r in rows]
    success = [r.get("attack_success", math.nan) for r in rows]

    def last(key: str) -> float | None:
        value = rows[-1].get(key, math.nan)
        return None if math.isnan(value) else value

    return {
        "final_loss": losses[-1],
        "final_accuracy": accs[-1],
        "mean_loss": sum(losses) / len(losses),
        "mean_accuracy": sum(accs) / len(accs),
        "late_accuracy_gain": late_accuracy_gain(accs),
        # a targeted attack's success rate: last round, and its mean (None when not measured)
        "final_attack_success": None if math.isnan(success[-1]) else success[-1],
        # the privacy spent by the end (None without DP, or where server DP is no guarantee)
        "final_dp_epsilon": last("dp_epsilon"),
        "final_server_dp_epsilon": last("server_dp_epsilon"),
        **defence_metrics(rows),
    }
