"""The ``Sweep`` object: runs a list of RunSpecs in parallel in the background.

Each run is one task for a process pool (spawn context) or any ``concurrent.futures.Executor``
(a dask ``Client.get_executor()`` runs a sweep on a cluster unchanged). Round events stream
back over a local socket while runs go on (``events``); files are written by the workers as they
happen; a run that fails is recorded and the others go on; re-running into the same folder
skips runs that already finished with the same spec.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from velocity import extend
from velocity.rounds import polars_schema, sweep_row
from velocity.sweep.events import EventListener
from velocity.sweep.experiment import SpecError, grid, load_experiment
from velocity.sweep.files import atomic_write_json, read_json, read_rounds_csv
from velocity.sweep.manifest import available_cpus, build_manifest
from velocity.sweep.report import load_results, write_comparison
from velocity.sweep.spec import RunSpec
from velocity.sweep.worker import execute_run, round_metrics

RoundCallback = Callable[[dict[str, Any]], None]


class SweepSnapshot(NamedTuple):
    """A consistent view of a sweep's runs: ``statuses[i]`` and ``summaries[i]`` belong to ``specs[i]``."""

    specs: list[RunSpec]
    statuses: list[str]
    summaries: dict[int, dict[str, Any]]


SCRIPT_GUARD_HELP = (
    "A sweep's worker processes start fresh and import the main script again; a script that starts a sweep "
    'must do so under `if __name__ == "__main__":` (as with any Python process pool). Notebooks and the '
    "`velocity sweep` command need nothing."
)


def run_folder_name(spec: RunSpec) -> str:
    """A stable folder name per run, so re-running a sweep finds its earlier runs."""
    safe = "".join(c if c.isalnum() or c in "-_.=" else "-" for c in spec.label.replace(" | ", "__"))
    return safe.strip("-")[:120] or spec.spec_hash


