"""Federated data: load a data set (built-in, local file or folder, Hugging Face hub), split off a
test set, and partition the training examples across clients.

    >>> data = load_federated("digits", num_clients=10, partition="dirichlet", alpha=0.5)
    >>> data.label_counts.shape
    (10, 10)

A built-in set is a fixed data set: its generator uses ``seed=0`` unless the name says otherwise
(``"blobs(seed=3)"``), and the test split is fixed too. The ``seed`` argument of
``load_federated`` drives only the partition, so replicate runs with different seeds share the
data and the test set and differ in who holds what.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from velocity.data.builtin import BUILTINS, ArrayData, load_builtin, parse_builtin
from velocity.data.partition import PARTITIONS, label_counts, partition
from velocity.data.partition import partition as _partition
from velocity.data.sources import clear_cache, load_source

__all__ = [
    "BUILTINS",
    "PARTITIONS",
    "FederatedDataset",
    "clear_cache",
    "describe_builtin_datasets",
    "input_shape",
    "label_counts",
    "list_builtin_datasets",
    "load_federated",
    "normalisation_for",
    "num_classes",
    "partition",
    "partition_label_counts",
    "plot_partition",
]

#: The split that cuts a test set off a source that has none; fixed so every run of a data set
#: is measured on the same examples.
TEST_SPLIT_SEED = 0x7E57

#: Per-channel mean and standard deviation of the training images (pixels scaled to [0, 1]) of
#: the common image sets, applied when one is loaded by its hub name (``ylecun/mnist`` or
#: ``mnist``). CIFAR's are the true per-pixel statistics, not the often-copied
#: (0.2023, 0.1994, 0.2010), which are the per-image ones.
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def normalisation_for(source: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The statistics of a hub name such as ``ylecun/mnist``, ``zalando-datasets/fashion_mnist``
    or ``uoft-cs/cifar10`` (the owner is ignored; ``-`` reads as ``_``); None for anything else,
    local paths and built-in sets included."""
    from pathlib import Path

    text = source.strip()
    if parse_builtin(text) is not None or Path(text).expanduser().exists():
        return None
    return NORMALISATION.get(text.split("/")[-1].lower().replace("-", "_"))


@dataclass(frozen=True)
class FederatedDataset:
    """A data set split across clients. Tensors live on the CPU; ``client_indices[k]`` indexes
    ``x_train``/``y_train`` for client k."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    client_indices: list[np.ndarray]
    num_classes: int
    partition: str
    label_counts: np.ndarray = field(repr=False)

    @property
    def num_clients(self) -> int:
        return len(self.client_indices)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def client(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client k's training examples and labels."""
        if not 0 <= k < self.num_clients:
            raise IndexError(f"Expected a client id in 0..{self.num_clients - 1}, got {k}")
        idx = torch.from_numpy(self.client_indices[k])
        return self.x_train[idx], self.y_train[idx]

    def summary(self) -> str:
        sizes = self.label_counts.sum(axis=1)
        return (
            f"{self.name}: {len(self.y_train)} training / {len(self.y_test)} test examples, {self.num_classes} classes, "
            f"input {self.input_shape}; {self.num_clients} clients ({self.partition}), {sizes.min()}–{sizes.max()} examples each"
        )


def list_builtin_datasets() -> dict[str, str]:
    """Built-in offline data sets and what they are."""
    return {name: doc for name, (_, doc) in BUILTINS.items()}


def describe_builtin_datasets(test_fraction: float = 0.2) -> list[dict[str, Any]]:
    """Each built-in set at its defaults, as generated here: its training and test sizes, classes,
    one example's shape and the column a natural partition can use (each is built once)."""
    out = []
    for name, (_, about) in BUILTINS.items():
        data = _load(name, test_fraction)
        x_tr, _, x_te, _, _ = _split_test(data, test_fraction)
        out.append(
            {
                "name": name,
                "about": about,
                "train": len(x_tr),
                "test": len(x_te),
                "classes": data.num_classes,
                "shape": tuple(int(v) for v in data.x.shape[1:]),
                "partition_by": data.group_column,
            }
        )
    return out


