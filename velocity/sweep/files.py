"""Files of a sweep, written so that nothing is lost: every file is written to a temporary
name and renamed into place, so a reader (or a crash) never sees half a file."""

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


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def rounds_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[c.name for c in ROUND_COLUMNS], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buf.getvalue()


def read_rounds_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a rounds.csv, each cell parsed as its column's kind (empty numbers → NaN)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: parse_cell(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
