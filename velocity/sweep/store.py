"""What a sweep knows about its runs, kept in one place: specs, statuses, summaries, round rows
and worker pids (thread-safe), and the run folders behind them (resume, summaries written for
a worker that could not write its own).

Rows reach the store twice — as live events and again from ``rounds.csv`` when a run ends — and
are merged once, here.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from velocity.rounds import sweep_row
from velocity.sweep.experiment import SpecError
from velocity.sweep.files import DamagedFile, atomic_write_json, read_rounds_csv, read_summary
from velocity.sweep.spec import RunSpec
from velocity.sweep.worker import round_metrics

RoundCallback = Callable[[dict[str, Any]], None]


class SweepSnapshot(NamedTuple):
    """A consistent view of a sweep's runs: ``statuses[i]`` and ``summaries[i]`` belong to ``specs[i]``."""

    specs: list[RunSpec]
    statuses: list[str]
    summaries: dict[int, dict[str, Any]]


def run_folder_name(spec: RunSpec) -> str:
    """A stable folder name per run, so re-running a sweep finds its earlier runs."""
    safe = "".join(c if c.isalnum() or c in "-_.=" else "-" for c in spec.label.replace(" | ", "__")).strip("-")[:120]
    # "." and ".." would be the sweep's folder or its parent
    return safe if safe.strip(".") else spec.spec_hash


