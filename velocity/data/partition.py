"""Splitting a labelled data set across clients (Flower's conventions, which users know).

Every function takes the labels, the number of clients and a numpy ``Generator`` and returns one
sorted int64 index array per client. numpy's PCG64 stream is the same on every platform, so the
same seed gives the same partition on any machine.
"""

from __future__ import annotations

import math

import numpy as np

PARTITIONS = ("iid", "shard", "dirichlet", "pathological", "quantity", "natural")
#: How client sizes fall off in the quantity-skew partition.
SIZE_DISTRIBUTIONS = ("power_law", "exponential")


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


def client_sizes(total: int, num_clients: int, distribution: str, skew: float, rng: np.random.Generator) -> np.ndarray:
    """Client sizes summing to ``total``: the k-th largest client's share ∝ (k + 1)^(−skew)
    (``"power_law"``, Zipf-like) or ∝ e^(−skew·k) (``"exponential"``); rounded by largest
    remainder, and dealt to the clients in a random order (client 0 is not always the largest).
    ``skew = 0`` gives equal sizes."""
    if distribution not in SIZE_DISTRIBUTIONS:
        raise ValueError(f"Expected a size distribution among {', '.join(SIZE_DISTRIBUTIONS)}, got {distribution!r}")
    if not (isinstance(skew, int | float) and not isinstance(skew, bool) and math.isfinite(skew) and skew >= 0):
        raise ValueError(f"Expected size_skew as a finite number >= 0, got {skew!r}")
    k = np.arange(num_clients, dtype=np.float64)
    weights = (k + 1.0) ** -skew if distribution == "power_law" else np.exp(-skew * k)
    exact = total * weights / weights.sum()
    sizes = np.floor(exact).astype(np.int64)
    # largest remainders first; ties to the larger client (stable order)
    for i in np.argsort(-(exact - sizes), kind="stable")[: total - int(sizes.sum())]:
        sizes[i] += 1
    return sizes[rng.permutation(num_clients)]


def partition_quantity(
    labels: np.ndarray,
    num_clients: int,
    rng: np.random.Generator,
    *,
    distribution: str = "power_law",
    skew: float = 1.0,
    alpha: float | None = None,
    min_partition_size: int = 10,
) -> list[np.ndarray]:
    """Quantity skew: clients of very different sizes (:func:`client_sizes`; Li et al., "Federated
    learning on non-IID data silos: an experimental study", ICDE 2022, and Flower's size
    partitioners). Without ``alpha`` each client's examples are drawn at random (the labels follow
    the data set's); with ``alpha`` each client also draws its label mix from Dir(α) and takes its
    examples class by class from what is left (quantity and label skew together)."""
    sizes = client_sizes(len(labels), num_clients, distribution, skew, rng)
    if sizes.min() < max(1, min_partition_size):  # a client without examples cannot train
        raise ValueError(
            f"Expected every client to get at least min_partition_size = {max(1, min_partition_size)} examples, got {int(sizes.min())} for the "
            f"smallest ({distribution}, size_skew = {skew:g}, {len(labels)} examples, {num_clients} clients): "
            "lower size_skew or min_partition_size, or use fewer clients"
        )
    if alpha is None or math.isinf(alpha):
        cuts = np.cumsum(sizes)[:-1]
        return _finish(np.split(rng.permutation(len(labels)), cuts))
    classes = np.unique(labels)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    left = np.array([len(p) for p in pools], dtype=np.int64)
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    # clients fill in a random order, each from its own Dir(α) label mix over the classes left
    for k in rng.permutation(num_clients):
        want = int(sizes[k])
        props = rng.dirichlet(np.full(len(classes), alpha))
        while want > 0:
            mix = np.where(left > 0, props, 0.0)
            if mix.sum() <= 0:  # its classes are used up: the rest of the data, in proportion
                mix = left.astype(np.float64)
            take = np.minimum(left, np.floor(want * mix / mix.sum()).astype(np.int64))
            if take.sum() == 0:  # fewer left to place than classes: one at a time, by its mix
                take[int(np.argmax(mix))] = 1
            for c in np.flatnonzero(take):
                n = int(take[c])
                parts[k].extend(pools[c][:n])
                del pools[c][:n]
            left -= take
            want -= int(take.sum())
    return _finish(parts)


def partition_natural(
    groups: np.ndarray, num_clients: int, rng: np.random.Generator, *, column: str = "the group column"
) -> list[np.ndarray]:
    """The natural partition: the examples of one group (a writer, a user, a site) stay together
    (Caldas et al., "LEAF: A benchmark for federated settings", 2018; Flower's
    NaturalIdPartitioner). The groups are dealt largest first (equal sizes in a seeded order),
    each to the client holding the fewest examples so far: with as many groups as clients, one
    each; with more, sizes as even as whole groups allow. Fewer groups than clients: an error."""
    values, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(values) < num_clients:
        raise ValueError(
            f"Expected at least num_clients = {num_clients} groups in {column} for the natural partition, got {len(values)}: "
            "use fewer clients or another partition"
        )
    order = rng.permutation(len(values))  # the seeded order of groups of equal size
    order = order[np.argsort(-sizes[order], kind="stable")]
    held = np.zeros(num_clients, dtype=np.int64)
    owner = np.empty(len(values), dtype=np.int64)
    for g in order:
        k = int(np.argmin(held))  # the first of the smallest clients
        owner[g] = k
        held[k] += sizes[g]
    client_of_example = owner[inverse]
    return _finish([np.flatnonzero(client_of_example == k) for k in range(num_clients)])


def partition(
    labels: np.ndarray,
    num_clients: int,
    method: str,
    *,
    alpha: float | None = None,
    shards_per_client: int | None = None,
    classes_per_client: int | None = None,
    min_partition_size: int = 10,
    size_distribution: str = "power_law",
    size_skew: float = 1.0,
    groups: np.ndarray | None = None,
    group_column: str | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """Dispatch to one partition scheme after checking its arguments (``groups``: per example,
    its value of ``group_column``, which the natural partition keeps together and a Dirichlet
    partition given a ``group_column`` skews instead of the labels)."""
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
        if group_column is not None:  # skewed over another attribute than the label (Flower's partition_by)
            if groups is None or len(groups) != len(labels):
                raise ValueError(f"Expected the values of column {group_column!r} for a dirichlet partition over it, got none")
            labels = np.unique(groups, return_inverse=True)[1]
        return partition_dirichlet(labels, num_clients, alpha, rng, min_partition_size=min_partition_size)
    if method == "natural":
        if group_column is None or groups is None or len(groups) != len(labels):
            raise ValueError(f"Expected a column to partition by for the natural partition (partition_by), got {group_column!r}")
        return partition_natural(groups, num_clients, rng, column=f"column {group_column!r}")
    if method == "quantity":
        if alpha is not None and not alpha > 0:
            raise ValueError(f"Expected alpha > 0 (label skew) or none for the quantity partition, got {alpha!r}")
        return partition_quantity(
            labels, num_clients, rng, distribution=size_distribution, skew=size_skew, alpha=alpha, min_partition_size=min_partition_size
        )
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