def _split_test(data: ArrayData, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Training inputs, labels, test inputs, labels, and the training examples' groups (if any)."""
    if data.x_test is not None and data.y_test is not None:
        return data.x, data.y, data.x_test, data.y_test, data.groups
    from sklearn.model_selection import train_test_split

    counts = np.bincount(data.y, minlength=data.num_classes)
    stratify = data.y if counts[counts > 0].min() >= 2 else None  # stratify when every class can be split
    # the index is split, so the groups (when there are) follow their examples
    idx_tr, idx_te = train_test_split(np.arange(len(data.y)), test_size=test_fraction, random_state=TEST_SPLIT_SEED, stratify=stratify)
    groups = None if data.groups is None else data.groups[idx_tr]
    return data.x[idx_tr], data.y[idx_tr], data.x[idx_te], data.y[idx_te], groups


def _load(source: str, test_fraction: float, group_column: str | None = None) -> ArrayData:
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"Expected a data set name or path, got {source!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"Expected test_fraction in (0, 1), got {test_fraction!r}")
    builtin = parse_builtin(source)
    if builtin is None:
        return load_source(source, group_column)
    name, kwargs = builtin
    data = load_builtin(name, {k: v for k, v in kwargs.items() if k != "seed"}, int(kwargs.get("seed", 0)))
    if group_column is not None and data.group_column != group_column:
        has = f"its column is {data.group_column!r}" if data.group_column else "it has none"
        raise ValueError(f"Expected a column {group_column!r} in the built-in set {name} to partition by, got none: {has}")
    return data


@functools.lru_cache(maxsize=8)
def _training_labels(
    source: str, test_fraction: float, group_column: str | None = None
) -> tuple[np.ndarray, int, tuple[int, ...], np.ndarray | None]:
    """The training labels, the number of classes, one example's shape and the training
    examples' groups (with ``group_column``)."""
    data = _load(source, test_fraction, group_column)
    _, y_tr, _, _, groups = _split_test(data, test_fraction)
    y_tr = np.asarray(y_tr, dtype=np.int64)
    y_tr.setflags(write=False)
    return y_tr, data.num_classes, tuple(int(v) for v in data.x.shape[1:]), groups if group_column is not None else None


def num_classes(source: str, *, test_fraction: float = 0.2) -> int:
    """How many classes the data set ``source`` has (its labels are kept in memory, as for
    :func:`partition_label_counts`)."""
    return _training_labels(source.strip() if isinstance(source, str) else source, test_fraction)[1]


def input_shape(source: str, *, test_fraction: float = 0.2) -> tuple[int, ...]:
    """The shape of one example of the data set ``source`` (e.g. ``(1, 28, 28)``)."""
    return _training_labels(source.strip() if isinstance(source, str) else source, test_fraction)[2]


def partition_label_counts(
    source: str,
    *,
    num_clients: int,
    partition: str = "iid",
    alpha: float | None = None,
    shards_per_client: int | None = None,
    classes_per_client: int | None = None,
    min_partition_size: int = 10,
    size_distribution: str = "power_law",
    size_skew: float = 1.0,
    partition_by: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """The client × class label counts ``load_federated`` would give with these arguments,
    without building tensors. The training labels are kept in memory per source, so moving a
    slider over α re-partitions in milliseconds."""
    by = _column_read(partition, partition_by)
    labels, num_classes, _, groups = _training_labels(source.strip() if isinstance(source, str) else source, test_fraction, by)
    parts = _partition(
        labels,
        num_clients,
        partition,
        alpha=alpha,
        shards_per_client=shards_per_client,
        classes_per_client=classes_per_client,
        min_partition_size=min_partition_size,
        size_distribution=size_distribution,
        size_skew=size_skew,
        groups=groups,
        group_column=by,
        seed=seed,
    )
    return label_counts(labels, parts, num_classes)


def load_federated(
    source: str,
    *,
    num_clients: int,
    partition: str = "iid",
    alpha: float | None = None,
    shards_per_client: int | None = None,
    classes_per_client: int | None = None,
    min_partition_size: int = 10,
    size_distribution: str = "power_law",
    size_skew: float = 1.0,
    partition_by: str | None = None,
    test_fraction: float = 0.2,
    normalize: bool | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
) -> FederatedDataset:
    """Load ``source`` and partition its training examples across ``num_clients`` clients.

    Parameters
    ----------
    source
        A built-in set (``"blobs"``, ``"digits"``, ``"synthetic-mnist"``, with options as
        ``"blobs(classes=4, dim=10)"``), a local parquet / csv / arrow / json file, an image
        folder, a ``save_to_disk`` directory, or a Hugging Face hub name (online).
    partition
        ``"iid"``; ``"dirichlet"`` with ``alpha`` (Hsu et al. 2019; ``alpha=inf`` is iid);
        ``"shard"`` with ``shards_per_client`` (McMahan et al. 2017); ``"natural"`` with
        ``partition_by`` (a column's groups stay together); ``"pathological"`` with
        ``classes_per_client``; ``"quantity"``: clients of skewed sizes (``size_distribution``,
        ``size_skew``), with a Dirichlet label skew too when ``alpha`` is given.
    min_partition_size
        Dirichlet: resample until every client holds at least this many examples; quantity: the
        smallest size allowed.
    size_distribution, size_skew
        Quantity skew: the k-th largest client's share ∝ (k + 1)^(−size_skew) (``"power_law"``)
        or e^(−size_skew·k) (``"exponential"``).
    partition_by
        The natural partition's column (``"natural"``: the examples of one value, such as a
        writer, stay together; ``synthetic-mnist`` has ``"writer"``), or the attribute a
        ``"dirichlet"`` partition skews instead of the label.
    test_fraction
        Share of the examples held out for testing when the source has no test split.
    normalize
        Standardise each channel by the set's known statistics (:data:`NORMALISATION`): by
        default for MNIST, Fashion-MNIST and CIFAR-10/100 loaded by their hub names; ``True``
        requires known statistics, ``False`` leaves the pixels in [0, 1].
    transform
        A function of a batch of inputs (float32, ``(n, *shape)``) applied to the training and
        test inputs after normalising (e.g. resizing or a fixed feature map); it must return
        float arrays with one row per example.
    seed
        Drives the partition.
    """
    by = _column_read(partition, partition_by)
    data = _load(source, test_fraction, by)
    x_tr, y_tr, x_te, y_te, groups = _split_test(data, test_fraction)
    stats = normalisation_for(source)
    if normalize is True and stats is None:
        raise ValueError(f"Expected a data set with known statistics to normalize ({', '.join(NORMALISATION)}), got {source!r}")
    if stats is not None and normalize is not False:
        mean, std = (np.asarray(v, dtype=np.float32).reshape(1, -1, *([1] * (x_tr.ndim - 2))) for v in stats)
        if x_tr.ndim < 2 or x_tr.shape[1] != mean.shape[1]:
            raise ValueError(f"Expected {mean.shape[1]} channel(s) in {source!r} for its statistics, got inputs of shape {x_tr.shape[1:]}")
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    if transform is not None:
        x_tr, x_te = _transformed(transform, x_tr, "training"), _transformed(transform, x_te, "test")
    parts = _partition(
        y_tr,
        num_clients,
        partition,
        alpha=alpha,
        shards_per_client=shards_per_client,
        classes_per_client=classes_per_client,
        min_partition_size=min_partition_size,
        size_distribution=size_distribution,
        size_skew=size_skew,
        groups=groups,
        group_column=by,
        seed=seed,
    )
    if partition == "dirichlet":
        over = f" over {partition_by}" if partition_by else ""
        described = "iid (α = inf)" if alpha is not None and math.isinf(alpha) else f"dirichlet α = {alpha:g}{over}"
    elif partition == "shard":
        described = f"shard × {shards_per_client}"
    elif partition == "pathological":
        described = f"pathological, {classes_per_client} classes each"
    elif partition == "natural":
        described = f"natural, by {partition_by} ({len(np.unique(groups)) if groups is not None else 0} groups)"
    elif partition == "quantity":
        labels_too = "" if alpha is None or math.isinf(alpha) else f", dirichlet α = {alpha:g}"
        described = f"quantity skew ({size_distribution.replace('_', '-')} {size_skew:g}{labels_too})"
    else:
        described = "iid"
    return FederatedDataset(
        name=source.strip(),
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_te, dtype=np.int64)),
        client_indices=parts,
        num_classes=data.num_classes,
        partition=described,
        label_counts=label_counts(y_tr, parts, data.num_classes),
    )