class Sweep:
    """A strategy × attack × heterogeneity matrix of federated runs.

    >>> sweep = Sweep.from_grid(strategies=["FedAvg", "FedMedian"], attacks=["none", "sign_flip"], rounds=5)
    >>> sweep.start()          # returns at once
    >>> sweep.results          # a polars DataFrame of every round so far
    >>> sweep.wait().comparison()
    """

    def __init__(
        self,
        specs: Sequence[RunSpec],
        *,
        out: str | Path | None = None,
        parallel: int | None = None,
        executor: Executor | None = None,
    ) -> None:
        specs = list(specs)
        if not specs:
            raise ValueError("Expected at least one run in a sweep, got none")
        self.out = Path(out) if out is not None else Path("out") / f"{datetime.now().strftime('%Y-%m-%dT%H-%M-%S')}-sweep"
        if parallel is not None and parallel < 1:
            raise ValueError(f"Expected parallel >= 1, got {parallel}")
        self.parallel = parallel or max(1, min(available_cpus(), len(specs)))
        self._executor = executor
        self._specs: list[RunSpec] = []
        self._status: list[str] = []
        self._summaries: dict[int, dict[str, Any]] = {}
        self._rows: list[dict[str, Any]] = []
        self._seen_rounds: set[tuple[int, int]] = set()
        self._pids: dict[int, int] = {}  # run index → the worker process running it
        self._callbacks: list[RoundCallback] = []
        self._lock = threading.RLock()
        self._pending: queue.Queue[int] = queue.Queue()
        self._cancel = threading.Event()
        # Set while no driver thread is at work (changed under _lock). wait() and cancel() wait on
        # this event, not on Thread.join(): on Python 3.11 a Ctrl-C that interrupts join() can
        # mark a live thread as stopped, and the next join() would return while the driver is
        # still recording the cancelled runs.
        self._idle = threading.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self._started_at: float | None = None
        self.wall_s: float | None = None  # seconds the sweep was running (summed over restarts)
        self._busy_s = 0.0
        self._panel: Any = None
        for s in specs:
            self._append(s)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_toml(cls, path: str | Path, **kwargs: Any) -> Sweep:
        """A sweep from a TOML experiment file (``[shared]``, ``[[runs]]``, ``[matrix]``)."""
        return cls(load_experiment(path), **kwargs)

    @classmethod
    def from_grid(
        cls,
        *,
        strategies: Sequence[Any] = ("FedAvg",),
        attacks: Sequence[Any] = ("none",),
        alphas: Sequence[float | None] = (None,),
        seeds: int | Sequence[int] = 1,
        out: str | Path | None = None,
        parallel: int | None = None,
        executor: Executor | None = None,
        **shared: Any,
    ) -> Sweep:
        """strategies × attacks × alphas × seeds over the shared RunSpec keys."""
        return cls(
            grid(strategies=strategies, attacks=attacks, alphas=alphas, seeds=seeds, **shared),
            out=out,
            parallel=parallel,
            executor=executor,
        )

    def _append(self, spec: RunSpec) -> int:
        with self._lock:
            labels = {s.label for s in self._specs}
            if spec.label in labels:
                raise SpecError(f"Expected unique run names, got '{spec.label}' twice")
            self._specs.append(spec)
            self._status.append("queued")
            return len(self._specs) - 1

    # ------------------------------------------------------------------ state
    @property
    def specs(self) -> list[RunSpec]:
        return list(self._specs)

    def run_dir(self, index: int) -> Path:
        return self.out / run_folder_name(self._specs[index])

    @property
    def status(self) -> dict[str, int]:
        """Counts of runs queued / running / finished / failed / cancelled."""
        with self._lock:
            counts: dict[str, int] = {}
            for s in self._status:
                counts[s] = counts.get(s, 0) + 1
            return counts

    def run_status(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(s.label, st) for s, st in zip(self._specs, self._status, strict=True)]

    @property
    def started(self) -> bool:
        """Whether ``start()`` was called (the sweep may have finished since)."""
        return self._started_at is not None

    @property
    def running(self) -> bool:
        """Whether the sweep's driver is at work (set under the lock that add() also takes)."""
        return not self._idle.is_set()

    @property
    def results(self) -> Any:
        """Every round received so far, one row per (run, round), as a polars DataFrame."""
        import polars as pl

        with self._lock:
            rows = list(self._rows)
        schema = polars_schema()
        return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)

    def on_round(self, callback: RoundCallback, *, replay: bool = False) -> Sweep:
        """Call ``callback(row)`` for every round as it arrives (from the sweep's event thread).

        With ``replay=True`` the rounds that arrived before are passed to it first (from this
        thread): every round reaches it exactly once, whenever it subscribes. Rows are merged
        once, here: an event and ``rounds.csv`` may both bring a round."""
        with self._lock:
            self._callbacks.append(callback)
            earlier = list(self._rows) if replay else []
        for row in earlier:
            with contextlib.suppress(Exception):  # a bad callback must not stop the caller
                callback(row)
        return self

    def summaries(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return dict(self._summaries)

    def rows(self) -> list[dict[str, Any]]:
        """Every round row received so far, in arrival order (a copy; ``results`` as dicts)."""
        with self._lock:
            return list(self._rows)

    def snapshot(self) -> SweepSnapshot:
        """Specs, statuses and summaries read together, so their lengths agree."""
        with self._lock:
            return SweepSnapshot(list(self._specs), list(self._status), dict(self._summaries))

    def worker_pids(self) -> dict[int, int]:
        """Run index → the process id of the worker that started it (from its "started" event;
        on a dask cluster, a process on the worker's machine)."""
        with self._lock:
            return dict(self._pids)

    def panel(self, **kwargs: Any) -> Any:
        """The live notebook panel of this sweep (a ``velocity.panel.SweepPanel``); one per sweep,
        so showing it twice shows the same state. ``display(sweep)`` shows it too."""
        from velocity.panel import SweepPanel

        if self._panel is None or self._panel.closed:
            self._panel = SweepPanel(self, **kwargs)
        return self._panel

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.panel()._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ control
    def start(self) -> Sweep:
        """Start the sweep in the background and return at once."""
        if self.running:
            raise RuntimeError("This sweep is already running")
        if getattr(multiprocessing.current_process(), "_inheriting", False):
            raise RuntimeError(SCRIPT_GUARD_HELP)
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / "manifest.json", build_manifest(self._specs, parallel=self.parallel))
        self._started_at = time.perf_counter()
        for i in range(len(self._specs)):
            if self._status[i] == "queued":
                self._prepare(i)
        self._launch()
        return self

    def run(self) -> Sweep:
        """Start and wait: the blocking form."""
        return self.start().wait()

    def add(self, spec: RunSpec | Iterable[RunSpec]) -> Sweep:
        """Queue more runs; into the running sweep, or they run at the next ``start``/now if idle."""
        specs = [spec] if isinstance(spec, RunSpec) else list(spec)
        # Under the lock, the driver either sees these runs before it ends or has ended: never
        # neither (a run queued while the driver was finishing would wait forever).
        with self._lock:
            for s in specs:
                i = self._append(s)
                if self._started_at is not None:
                    self._prepare(i)
            if self._started_at is not None and not self.running:
                self._cancel.clear()  # runs added after a cancel() run again
                self._launch()
        return self

    def wait(self, timeout: float | None = None) -> Sweep:
        """Block until every queued run has ended (or ``timeout`` seconds)."""
        self._idle.wait(timeout)
        if self._error is not None:
            raise RuntimeError(f"The sweep's driver failed: {self._error}") from self._error
        return self

    def cancel(self) -> Sweep:
        """Stop: queued runs do not start, running ones are stopped; finished rounds stay on disk."""
        self._cancel.set()
        self._idle.wait()
        return self

    def comparison(self) -> dict[str, Any]:
        """The comparison as written to comparison.json (rebuilt from the files)."""
        return write_comparison(self.out, load_results(self.out), wall_s=self.wall_s, parallel=self.parallel)

    # ------------------------------------------------------------------ internals
    def _prepare(self, i: int) -> None:
        """Write config.json, or mark the run finished if an identical run already finished here."""
        spec, run_dir = self._specs[i], self.run_dir(i)
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            old = read_json(summary_path)
            if old.get("status") == "finished" and old.get("spec_hash") == spec.spec_hash:
                old["index"] = i
                with self._lock:
                    self._summaries[i] = {**old, "resumed": True}
                    self._status[i] = "finished"
                self._add_rounds(i, read_rounds_csv(run_dir / "rounds.csv"))
                return
        atomic_write_json(run_dir / "config.json", spec.model_dump(mode="json"))
        summary_path.unlink(missing_ok=True)
        self._pending.put(i)

    def _launch(self) -> None:
        with self._lock:
            self._idle.clear()
            threading.Thread(target=self._drive_safely, name="velocity-sweep", daemon=True).start()

    def _handle_event(self, event: dict[str, Any]) -> None:
        i = event["index"]
        if event["type"] == "round":
            self._add_rounds(i, [event["row"]])
        elif event["type"] == "started":
            with self._lock:
                self._pids[i] = event.get("pid", -1)
                if self._status[i] == "queued":
                    self._status[i] = "running"

    def _add_rounds(self, i: int, rounds: list[dict[str, Any]]) -> None:
        """Record rounds once each (an event and the file may both bring one), then tell the callbacks."""
        with self._lock:
            new = []
            for r in rounds:
                if (i, r["round"]) not in self._seen_rounds:
                    self._seen_rounds.add((i, r["round"]))
                    new.append(sweep_row(self._specs[i], i, r))
            self._rows.extend(new)
            callbacks = list(self._callbacks)
        for row in new:
            for cb in callbacks:
                with contextlib.suppress(Exception):  # a bad callback must not stop the sweep
                    cb(row)

    def _finish(self, i: int, summary: dict[str, Any]) -> None:
        # Events are a live view and may trail the result: the file has every round.
        self._add_rounds(i, read_rounds_csv(self.run_dir(i) / "rounds.csv"))
        with self._lock:
            self._summaries[i] = summary
            self._status[i] = summary.get("status", "failed")

    def _record_outside_worker(self, i: int, status: str, error: str) -> None:
        """The worker could not write its summary (it died or was stopped): write it here,
        keeping every round that reached rounds.csv."""
        rows = read_rounds_csv(self.run_dir(i) / "rounds.csv")
        summary: dict[str, Any] = {
            "run": self._specs[i].label,
            "index": i,
            "spec_hash": self._specs[i].spec_hash,
            "status": status,
            "error": error,
        }
        summary.update(round_metrics(rows), rounds_completed=len(rows))
        atomic_write_json(self.run_dir(i) / "summary.json", summary)
        self._finish(i, summary)

    def _drive_safely(self) -> None:
        try:
            while True:
                self._drive()
                with self._lock:  # see add(): runs queued while _drive was finishing run now
                    if self._cancel.is_set() or self._pending.empty():
                        self._idle.set()
                        return
        except BaseException as e:  # surfaced by wait()
            self._error = e
            with self._lock:
                self._idle.set()

    def _drive(self) -> None:
        driving_since = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        listener = EventListener(self._handle_event)
        events = listener.sink
        threads = max(1, available_cpus() // self.parallel)
        owned = self._executor is None
        executor: Executor = self._executor or ProcessPoolExecutor(max_workers=self.parallel, mp_context=ctx)
        in_flight: dict[Future[Any], int] = {}
        isolate: list[int] = []  # runs caught in a dead worker pool: re-run one at a time to find the culprit
        try:
            while not self._cancel.is_set():
                if isolate and not in_flight:
                    i = isolate.pop(0)
                    in_flight[self._submit(executor, i, events, threads)] = i
                while not isolate and len(in_flight) < self.parallel:
                    try:
                        i = self._pending.get_nowait()
                    except queue.Empty:
                        break
                    in_flight[self._submit(executor, i, events, threads)] = i
                if not in_flight:
                    break
                done, _ = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
                broken: list[int] = []
                for fut in done:
                    i = in_flight.pop(fut)
                    try:
                        self._finish(i, fut.result())
                    except BrokenProcessPool:
                        broken.append(i)
                    except Exception as e:  # e.g. a dask worker that died
                        self._record_outside_worker(i, "failed", f"worker failed: {type(e).__name__}: {e}")
                if broken:
                    ran_alone = len(broken) == 1 and not in_flight and not isolate
                    broken += list(in_flight.values())
                    in_flight.clear()
                    if ran_alone:
                        self._record_outside_worker(broken[0], "failed", "the worker process died (killed or crashed)")
                    else:
                        isolate += broken
                    if owned:
                        executor.shutdown(wait=False, cancel_futures=True)
                        executor = ProcessPoolExecutor(max_workers=self.parallel, mp_context=ctx)
            if self._cancel.is_set():
                self._stop(executor, owned, in_flight, isolate)
                in_flight.clear()
        finally:
            if owned:
                executor.shutdown(wait=True, cancel_futures=True)
            listener.close()
            # A sweep restarted by add() counts only the time it was running, not the idle gaps.
            self._busy_s += time.perf_counter() - driving_since
            self.wall_s = self._busy_s
            write_comparison(self.out, load_results(self.out), wall_s=self.wall_s, parallel=self.parallel)

    def _stop_workers(self, in_flight: dict[Future[Any], int], grace_s: float = 30.0) -> None:
        """Running tasks cannot be cancelled through the futures API: stop the worker processes
        that reported running them (each "started" event carries its pid). A run picked up but
        not yet reported is stopped as soon as it reports; only this sweep's own pool is touched."""
        stopped: set[int] = set()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not all(f.done() for f in in_flight):
            pids = self.worker_pids()
            for i in in_flight.values():
                pid = pids.get(i)
                if pid is not None and pid > 0 and pid not in stopped:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                    stopped.add(pid)
            wait(in_flight, timeout=0.05)

    def _submit(self, executor: Executor, i: int, events: Any, threads: int) -> Future[Any]:
        spec = self._specs[i]
        with self._lock:  # a pid from an earlier attempt (a pool that broke) is not this one's
            self._pids.pop(i, None)
        python = extend.export(spec.python_components)  # the user's Python rules/attacks, by value
        return executor.submit(execute_run, spec.model_dump_json(), str(self.run_dir(i)), i, events, threads, python)

    def _stop(self, executor: Executor, owned: bool, in_flight: dict[Future[Any], int], isolate: list[int]) -> None:
        for fut in in_flight:
            fut.cancel()
        if owned:
            self._stop_workers(in_flight)
        for i in [*in_flight.values(), *isolate]:
            self._record_outside_worker(i, "cancelled", "cancelled by the user")
        while True:
            try:
                i = self._pending.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._status[i] = "cancelled"
