"""Files of a sweep, written so that nothing is lost: a file is written to a temporary name and
renamed into place, so a reader (or a crash) never sees half a file. The one exception is a
running run's ``rounds.csv``, which grows by one line per round (:class:`RoundsAppender`; a
rewrite per round would cost O(rounds²)): reading it as growing drops a last line without its
newline, and the run rewrites the whole file atomically when it ends."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from velocity.rounds import ROUND_COLUMNS, parse_cell
from velocity.specs import to_json_value


def _umask() -> int:
    mask = os.umask(0)  # (the only portable way to read it; done once, at import)
    os.umask(mask)
    return mask


#: The mode a file written here gets: what the user's umask gives a new file (a temporary
#: file is created 0600, and a rename would keep that).
FILE_MODE = 0o666 & ~_umask()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON that other tools can read: infinity as "inf", NaN as null."""
    atomic_write_text(path, json.dumps(to_json_value(data, nan_as_null=True), indent=2, allow_nan=False) + "\n")


class DamagedFile(ValueError):
    """A sweep's file that is not what it should be (truncated, edited, garbage); the message
    names the file, what was expected in it and what was found."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DamagedFile(f"Expected JSON text in {path}, got bytes that are not UTF-8") from None
    except json.JSONDecodeError as e:
        raise DamagedFile(f"Expected JSON in {path}, got text that is not ({e.msg} at line {e.lineno}, column {e.colno})") from None


#: A run summary's numbers that are shares or fractions, and those that cannot be negative.
_SUMMARY_FRACTIONS = (
    "initial_accuracy",
    "final_accuracy",
    "mean_accuracy",
    "mean_malicious_share",
    "mean_malicious_weight",
    "mean_detection_precision",
    "mean_detection_recall",
    "final_attack_success",
)
_SUMMARY_NON_NEGATIVE = (
    "initial_loss",
    "final_loss",
    "mean_loss",
    "elapsed_s",
    "rounds_completed",
    "rounds_defence_acted",
    "mean_clipped",
    "num_parameters",
    "final_dp_epsilon",
    "final_server_dp_epsilon",
)


def read_summary(path: Path) -> dict[str, Any]:
    """A run's ``summary.json``, checked: an object with a status, whose numbers are numbers
    (or null, for NaN) within their ranges. ``DamagedFile`` otherwise: a hand-edited accuracy
    of 7.5 is no result."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DamagedFile(f"Expected a JSON object in {path}, got {type(data).__name__} {_short(data)}")
    if not isinstance(data.get("status"), str):
        raise DamagedFile(f"Expected a status in {path}, got {_short(data.get('status'))}")
    for key in (*_SUMMARY_FRACTIONS, *_SUMMARY_NON_NEGATIVE):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DamagedFile(f"Expected {key} as a number in {path}, got {_short(value)}")
        if key in _SUMMARY_FRACTIONS and not 0 <= value <= 1:
            raise DamagedFile(f"Expected {key} in [0, 1] in {path}, got {value}")
        if key in _SUMMARY_NON_NEGATIVE and value < 0:
            raise DamagedFile(f"Expected {key} >= 0 in {path}, got {value}")
    return data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def rounds_csv(rows: Iterable[Mapping[str, Any]], *, header: bool = True) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[c.name for c in ROUND_COLUMNS], extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buf.getvalue()


class RoundsAppender:
    """A running run's ``rounds.csv``, one line appended (and flushed to the OS) per round. Each
    line goes out in one write, so a process that dies leaves whole lines, and at worst a last
    line without its newline, which :func:`read_rounds_csv` leaves out. Call :meth:`close`
    before the run's final atomic rewrite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.TextIOWrapper | None = None

    def append(self, row: Mapping[str, Any]) -> None:
        if self._file is None:  # the first round truncates what an earlier, unfinished attempt left
            self._file = self.path.open("w", encoding="utf-8", newline="")
            os.chmod(self.path, FILE_MODE)
            self._file.write(rounds_csv([]))
        self._file.write(rounds_csv([row], header=False))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_rounds_csv(path: Path, *, growing: bool = False) -> list[dict[str, Any]]:
    """Rows of a rounds.csv, each cell parsed as its column's kind (empty numbers → NaN).
    ``DamagedFile`` for a header that is not this file's, a row cut short or too long, or a cell
    that is not its column's kind (a file written before a column existed lacks it: fine).

    ``growing``: the file of a run that may still be appending, or died while it did; a last line
    without its newline is then a round not yet written, and left out. A finished run's file
    (rewritten whole when it ended) must be complete."""
    if not path.exists():
        return []
    known = {c.name for c in ROUND_COLUMNS}
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
        if growing:
            text = text[: text.rfind("\n") + 1]
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if "round" not in header or not set(header) <= known:
                raise DamagedFile(f"Expected a rounds.csv header in {path}, got {_short(','.join(header))}")
            for row in reader:
                if None in row or any(v is None for v in row.values()):  # too many cells, or too few
                    count = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                    raise DamagedFile(f"Expected {len(header)} cells per row in {path}, got {count} on line {reader.line_num}")
                try:
                    rows.append({k: parse_cell(k, v) for k, v in row.items()})
                except ValueError:
                    raise DamagedFile(f"Expected numbers in their columns in {path}, got line {reader.line_num}: {_short(row)}") from None
    except UnicodeDecodeError:
        raise DamagedFile(f"Expected text in {path}, got bytes that are not UTF-8") from None
    except csv.Error as e:
        raise DamagedFile(f"Expected CSV in {path}, got {e}") from None
    return rows


class FolderLock:
    """One sweep writes a folder at a time: two sweeps with different settings into one folder
    would mix their runs' files. An advisory lock on ``.velocity.lock`` in the folder (released
    by the OS if the process dies, so it never goes stale); where the OS has no ``flock``, no
    lock is taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file: Any = None

    def acquire(self) -> None:
        """Hold the folder; ``ValueError`` when another sweep holds it now."""
        if self._file is not None:
            return
        try:
            import fcntl
        except ImportError:  # (Windows)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        f = (self.folder / ".velocity.lock").open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise ValueError(
                f"Expected no other sweep writing to '{self.folder}', got one running there now ({holder}): "
                "wait for it to end, or choose another folder"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None
