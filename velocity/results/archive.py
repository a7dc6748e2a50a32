"""A sweep packed for a reviewer, and run again from the pack.

:func:`archive` writes an RO-Crate (Soiland-Reyes et al., "Packaging research artefacts with
RO-Crate", Data Science 2022; RO-Crate 1.1, written with the ``rocrate`` library) as one zip:
the sweep's files (manifest, comparison, every run's ``config.json``, ``rounds.csv`` and
``summary.json``), ``specs.json`` (every run's exact settings), ``environment.json`` (the
velocity version, the commit, Python and every installed package's version) and ``Cargo.lock``
when the package runs from a source checkout. Each file's SHA-256 is recorded in the crate's
metadata, so a file changed after packing is found.

:func:`reproduce` checks the pack (format, hashes), runs every run again into a new sweep folder
and, with ``check``, compares each run's final metrics with the archived ones: on the machine that
ran the sweep they match to the last bit; another CPU's vector kernels or a GPU may differ in the
last digits (the ``tolerance``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from velocity.specs import to_json_value
from velocity.sweep.files import FILE_MODE, DamagedFile, read_json, read_summary
from velocity.sweep.report import load_results
from velocity.sweep.spec import RunSpec

#: The archive layout this version writes and reads; a newer one is refused with a message.
ARCHIVE_FORMAT = 1
#: The term of the crate's root for ``ARCHIVE_FORMAT`` (defined in the crate's own context).
_FORMAT_TERM = "velocityArchiveFormat"
_FORMAT_IRI = "https://github.com/velocityfl/velocityfl#archiveFormat"
#: The final metrics a reproduction is checked on.
CHECKED = ("final_accuracy", "final_loss", "mean_accuracy", "mean_loss", "final_attack_success", "rounds_completed")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source_checkout_lock() -> Path | None:
    lock = Path(__file__).resolve().parents[2] / "Cargo.lock"
    return lock if lock.is_file() else None


def environment() -> dict[str, Any]:
    """What ran: velocity's version, Python, the platform and every installed distribution."""
    from velocity import __version__

    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    return {
        "velocity": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": dict(sorted(packages.items(), key=lambda kv: kv[0].lower())),
    }


def archive(sweep_dir: str | Path, out: str | Path) -> Path:
    """Pack the sweep in ``sweep_dir`` into the RO-Crate zip ``out`` (written whole, then renamed
    into place). ``ValueError`` for a folder that is not a sweep or holds a damaged file."""
    from rocrate.rocrate import ROCrate

    folder = Path(sweep_dir)
    damaged: list[str] = []
    results = load_results(folder, damaged) if folder.is_dir() else []
    if not results:
        raise ValueError(f"Expected a sweep folder (run folders holding config.json), got '{folder}'")
    if damaged:
        raise ValueError(f"Expected a sweep whose files are all readable, got {len(damaged)} damaged: {damaged[0]}")
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"Expected an output path ending in .zip, got '{out}'")
    manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}

    crate = ROCrate(gen_preview=False, version="1.1")
    crate.metadata.extra_terms = {_FORMAT_TERM: _FORMAT_IRI}
    root = crate.root_dataset
    root["name"] = f"VelocityFL sweep {folder.resolve().name}"
    root["description"] = (
        f"{len(results)} federated-learning runs (strategy × attack × heterogeneity) with their settings, rounds and summaries"
    )
    root["datePublished"] = datetime.now(UTC).isoformat(timespec="seconds")
    root[_FORMAT_TERM] = ARCHIVE_FORMAT

    def add(path: Path, dest: str, fmt: str, what: str) -> None:
        crate.add_file(
            path,
            dest_path=dest,
            properties={"name": what, "encodingFormat": fmt, "sha256": _sha256(path), "contentSize": str(path.stat().st_size)},
        )

    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp)
        specs = [json.loads(r.spec.model_dump_json()) for r in results]
        (extra / "specs.json").write_text(json.dumps(to_json_value(specs, nan_as_null=True), indent=2) + "\n", encoding="utf-8")
        env = {**environment(), "git_commit": manifest.get("git_commit") if isinstance(manifest, dict) else None}
        lock = _source_checkout_lock()
        if lock is None:
            env["cargo_lock"] = "not packed: velocity runs from an installed wheel (manifest.json holds the lock file's hash)"
        (extra / "environment.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")
        add(extra / "specs.json", "specs.json", "application/json", "every run's settings, in run order")
        add(extra / "environment.json", "environment.json", "application/json", "velocity, Python and package versions, the commit")
        if lock is not None:
            add(lock, "Cargo.lock", "application/toml", "the Rust core's locked dependencies")
        for name, fmt in (
            ("manifest.json", "application/json"),
            ("comparison.json", "application/json"),
            ("comparison.md", "text/markdown"),
        ):
            if (folder / name).exists():
                add(folder / name, f"sweep/{name}", fmt, name)
        for r in results:
            for name, fmt in (("config.json", "application/json"), ("rounds.csv", "text/csv"), ("summary.json", "application/json")):
                path = folder / r.run_dir / name
                if path.exists():
                    add(path, f"sweep/{r.run_dir}/{name}", fmt, f"{r.spec.label}: {name}")
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_zip = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(fd)
        try:
            crate.write_zip(tmp_zip)
            os.chmod(tmp_zip, FILE_MODE)  # what the umask gives a new file, as every sweep file
            os.replace(tmp_zip, out)
        except BaseException:
            Path(tmp_zip).unlink(missing_ok=True)
            raise
    return out


