"""The pool driver: hands a sweep's queued runs to worker processes and records how each ended.

Each run is one task for a process pool (spawn context) or any ``concurrent.futures.Executor``
(a dask ``Client.get_executor()`` runs a sweep on a cluster unchanged). A pool that breaks (a
worker killed or crashed) is replaced, and the runs caught in it are re-run one at a time so the
culprit is found and recorded without failing the innocent ones.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from velocity import extend
from velocity.sweep.events import EventListener
from velocity.sweep.manifest import available_cpus
from velocity.sweep.store import RunStore
from velocity.sweep.worker import execute_run

#: The errors that say the disk is full (every later run would fail the same way).
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class PoolDriver:
    """Runs the queued run indices of ``pending`` on ``parallel`` workers until none is left or
    ``cancel`` is set; results, events and failures go to ``store``."""

    def __init__(
        self,
        store: RunStore,
        pending: queue.Queue[int],
        cancel: threading.Event,
        *,
        parallel: int,
        executor: Executor | None,
    ) -> None:
        self.store = store
        self.pending = pending
        self.cancel = cancel
        self.parallel = parallel
        self.stop_reason = "cancelled by the user"
        self.executor = executor  # a caller's executor is used as is and never shut down

    def drive(self) -> None:
        """One pass: submit, collect, replace a broken pool, stop everything on cancel."""
        self.stop_reason = "cancelled by the user"  # (or why the driver stopped itself)
        ctx = multiprocessing.get_context("spawn")
        listener = EventListener(self.store.handle_event)
        threads = max(1, available_cpus() // self.parallel)
        owned = self.executor is None
        executor: Executor = self.executor or ProcessPoolExecutor(max_workers=self.parallel, mp_context=ctx)
        in_flight: dict[Future[Any], int] = {}
        isolate: list[int] = []  # runs caught in a dead worker pool: re-run one at a time to find the culprit
        unstarted: list[int] = []  # runs whose submission found the pool broken: they never started
        try:
            while not self.cancel.is_set():
                if isolate and not in_flight:
                    i = isolate.pop(0)
                    in_flight[self._submit(executor, i, listener.sink, threads)] = i
                while not isolate and len(in_flight) < self.parallel:
                    if unstarted:
                        i = unstarted.pop(0)
                    else:
                        try:
                            i = self.pending.get_nowait()
                        except queue.Empty:
                            break
                    try:
                        in_flight[self._submit(executor, i, listener.sink, threads)] = i
                    except BrokenProcessPool:
                        # a worker died since the last wait; its future reports it below, and this
                        # run waits for the new pool
                        unstarted.insert(0, i)
                        if not in_flight:  # no future left to report the break: replace the pool now
                            if not owned:
                                raise
                            executor.shutdown(wait=False, cancel_futures=True)
                            executor = ProcessPoolExecutor(max_workers=self.parallel, mp_context=ctx)
                        break
                if not in_flight and not unstarted:
                    break
                done, _ = wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
                broken: list[int] = []
                for fut in done:
                    i = in_flight.pop(fut)
                    try:
                        self.store.finish(i, fut.result())
                    except BrokenProcessPool:
                        broken.append(i)
                    except OSError as e:  # the run could not write its files: a full disk fails every run after it
                        self.store.record_outside_worker(i, "failed", f"{e.strerror or e}: {e.filename or self.store.run_dir(i)}")
                        if e.errno in DISK_FULL:
                            self.store.note(
                                f"{e.strerror}: the runs not yet started were not started (free space, then run the sweep again)"
                            )
                            self.stop_reason = f"not finished: {e.strerror}"
                            self.cancel.set()
                    except Exception as e:  # e.g. a dask worker that died
                        self.store.record_outside_worker(i, "failed", f"worker failed: {type(e).__name__}: {e}")
                if broken:
                    ran_alone = len(broken) == 1 and not in_flight and not isolate
                    broken += list(in_flight.values())
                    in_flight.clear()
                    if ran_alone:
                        self.store.record_outside_worker(broken[0], "failed", "the worker process died (killed or crashed)")
                    else:
                        isolate += broken
                    if owned:
                        executor.shutdown(wait=False, cancel_futures=True)
                        executor = ProcessPoolExecutor(max_workers=self.parallel, mp_context=ctx)
            if self.cancel.is_set():
                self._stop(owned, in_flight, isolate)
                for i in unstarted:
                    self.store.set_status(i, "cancelled")
        finally:
            if owned:
                executor.shutdown(wait=True, cancel_futures=True)
            listener.close()

    def _submit(self, executor: Executor, i: int, events: Any, threads: int) -> Future[Any]:
        spec = self.store.spec(i)
        self.store.forget_pid(i)
        python = extend.export(spec.python_components)  # the user's Python rules/attacks, by value
        return executor.submit(execute_run, spec.model_dump_json(), str(self.store.run_dir(i)), i, events, threads, python, self.parallel)

    def _stop(self, owned: bool, in_flight: dict[Future[Any], int], isolate: list[int]) -> None:
        for fut in in_flight:
            fut.cancel()
        if owned:
            self._stop_workers(in_flight)
        for i in [*in_flight.values(), *isolate]:
            self.store.record_outside_worker(i, "cancelled", self.stop_reason)
        in_flight.clear()
        while True:
            try:
                i = self.pending.get_nowait()
            except queue.Empty:
                break
            self.store.set_status(i, "cancelled")

    def _stop_workers(self, in_flight: dict[Future[Any], int], grace_s: float = 30.0) -> None:
        """Running tasks cannot be cancelled through the futures API: stop the worker processes
        that reported running them (each "started" event carries its pid). A run picked up but
        not yet reported is stopped as soon as it reports; only this sweep's own pool is touched."""
        stopped: set[int] = set()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and not all(f.done() for f in in_flight):
            pids = self.store.pids()
            for i in in_flight.values():
                pid = pids.get(i)
                if pid is not None and pid > 0 and pid not in stopped:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                    stopped.add(pid)
            wait(in_flight, timeout=0.05)