class RunStore:
    """The runs of one sweep folder ``out``, indexed in the order they were added."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.lock = threading.RLock()  # also held by the sweep while it decides to (re)start its driver
        self._specs: list[RunSpec] = []
        self._status: list[str] = []
        self._summaries: dict[int, dict[str, Any]] = {}
        self._rows: list[dict[str, Any]] = []
        self._seen_rounds: set[tuple[int, int]] = set()
        self._pids: dict[int, int] = {}  # run index → the worker process running it
        self._callbacks: list[RoundCallback] = []
        self._notices: list[str] = []

    # ------------------------------------------------------------------ runs
    def append(self, spec: RunSpec) -> int:
        """Add a queued run; names are unique within a sweep (they name its folder)."""
        with self.lock:
            if any(s.label == spec.label for s in self._specs):
                raise SpecError(f"Expected unique run names, got '{spec.label}' twice")
            folder = run_folder_name(spec)
            other = next((s for s in self._specs if run_folder_name(s) == folder), None)
            if other is not None:  # two runs writing one folder would mix their files
                raise SpecError(f"Expected run names that give distinct folders, got '{other.label}' and '{spec.label}' (both '{folder}')")
            self._specs.append(spec)
            self._status.append("queued")
            return len(self._specs) - 1

    def spec(self, i: int) -> RunSpec:
        return self._specs[i]

    def specs(self) -> list[RunSpec]:
        with self.lock:
            return list(self._specs)

    def run_dir(self, i: int) -> Path:
        return self.out / run_folder_name(self._specs[i])

    def status(self, i: int) -> str:
        with self.lock:
            return self._status[i]

    def set_status(self, i: int, status: str) -> None:
        with self.lock:
            self._status[i] = status

    def status_counts(self) -> dict[str, int]:
        with self.lock:
            counts: dict[str, int] = {}
            for s in self._status:
                counts[s] = counts.get(s, 0) + 1
            return counts

    def run_status(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(s.label, st) for s, st in zip(self._specs, self._status, strict=True)]

    def summaries(self) -> dict[int, dict[str, Any]]:
        with self.lock:
            return dict(self._summaries)

    def rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._rows)

    def snapshot(self) -> SweepSnapshot:
        with self.lock:
            return SweepSnapshot(list(self._specs), list(self._status), dict(self._summaries))

    def pids(self) -> dict[int, int]:
        with self.lock:
            return dict(self._pids)

    def forget_pid(self, i: int) -> None:
        """A pid from an earlier attempt (a pool that broke) is not the next attempt's."""
        with self.lock:
            self._pids.pop(i, None)

    # ------------------------------------------------------------------ rounds
    def subscribe(self, callback: RoundCallback, *, replay: bool) -> None:
        """Call ``callback(row)`` for each new round; with ``replay``, first for every earlier one."""
        with self.lock:
            self._callbacks.append(callback)
            earlier = list(self._rows) if replay else []
        for row in earlier:
            with contextlib.suppress(Exception):  # a bad callback must not stop the caller
                callback(row)

    def add_rounds(self, i: int, rounds: list[dict[str, Any]]) -> None:
        """Record rounds once each (an event and the file may both bring one), then tell the callbacks."""
        with self.lock:
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

    def handle_event(self, event: dict[str, Any]) -> None:
        """One event from a worker (see ``velocity.sweep.events``)."""
        i = event["index"]
        if event["type"] == "round":
            self.add_rounds(i, [event["row"]])
        elif event["type"] == "started":
            with self.lock:
                self._pids[i] = event.get("pid", -1)
                if self._status[i] == "queued":
                    self._status[i] = "running"

    # ------------------------------------------------------------------ notices
    def note(self, text: str) -> None:
        """Something the user should read at the end (a damaged file, a run done again)."""
        with self.lock:
            self._notices.append(text)

    def notices(self) -> list[str]:
        with self.lock:
            return list(self._notices)

    # ------------------------------------------------------------------ run folders
    def _rounds_on_disk(self, i: int) -> list[dict[str, Any]]:
        """Run ``i``'s rounds.csv as its run left it (a worker that died mid-append leaves a last
        line without its newline: that round did not finish); damaged (an outside hand, a failing
        disk), it is named and the rounds the events brought stand."""
        try:
            return read_rounds_csv(self.run_dir(i) / "rounds.csv", growing=True)
        except DamagedFile as e:
            self.note(str(e))
            return []

    def prepare(self, i: int) -> bool:
        """Get run ``i``'s folder ready; False when an identical run already finished there
        (it is then recorded as finished, with its rounds, and needs no worker)."""
        spec, run_dir = self._specs[i], self.run_dir(i)
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            try:
                old = read_summary(summary_path)
                finished = old.get("status") == "finished" and old.get("spec_hash") == spec.spec_hash
                rows = read_rounds_csv(run_dir / "rounds.csv") if finished else []
            except DamagedFile as e:  # named, and run again from the start
                self.note(f"Running '{spec.label}' again: {e}")
                finished = False
            if finished:
                old["index"] = i
                with self.lock:
                    self._summaries[i] = {**old, "resumed": True}
                    self._status[i] = "finished"
                self.add_rounds(i, rows)
                return False
        atomic_write_json(run_dir / "config.json", spec.model_dump(mode="json"))
        summary_path.unlink(missing_ok=True)
        return True

    def finish(self, i: int, summary: dict[str, Any]) -> None:
        """Record a run's end. Events are a live view and may trail the result: the file has every round."""
        self.add_rounds(i, self._rounds_on_disk(i))
        with self.lock:
            self._summaries[i] = summary
            self._status[i] = summary.get("status", "failed")

    def record_outside_worker(self, i: int, status: str, error: str) -> None:
        """The worker could not write its summary (it died or was stopped): write it here,
        keeping every round that reached rounds.csv."""
        rows = self._rounds_on_disk(i)
        spec = self._specs[i]
        summary: dict[str, Any] = {"run": spec.label, "index": i, "spec_hash": spec.spec_hash, "status": status, "error": error}
        summary.update(round_metrics(rows), rounds_completed=len(rows))
        try:
            atomic_write_json(self.run_dir(i) / "summary.json", summary)
        except OSError as e:  # (a full disk): the sweep knows the run's end all the same
            self.note(f"Could not write {e.filename or self.run_dir(i) / 'summary.json'}: {e.strerror or e}")
        self.finish(i, summary)