@dataclass
class RunCheck:
    """One run of a reproduction: its archived and reproduced final metrics, and the ones that
    differ by more than the tolerance (``{metric: (archived, reproduced)}``)."""

    run: str
    archived: dict[str, Any]
    reproduced: dict[str, Any]
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        return not self.differences


@dataclass
class Reproduction:
    """Where the runs were run again, and each run's check (empty without ``check``)."""

    out: Path
    checks: list[RunCheck]

    @property
    def mismatched(self) -> list[RunCheck]:
        return [c for c in self.checks if not c.matches]


def open_archive(path: str | Path, into: Path) -> tuple[list[RunSpec], Path]:
    """Unpack ``path`` into ``into`` and check it: a velocity RO-Crate of a format this version
    reads, whose every recorded file is there with its recorded SHA-256. Returns the runs' specs
    and the unpacked sweep folder."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Expected an archive written by 'velocity archive', got '{path}', which is not a file")
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():  # nothing may land outside the folder it is unpacked into
                if name.startswith("/") or ".." in Path(name).parts:
                    raise ValueError(f"Expected an archive of relative paths, got '{name}' in {path}")
            z.extractall(into)
    except zipfile.BadZipFile:
        raise ValueError(f"Expected a zip archive written by 'velocity archive', got '{path}', which is not a zip") from None
    meta_path = into / "ro-crate-metadata.json"
    if not meta_path.exists():
        raise ValueError(f"Expected an RO-Crate (ro-crate-metadata.json) in {path}, got a zip without one")
    meta = read_json(meta_path)
    graph = meta.get("@graph") if isinstance(meta, dict) else None
    if not isinstance(graph, list):
        raise DamagedFile(f"Expected an RO-Crate @graph in {path}'s ro-crate-metadata.json, got none")
    entities = {e.get("@id"): e for e in graph if isinstance(e, dict)}
    fmt = entities.get("./", {}).get(_FORMAT_TERM)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise ValueError(f"Expected an archive written by 'velocity archive' ({_FORMAT_TERM} in its root), got {path} without one")
    if fmt > ARCHIVE_FORMAT:
        raise ValueError(
            f"Expected an archive of format {ARCHIVE_FORMAT} or older, got format {fmt} in {path}: it was written by a newer velocity; upgrade to read it"
        )
    for ident, e in entities.items():
        if e.get("@type") != "File":
            continue
        ident = unquote(str(ident))  # an @id is a URI reference: its path is percent-encoded
        file = into / ident
        if not file.is_file():
            raise ValueError(f"Expected {ident} in {path} (its metadata lists it), got no such file: the archive is incomplete")
        if e.get("sha256") != _sha256(file):
            raise ValueError(
                f"Expected {ident} in {path} to have the SHA-256 its metadata records, got another: the file was changed after packing"
            )
    specs_data = read_json(into / "specs.json")
    if not isinstance(specs_data, list) or not specs_data:
        raise DamagedFile(f"Expected a list of run settings in {path}'s specs.json, got {type(specs_data).__name__}")
    try:
        specs = [RunSpec.model_validate(s) for s in specs_data]
    except ValueError as e:
        raise DamagedFile(f"Expected run settings in {path}'s specs.json, got {str(e).splitlines()[0]}") from None
    return specs, into / "sweep"


def reproduce(
    path: str | Path, *, out: str | Path, check: bool = True, tolerance: float = 1e-6, parallel: int | None = None
) -> Reproduction:
    """Run every run of the archive at ``path`` again into the sweep folder ``out`` and, with
    ``check``, compare each run's final metrics (:data:`CHECKED`) with the archived ones: equal
    within ``tolerance`` (absolute), and the same status. Checkpoints are not written again."""
    from velocity.sweep import Sweep
    from velocity.sweep.store import run_folder_name

    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not tolerance >= 0:
        raise ValueError(f"Expected tolerance as a number >= 0, got {tolerance!r}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"Expected a new or empty folder to run the archive again in, got '{out}', which holds files")
    with tempfile.TemporaryDirectory() as tmp:
        specs, archived_sweep = open_archive(path, Path(tmp))
        archived = {}
        for spec in specs:
            summary_path = archived_sweep / run_folder_name(spec) / "summary.json"
            archived[spec.label] = read_summary(summary_path) if summary_path.exists() else {"status": "not run"}
        sweep = Sweep([s.model_copy(update={"storage": None}) for s in specs], out=out, parallel=parallel).run()
        checks = []
        if check:
            for spec, index in zip(specs, range(len(specs)), strict=True):
                new_path = sweep.run_dir(index) / "summary.json"
                new = read_summary(new_path) if new_path.exists() else {"status": "not run"}
                checks.append(_compare(spec.label, archived[spec.label], new, float(tolerance)))
    return Reproduction(out=out, checks=checks)


def _compare(run: str, old: dict[str, Any], new: dict[str, Any], tolerance: float) -> RunCheck:
    keys = ("status", *CHECKED)
    check = RunCheck(run, {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys})
    if old.get("status") != new.get("status"):
        check.differences["status"] = (old.get("status"), new.get("status"))
    for key in CHECKED:
        a, b = old.get(key), new.get(key)
        if a is None and b is None:
            continue
        if a is None or b is None or not math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=tolerance):
            check.differences[key] = (a, b)
    return check
