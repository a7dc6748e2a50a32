"""Loading through Hugging Face ``datasets``: hub names when online, local parquet / csv / arrow /
json files, image folders and ``save_to_disk`` directories always. One code path decodes any of
them into arrays (once; the result is cached on disk so a sweep's workers do not decode again)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from velocity.data.builtin import ArrayData

LABEL_COLUMNS = ("label", "labels", "target", "class", "y", "fine_label")
IMAGE_COLUMNS = ("image", "img", "images", "picture", "pixel_values")
PIXEL_COLUMN = re.compile(r"^(pixel|px)?_?\d+$|^\d+x\d+$", re.IGNORECASE)
FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow", ".json": "json", ".jsonl": "json"}


def cache_dir() -> Path:
    return Path(os.environ.get("VELOCITY_CACHE_DIR", Path.home() / ".cache" / "velocity"))


def clear_cache() -> None:
    """Remove every cached decoded data set."""
    import shutil

    shutil.rmtree(cache_dir(), ignore_errors=True)


def _fingerprint(source: str) -> str:
    """The source text plus, for local paths, every file's size and mtime: an edit invalidates."""
    parts = [source]
    p = Path(source)
    if p.exists():
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        parts += [f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


_ARRAYS = ("x", "y", "x_test", "y_test", "groups")


def _read_cache(key: str) -> ArrayData | None:
    d = cache_dir() / key
    if not (d / "meta.json").exists():
        return None
    meta = json.loads((d / "meta.json").read_text())
    arrays = {n: np.load(d / f"{n}.npy") if (d / f"{n}.npy").exists() else None for n in _ARRAYS}
    x, y = arrays["x"], arrays["y"]
    if x is None or y is None or (meta.get("group_column") is not None and arrays["groups"] is None):  # damaged: decode again
        return None
    return ArrayData(x, y, arrays["x_test"], arrays["y_test"], int(meta["num_classes"]), arrays["groups"], meta.get("group_column"))


def _write_cache(key: str, data: ArrayData) -> None:
    final = cache_dir() / key
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}."))
    for name in _ARRAYS:
        arr = getattr(data, name)
        if arr is not None:
            np.save(tmp / f"{name}.npy", arr)
    (tmp / "meta.json").write_text(json.dumps({"num_classes": data.num_classes, "group_column": data.group_column}))
    try:
        os.replace(tmp, final)  # atomic: a reader sees the whole set or none
    except OSError:  # another process won the race; its copy is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _open(source: str) -> Any:
    """A ``datasets.Dataset`` or ``DatasetDict`` for a local path or a hub name."""
    import datasets

    p = Path(source).expanduser()
    if p.is_file():
        builder = FILE_BUILDERS.get(p.suffix.lower())
        if builder is None:
            raise ValueError(f"Expected a .parquet, .csv, .arrow, .json or .jsonl file, got {p.name}")
        return datasets.load_dataset(builder, data_files=str(p))
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            return datasets.load_from_disk(str(p))
        files = [f for f in p.iterdir() if f.suffix.lower() in FILE_BUILDERS]
        if files:
            builders = {FILE_BUILDERS[f.suffix.lower()] for f in files}
            if len(builders) > 1:
                raise ValueError(f"Expected files of one format in {p}, got {sorted(builders)}")
            return datasets.load_dataset(builders.pop(), data_files=[str(f) for f in sorted(files)])
        return datasets.load_dataset("imagefolder", data_dir=str(p))
    if source.startswith((".", "/", "~")) or (os.sep in source and not re.fullmatch(r"[\w.-]+/[\w.-]+", source)):
        raise FileNotFoundError(f"Expected an existing file or folder, got {source!r}")
    try:
        return datasets.load_dataset(source)
    except Exception as e:  # offline, unknown repo, gated repo...
        raise ValueError(
            f"Could not load {source!r} from the Hugging Face hub ({type(e).__name__}: {e}). Without network, use a local "
            "file or folder (parquet, csv, arrow, an image folder, a save_to_disk directory) or a built-in set: blobs, digits, synthetic-mnist"
        ) from None


def _splits(ds: Any) -> tuple[Any, Any | None]:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        train_name = "train" if "train" in ds else next(iter(ds))
        test_name = next((n for n in ("test", "validation", "valid") if n in ds and n != train_name), None)
        return ds[train_name], ds[test_name] if test_name else None
    return ds, None


def _decode_image(value: Any) -> np.ndarray:
    from PIL import Image

    if isinstance(value, dict) and value.get("bytes") is not None:
        value = Image.open(io.BytesIO(value["bytes"]))
    elif isinstance(value, dict) and value.get("path"):
        value = Image.open(value["path"])
    elif isinstance(value, (bytes, bytearray)):
        value = Image.open(io.BytesIO(value))
    if isinstance(value, Image.Image):
        if value.mode not in ("L", "RGB"):
            value = value.convert("RGB")
        arr = np.asarray(value, dtype=np.float32) / 255.0
    else:
        arr = np.asarray(value, dtype=np.float32)
        if arr.max(initial=0) > 1.0:
            arr = arr / 255.0
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)  # channel-first


