"""The ``Sweep`` object: a strategy × attack × heterogeneity matrix run in the background.

The facade over three parts: the run store (``store``: what is known about each run, resume),
the pool driver (``pool``: workers, broken pools, cancellation) and the live panel
(``velocity.panel``). Files are written by the workers as rounds happen; a run that fails is
recorded and the others go on; re-running into the same folder skips runs that already finished
with the same spec.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime
from pathlib import Path
from typing import Any

from velocity.rounds import polars_schema
from velocity.sweep.experiment import grid, load_experiment
from velocity.sweep.files import FolderLock, atomic_write_json
from velocity.sweep.manifest import available_cpus, build_manifest
from velocity.sweep.pool import PoolDriver
from velocity.sweep.report import build_comparison, load_results, write_comparison
from velocity.sweep.spec import RunSpec, check_runnable
from velocity.sweep.store import RoundCallback, RunStore, SweepSnapshot

SCRIPT_GUARD_HELP = (
    "A sweep's worker processes start fresh and import the main script again; a script that starts a sweep "
    'must do so under `if __name__ == "__main__":` (as with any Python process pool). Notebooks and the '
    "`velocity sweep` command need nothing."
)


def check_out_folder(out: Path) -> None:
    """Refuse an output folder the sweep could not write, before any run starts: a file, a
    path below a file, or a folder (or its nearest existing parent) without write permission."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "which is a file" if existing == out else f"below '{existing}', a file"
        raise ValueError(f"Expected a folder for the sweep's files, got '{out}', {where}")
    if existing.exists() and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"Expected a folder the sweep can write to, got '{out}' ('{existing}' is not writable)")


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
        check_runnable(specs)
        self.out = Path(out) if out is not None else Path("out") / f"{datetime.now().strftime('%Y-%m-%dT%H-%M-%S')}-sweep"
        check_out_folder(self.out)
        if parallel is not None and parallel < 1:
            raise ValueError(f"Expected parallel >= 1, got {parallel}")
        self.parallel = parallel or max(1, min(available_cpus(), len(specs)))
        self.store = RunStore(self.out)
        self._folder = FolderLock(self.out)
        self._lock = self.store.lock
        self._pending: queue.Queue[int] = queue.Queue()
        self._cancel = threading.Event()
        self._driver = PoolDriver(self.store, self._pending, self._cancel, parallel=self.parallel, executor=executor)
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
            self.store.append(s)

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
        privacy: Sequence[Mapping[str, Any]] = ({},),
        seeds: int | Sequence[int] = 1,
        out: str | Path | None = None,
        parallel: int | None = None,
        executor: Executor | None = None,
        **shared: Any,
    ) -> Sweep:
        """strategies × attacks × alphas × privacy × seeds over the shared RunSpec keys (each level
        of ``privacy``: a table of ``dp`` and/or ``server_dp``, ``{}`` for neither)."""
        return cls(
            grid(strategies=strategies, attacks=attacks, alphas=alphas, privacy=privacy, seeds=seeds, **shared),
            out=out,
            parallel=parallel,
            executor=executor,
        )

    # ------------------------------------------------------------------ state
    @property
    def specs(self) -> list[RunSpec]:
        return self.store.specs()

    def run_dir(self, index: int) -> Path:
        return self.store.run_dir(index)

    @property
    def status(self) -> dict[str, int]:
        """Counts of runs queued / running / finished / failed / cancelled."""
        return self.store.status_counts()

    def run_status(self) -> list[tuple[str, str]]:
        return self.store.run_status()

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

        rows = self.store.rows()
        schema = polars_schema()
        return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)

    def on_round(self, callback: RoundCallback, *, replay: bool = False) -> Sweep:
        """Call ``callback(row)`` for every round as it arrives (from the sweep's event thread).

        With ``replay=True`` the rounds that arrived before are passed to it first (from this
        thread): every round reaches it exactly once, whenever it subscribes. Rows are merged
        once, in the store: an event and ``rounds.csv`` may both bring a round."""
        self.store.subscribe(callback, replay=replay)
        return self

    def summaries(self) -> dict[int, dict[str, Any]]:
        return self.store.summaries()

    def rows(self) -> list[dict[str, Any]]:
        """Every round row received so far, in arrival order (a copy; ``results`` as dicts)."""
        return self.store.rows()

    def snapshot(self) -> SweepSnapshot:
        """Specs, statuses and summaries read together, so their lengths agree."""
        return self.store.snapshot()

    def worker_pids(self) -> dict[int, int]:
        """Run index → the process id of the worker that started it (from its "started" event;
        on a dask cluster, a process on the worker's machine)."""
        return self.store.pids()

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
        self._folder.acquire()  # before anything is written there
        specs = self.store.specs()
        atomic_write_json(self.out / "manifest.json", build_manifest(specs, parallel=self.parallel))
        self._started_at = time.perf_counter()
        for i in range(len(specs)):
            if self.store.status(i) == "queued":
                self._queue(i)
        self._launch()
        return self

    def run(self) -> Sweep:
        """Start and wait: the blocking form."""
        return self.start().wait()

    def add(self, spec: RunSpec | Iterable[RunSpec]) -> Sweep:
        """Queue more runs; into the running sweep, or they run at the next ``start``/now if idle."""
        specs = [spec] if isinstance(spec, RunSpec) else list(spec)
        check_runnable(specs)
        # Under the lock, the driver either sees these runs before it ends or has ended: never
        # neither (a run queued while the driver was finishing would wait forever).
        with self._lock:
            if self._started_at is not None and not self.running:
                self._folder.acquire()  # a restart writes the folder again
            for s in specs:
                i = self.store.append(s)
                if self._started_at is not None:
                    self._queue(i)
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
        return self._write_comparison()

    # ------------------------------------------------------------------ internals
    def _write_comparison(self) -> dict[str, Any]:
        _, _, summaries = self.snapshot()
        resumed = [self.run_dir(i).name for i, summary in summaries.items() if summary.get("resumed")]
        problems = self.store.notices()
        results = load_results(self.out, problems)
        try:
            return write_comparison(self.out, results, wall_s=self.wall_s, parallel=self.parallel, resumed=resumed, file_problems=problems)
        except OSError as e:  # (a full disk): the comparison is still computed and returned
            problems.append(f"Could not write the comparison ({e.strerror or e}: {e.filename or self.out})")
            return build_comparison(results, wall_s=self.wall_s, parallel=self.parallel, resumed=resumed, file_problems=problems)

    def _queue(self, i: int) -> None:
        """Queue run ``i`` for a worker unless an identical run already finished in its folder."""
        if self.store.prepare(i):
            self._pending.put(i)

    def _launch(self) -> None:
        with self._lock:
            self._idle.clear()
            threading.Thread(target=self._drive_safely, name="velocity-sweep", daemon=True).start()

    def _drive_safely(self) -> None:
        try:
            while True:
                self._drive()
                with self._lock:  # see add(): runs queued while the driver was finishing run now
                    if self._cancel.is_set() or self._pending.empty():
                        self._folder.release()
                        self._idle.set()
                        return
        except BaseException as e:  # surfaced by wait()
            self._error = e
            with self._lock:
                self._folder.release()
                self._idle.set()

    def _drive(self) -> None:
        driving_since = time.perf_counter()
        try:
            self._driver.drive()
        finally:
            # A sweep restarted by add() counts only the time it was running, not the idle gaps.
            self._busy_s += time.perf_counter() - driving_since
            self.wall_s = self._busy_s
            self._write_comparison()