def plot_partition(data: FederatedDataset | np.ndarray, *, percent: bool = False, title: str | None = None) -> Any:
    """An Altair chart of the partition: one bar per client, stacked by class (the panel's label
    picture; like Flower's ``plot_label_distributions``). ``data``: a :class:`FederatedDataset`
    or a client × class count matrix (:func:`partition_label_counts`); ``percent``: each bar is
    the client's label mix (sizes hidden), else its counts (quantity skew visible)."""
    from velocity.panel.charts import label_distribution
    from velocity.panel.state import label_rows

    counts = data.label_counts if isinstance(data, FederatedDataset) else np.asarray(data)
    if counts.ndim != 2 or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise ValueError(
            f"Expected a FederatedDataset or a client × class matrix of counts, got an array of shape {counts.shape} ({counts.dtype})"
        )
    import altair as alt

    chart = label_distribution(alt.Data(values=label_rows(counts)), percent=percent)
    name = title or (f"{data.name}: {data.partition}" if isinstance(data, FederatedDataset) else "Label distribution per client")
    return chart.properties(title=name, width=max(320, 14 * counts.shape[0]))


def _column_read(partition: str, partition_by: str | None) -> str | None:
    """The column a partition reads besides the label: ``partition_by`` for the natural partition
    and a Dirichlet skew of another attribute; None for the others."""
    return partition_by if partition in ("natural", "dirichlet") else None


def _transformed(transform: Callable[[np.ndarray], np.ndarray], x: np.ndarray, split: str) -> np.ndarray:
    out = np.asarray(transform(x))
    if out.ndim < 2 or len(out) != len(x) or not np.issubdtype(out.dtype, np.floating):
        raise ValueError(
            f"Expected the transform to return float inputs, one row per example ({len(x)} {split}), got an array of shape {out.shape} ({out.dtype})"
        )
    return out