class _Columns:
    """Which columns hold the label and the inputs, decided once from the training split."""

    def __init__(self, ds: Any, where: str, group: str | None = None) -> None:
        cols = list(ds.column_names)
        if group is not None and group not in cols:
            raise ValueError(f"Expected a column {group!r} in {where} to partition by, got the columns {cols}")
        self.group = group
        cols = [c for c in cols if c != group]  # what groups the examples is not an input
        lower = {c.lower(): c for c in cols}
        self.label = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
        self.image = next((lower[c] for c in IMAGE_COLUMNS if c in lower), None)
        rest = [c for c in cols if c != self.label]
        self.pixels = [c for c in rest if PIXEL_COLUMN.match(c)] if self.image is None else []
        sample = ds[0] if len(ds) else {}
        self.features = [] if self.image or self.pixels else [c for c in rest if isinstance(sample.get(c), (int, float, bool, np.number))]
        if self.label is None or not (self.image or self.pixels or self.features):
            raise ValueError(
                f"Could not find the inputs and labels in {where}: columns are {cols}. Expected a label column "
                f"({', '.join(LABEL_COLUMNS)}) and an image column ({', '.join(IMAGE_COLUMNS)}), pixel columns "
                "(pixel0, pixel1, ...), or numeric feature columns"
            )

    def inputs(self, ds: Any) -> np.ndarray:
        if self.image:
            images = [_decode_image(v) for v in ds[self.image]]
            shapes = {a.shape for a in images}
            if len(shapes) > 1:
                raise ValueError(f"Expected images of one size, got {sorted(shapes)[:4]}")
            return np.stack(images).astype(np.float32)
        cols = self.pixels or self.features
        table = ds.select_columns(cols).with_format("numpy")
        x = np.stack([np.asarray(table[c], dtype=np.float32) for c in cols], axis=1)
        if self.pixels:
            side = round(len(cols) ** 0.5)
            if x.max(initial=0) > 1.0:
                x = x / 255.0
            if side * side == len(cols):
                return x.reshape(len(x), 1, side, side)
        return x

    def labels(self, ds: Any) -> list[Any]:
        return list(ds[self.label])


def load_source(source: str, group_column: str | None = None) -> ArrayData:
    """Decode a local or hub data set into arrays, through the on-disk cache; with
    ``group_column``, also that column of the training split (the natural partition's groups)."""
    key = _fingerprint(source) + (f"-by-{hashlib.sha256(group_column.encode()).hexdigest()[:8]}" if group_column else "")
    cached = _read_cache(key)
    if cached is not None:
        return cached
    data = decode(source, group_column)
    _write_cache(key, data)
    return data


def _check_finite(source: str, x: np.ndarray, x_test: np.ndarray | None) -> None:
    """Refuse NaN or infinite features: a model trained on them is broken from the first step,
    and its run would only show a missing loss."""
    for split, arr in (("", x), (" test", x_test)):
        if arr is not None and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr.reshape(len(arr), -1))).any(axis=1).sum())
            raise ValueError(f"Expected finite features in {source}, got NaN or infinite values in {bad} of {len(arr)}{split} examples")


def decode(source: str, group_column: str | None = None) -> ArrayData:
    train, test = _splits(_open(source))
    cols = _Columns(train, source, group_column)
    x = cols.inputs(train)
    raw_y = cols.labels(train)
    raw_test = cols.labels(test) if test is not None else []
    values = sorted(set(raw_y) | set(raw_test), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values) and min(values) >= 0:
        mapping = {v: int(v) for v in values}
        num_classes = int(max(values)) + 1
    else:
        mapping = {v: i for i, v in enumerate(values)}  # e.g. string labels, in sorted order
        num_classes = len(values)
    y = np.array([mapping[v] for v in raw_y], dtype=np.int64)
    x_test = y_test = None
    if test is not None:
        x_test = cols.inputs(test)
        y_test = np.array([mapping[v] for v in raw_test], dtype=np.int64)
    _check_finite(source, x, x_test)  # before standardising spreads one NaN over a column
    if cols.features:  # tabular: standardise with the training statistics
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
        x = (x - mean) / std
        if x_test is not None:
            x_test = (x_test - mean) / std
    groups = None if group_column is None else np.array([str(v) for v in train[group_column]])
    return ArrayData(
        x.astype(np.float32), y, None if x_test is None else x_test.astype(np.float32), y_test, num_classes, groups, group_column
    )
