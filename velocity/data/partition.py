"""Splitting a labelled data set across clients (Flower's conventions, which users know).

Every function takes the labels, the number of clients and a numpy ``Generator`` and returns one
sorted int64 index array per client. numpy's PCG64 stream is the same on every platform, so the
same seed gives the same partition on any machine.
"""

from __future__ import annotations

import math

import numpy as np

PARTITIONS = ("iid", "shard", "dirichlet", "pathological")


def _finish(parts: list[list[int]] | list[np.ndarray]) -> list[np.ndarray]:
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def partition_iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then split as evenly as possible."""
    return _finish(np.array_split(rng.permutation(len(labels)), num_clients))


def partition_dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator, *, min_partition_size: int = 10, max_tries: int = 1000
) -> list[np.ndarray]:
    """Per class, client proportions ~ Dir(α); resample until every client has at least
    ``min_partition_size`` examples (Hsu, Qi, Brown 2019; Flower's DirichletPartitioner).
    α = inf is iid."""
    if math.isinf(alpha):
        return partition_iid(labels, num_clients, rng)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            props = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_partition_size:
            return _finish(parts)
    raise ValueError(
        f"Expected a Dirichlet partition with at least min_partition_size = {min_partition_size} examples per client, "
        f"got none in {max_tries} tries (alpha = {alpha}, num_clients = {num_clients}, {len(labels)} examples): "
        "raise alpha, lower min_partition_size or use fewer clients"
    )


def partition_shard(labels: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by label, cut into ``num_clients · shards_per_client`` shards, deal each client
    ``shards_per_client`` random shards (McMahan et al., AISTATS 2017)."""
    num_shards = num_clients * shards_per_client
    if num_shards > len(labels):
        raise ValueError(f"Expected at most {len(labels)} shards (one example each), got num_clients · shards_per_client = {num_shards}")
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, num_shards)
    deal = rng.permutation(num_shards).reshape(num_clients, shards_per_client)
    return _finish([np.concatenate([shards[s] for s in row]) for row in deal])


def partition_pathological(labels: np.ndarray, num_clients: int, classes_per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each client holds exactly ``classes_per_client`` labels; class c's examples are split
    evenly among the clients that hold c. Classes are dealt round-robin from a shuffled order so
    every class is used when num_clients · classes_per_client ≥ number of classes."""
    classes = np.unique(labels)
    if classes_per_client > len(classes):
        raise ValueError(f"Expected classes_per_client <= {len(classes)} (the number of classes), got {classes_per_client}")
    order = rng.permutation(classes)
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    pos = 0
    for k in range(num_clients):
        chosen: list[int] = []
        while len(chosen) < classes_per_client:
            c = int(order[pos % len(order)])
            pos += 1
            if c not in chosen:
                chosen.append(c)
        for c in chosen:
            holders[c].append(k)
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for c, ks in holders.items():
        if not ks:
            continue
        idx = rng.permutation(np.flatnonzero(labels == c))
        for k, chunk in zip(ks, np.array_split(idx, len(ks)), strict=True):
            parts[k].extend(chunk.tolist())
    return _finish(parts)


def partition(
    labels: np.ndarray,
    num_clients: int,
    method: str,
    *,
    alpha: float | None = None,
    shards_per_client: int | None = None,
    classes_per_client: int | None = None,
    min_partition_size: int = 10,
    seed: int = 0,
) -> list[np.ndarray]:
    """Dispatch to one partition scheme after checking its arguments."""
    if method not in PARTITIONS:
        raise ValueError(f"Unknown partition {method!r}; expected one of: {', '.join(PARTITIONS)}")
    if not isinstance(num_clients, int) or num_clients < 1:
        raise ValueError(f"Expected num_clients as an integer >= 1, got {num_clients!r}")
    if num_clients > len(labels):
        raise ValueError(f"Expected num_clients <= {len(labels)} (the training examples), got {num_clients}")
    rng = np.random.default_rng(seed)
    if method == "iid":
        return partition_iid(labels, num_clients, rng)
    if method == "dirichlet":
        if alpha is None or not alpha > 0:
            raise ValueError(f"Expected alpha > 0 for the dirichlet partition, got {alpha!r}")
        return partition_dirichlet(labels, num_clients, alpha, rng, min_partition_size=min_partition_size)
    if method == "shard":
        if shards_per_client is None or shards_per_client < 1:
            raise ValueError(f"Expected shards_per_client >= 1 for the shard partition, got {shards_per_client!r}")
        return partition_shard(labels, num_clients, shards_per_client, rng)
    if classes_per_client is None or classes_per_client < 1:
        raise ValueError(f"Expected classes_per_client >= 1 for the pathological partition, got {classes_per_client!r}")
    return partition_pathological(labels, num_clients, classes_per_client, rng)


def label_counts(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """The client × class matrix of label counts."""
    return np.stack([np.bincount(labels[p], minlength=num_classes) for p in parts]).astype(np.int64)
