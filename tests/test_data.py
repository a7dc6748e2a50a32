"""The data layer: partitions, built-in sets, local files through Hugging Face ``datasets``, the
decode cache, and the errors a user meets."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from velocity.data import (
    FederatedDataset,
    label_counts,
    list_builtin_datasets,
    load_federated,
    partition,
)
from velocity.data import sources as data_sources

LABELS = np.repeat(np.arange(10), 100)  # 1000 examples, 10 balanced classes


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VELOCITY_CACHE_DIR", str(tmp_path / "cache"))


def _assert_exact_cover(parts, n):
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n, "every example goes to exactly one client"


# --- partitions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("iid", {}),
        ("dirichlet", {"alpha": 0.3}),
        ("shard", {"shards_per_client": 2}),
        ("pathological", {"classes_per_client": 3}),
        ("quantity", {"size_skew": 1.0}),
        ("quantity", {"size_distribution": "exponential", "size_skew": 0.2, "alpha": 0.5}),
    ],
)
def test_every_partition_covers_the_data_once_and_is_seeded(method, kwargs):
    a = partition(LABELS, 10, method, seed=1, **kwargs)
    b = partition(LABELS, 10, method, seed=1, **kwargs)
    c = partition(LABELS, 10, method, seed=2, **kwargs)
    assert len(a) == 10
    _assert_exact_cover(a, len(LABELS))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in a)


def test_iid_is_balanced():
    sizes = [len(p) for p in partition(LABELS, 7, "iid")]
    assert max(sizes) - min(sizes) <= 1


def test_dirichlet_skew_grows_as_alpha_shrinks():
    def dominant_share(alpha):
        counts = label_counts(LABELS, partition(LABELS, 10, "dirichlet", alpha=alpha, seed=0, min_partition_size=1), 10)
        return float((counts.max(axis=1) / counts.sum(axis=1)).mean())

    shares = [dominant_share(a) for a in (0.05, 0.5, 100.0)]
    assert shares[0] > shares[1] > shares[2]
    assert shares[0] > 0.55 and shares[2] < 0.2  # measured: 0.63 at α = 0.05


def test_dirichlet_respects_min_partition_size_and_inf_is_iid():
    parts = partition(LABELS, 20, "dirichlet", alpha=0.1, min_partition_size=20, seed=0)
    assert min(len(p) for p in parts) >= 20
    inf = partition(LABELS, 10, "dirichlet", alpha=math.inf, seed=0)
    iid = partition(LABELS, 10, "iid", seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(inf, iid, strict=True))


def test_shard_and_pathological_limit_the_classes_per_client():
    counts = label_counts(LABELS, partition(LABELS, 10, "shard", shards_per_client=2, seed=0), 10)
    assert ((counts > 0).sum(axis=1) <= 2).all()
    counts = label_counts(LABELS, partition(LABELS, 10, "pathological", classes_per_client=3, seed=0), 10)
    assert ((counts > 0).sum(axis=1) == 3).all()
    assert (counts.sum(axis=0) == 100).all(), "every class is used"


@pytest.mark.parametrize(("distribution", "skew"), [("power_law", 0.0), ("power_law", 1.2), ("exponential", 0.3)])
@pytest.mark.parametrize("alpha", [None, 0.3])
def test_quantity_skew_gives_the_sizes_of_its_law_with_or_without_label_skew(distribution, skew, alpha):
    parts = partition(LABELS, 8, "quantity", size_distribution=distribution, size_skew=skew, alpha=alpha, seed=3, min_partition_size=1)
    _assert_exact_cover(parts, len(LABELS))
    k = np.arange(8.0)
    weights = (k + 1) ** -skew if distribution == "power_law" else np.exp(-skew * k)
    want = 1000 * weights / weights.sum()
    got = np.sort([len(p) for p in parts])[::-1]
    assert np.abs(got - want).max() < 1, (got, want)  # rounded by largest remainder
    counts = label_counts(LABELS, parts, 10)
    if alpha is None:  # every client's labels are a random draw of the data's (10 balanced classes)
        big = counts[counts.sum(axis=1) >= 100]
        assert (big > 0).all()
    else:  # each client draws its own label mix: the dominant class holds far more than a tenth
        share = (counts.max(axis=1) / counts.sum(axis=1)).mean()
        assert share > 0.3, share


def test_quantity_skew_deals_the_sizes_in_a_seeded_order_and_names_its_limits():
    orders = {tuple(np.argsort([len(p) for p in partition(LABELS, 8, "quantity", seed=s, min_partition_size=1)])) for s in range(5)}
    assert len(orders) > 1, "client 0 is not always the largest"
    with pytest.raises(ValueError, match=r"at least min_partition_size = 10 examples, got 0 for the smallest .*lower size_skew"):
        partition(LABELS, 50, "quantity", size_skew=2.0)
    with pytest.raises(ValueError, match="Expected a size distribution among power_law, exponential, got 'zipf'"):
        partition(LABELS, 5, "quantity", size_distribution="zipf")
    with pytest.raises(ValueError, match="Expected size_skew as a finite number >= 0, got -1"):
        partition(LABELS, 5, "quantity", size_skew=-1)


def test_natural_partition_keeps_each_group_together_and_balances_whole_groups():
    rng = np.random.default_rng(0)
    groups = np.array([f"w{g}" for g in rng.integers(0, 23, size=len(LABELS))])
    for k in (23, 7):
        parts = partition(LABELS, k, "natural", groups=groups, group_column="writer", seed=4)
        _assert_exact_cover(parts, len(LABELS))
        owners = {}
        for client, p in enumerate(parts):
            for g in np.unique(groups[p]):
                assert owners.setdefault(g, client) == client, f"group {g} split across clients"
        if k == 23:
            assert all(len(np.unique(groups[p])) == 1 for p in parts)  # one writer each
        else:  # largest groups first to the smallest client: sizes within one group of each other
            sizes = np.array([len(p) for p in parts])
            assert sizes.max() - sizes.min() <= np.unique(groups, return_counts=True)[1].max()
        again = partition(LABELS, k, "natural", groups=groups, group_column="writer", seed=4)
        assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    with pytest.raises(ValueError, match="Expected at least num_clients = 30 groups in column 'writer' for the natural partition, got 23"):
        partition(LABELS, 30, "natural", groups=groups, group_column="writer")
    with pytest.raises(ValueError, match="Expected a column to partition by for the natural partition"):
        partition(LABELS, 5, "natural")


def test_natural_partition_on_synthetic_writers_and_on_a_parquet_column(tmp_path):
    data = load_federated("synthetic-mnist(samples=1500)", num_clients=8, partition="natural", partition_by="writer")
    assert data.num_clients == 8 and "natural, by writer" in data.partition
    # the same images as without writers: the writers come from a stream of their own
    plain = load_federated("synthetic-mnist(samples=1500)", num_clients=8)
    assert np.array_equal(data.x_train.numpy(), plain.x_train.numpy())
    # a generated parquet: the writer column groups the rows and is not a feature
    import datasets

    rng = np.random.default_rng(1)
    n = 300
    table = {"f0": rng.normal(size=n), "f1": rng.normal(size=n), "label": rng.integers(0, 3, n), "writer_id": rng.integers(0, 12, n)}
    path = tmp_path / "writers.parquet"
    datasets.Dataset.from_dict(table).to_parquet(str(path))
    fed = load_federated(str(path), num_clients=4, partition="natural", partition_by="writer_id", seed=2)
    assert fed.input_shape == (2,), "writer_id is left out of the features"
    x_all = np.stack([table["f0"], table["f1"]], axis=1)
    # rows of one writer are on one client: each training row's writer found by its (standardised) features
    scaled = (x_all - x_all.mean(0)) / (x_all.std(0) + 1e-8)
    per_client = []
    for k in range(4):
        rows = fed.client(k)[0].numpy()
        found = [np.flatnonzero(np.abs(scaled - row).sum(axis=1) < 1e-4) for row in rows]
        assert all(len(f) == 1 for f in found)  # the features are continuous: one row each
        per_client.append({int(table["writer_id"][f[0]]) for f in found})
    assert all(not (per_client[a] & per_client[b]) for a in range(4) for b in range(a + 1, 4)), per_client
    assert sum(len(w) for w in per_client) == len(set().union(*per_client)) >= 4
    with pytest.raises(
        ValueError,
        match=r"Expected a column 'author' in .*writers.parquet to partition by, got the columns \['f0', 'f1', 'label', 'writer_id'\]",
    ):
        load_federated(str(path), num_clients=4, partition="natural", partition_by="author")
    with pytest.raises(ValueError, match="Expected a column 'writer' in the built-in set digits to partition by"):
        load_federated("digits", num_clients=4, partition="natural", partition_by="writer")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((10, "zipf"), {}, "Unknown partition 'zipf'; expected one of"),
        ((0, "iid"), {}, "Expected num_clients as an integer >= 1, got 0"),
        ((2000, "iid"), {}, "Expected num_clients <= 1000"),
        ((10, "dirichlet"), {}, "Expected alpha > 0 for the dirichlet partition, got None"),
        ((10, "dirichlet"), {"alpha": -1.0}, "Expected alpha > 0"),
        ((10, "shard"), {}, "Expected shards_per_client >= 1"),
        ((10, "shard"), {"shards_per_client": 200}, "Expected at most 1000 shards"),
        ((10, "pathological"), {"classes_per_client": 11}, "Expected classes_per_client <= 10"),
        ((100, "dirichlet"), {"alpha": 0.01, "min_partition_size": 50}, "raise alpha, lower min_partition_size"),
    ],
)
def test_partition_errors_say_what_was_expected(args, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        partition(LABELS, *args, **kwargs)


# --- built-in sets and load_federated ---------------------------------------------------------


def test_builtin_sets_are_listed_and_load():
    assert set(list_builtin_datasets()) == {"blobs", "digits", "synthetic-mnist"}
    data = load_federated("digits", num_clients=5, seed=0)
    assert isinstance(data, FederatedDataset)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10 and data.num_clients == 5
    assert len(data.y_train) + len(data.y_test) == 1797
    assert abs(len(data.y_test) / 1797 - 0.2) < 0.01
    assert data.label_counts.sum() == len(data.y_train)
    x, y = data.client(2)
    assert len(x) == len(y) == len(data.client_indices[2])
    assert "5 clients (iid)" in data.summary()


def test_builtin_options_and_fixed_data_across_seeds():
    a = load_federated("blobs(classes=4, dim=6, per_class=50)", num_clients=4, seed=0)
    b = load_federated("blobs(classes=4, dim=6, per_class=50)", num_clients=4, seed=1)
    assert a.input_shape == (6,) and a.num_classes == 4
    # The seed moves who holds what, not the data set or its test split.
    assert np.array_equal(a.x_test.numpy(), b.x_test.numpy())
    assert not all(np.array_equal(p, q) for p, q in zip(a.client_indices, b.client_indices, strict=True))
    other = load_federated("blobs(classes=4, dim=6, per_class=50, seed=3)", num_clients=4, seed=0)
    assert not np.array_equal(a.x_test.numpy(), other.x_test.numpy())


def test_synthetic_mnist_is_mnist_shaped():
    data = load_federated("synthetic-mnist(samples=500)", num_clients=5, partition="dirichlet", alpha=1.0, seed=0)
    assert data.input_shape == (1, 28, 28)
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("blobs(classes=4", "Expected keyword arguments like blobs"),
        ("blobs(4)", "Expected keyword arguments like blobs"),
        ("blobs(colours=3)", "Unknown option for the built-in data set 'blobs'.*expected: classes, dim"),
        ("", "Expected a data set name or path"),
        ("./no/such/file.parquet", "Expected an existing file or folder"),
    ],
)
def test_bad_sources_are_named(source, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_federated(source, num_clients=2)


def test_hub_failure_explains_the_offline_way(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match=r"Could not load 'someone/mnist' from the Hugging Face hub \(ConnectionError.*built-in set"):
        load_federated("someone/mnist", num_clients=2)


def test_bad_test_fraction():
    with pytest.raises(ValueError, match=r"Expected test_fraction in \(0, 1\), got 1.5"):
        load_federated("digits", num_clients=2, test_fraction=1.5)


# --- local files through datasets -------------------------------------------------------------


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _image_table(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = [{"bytes": _png((rng.random((6, 6)) * 255).astype(np.uint8)), "path": None} for _ in range(n)]
    return images, labels


def test_local_parquet_with_images_and_a_test_split(tmp_path):
    import datasets

    images, labels = _image_table(60)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=3)})
    train = datasets.Dataset.from_dict({"image": images[:45], "label": labels[:45]}, features=features)
    test = datasets.Dataset.from_dict({"image": images[45:], "label": labels[45:]}, features=features)
    folder = tmp_path / "pq"
    folder.mkdir()
    train.to_parquet(str(folder / "train.parquet"))
    data = load_federated(str(folder / "train.parquet"), num_clients=3, seed=0)
    assert data.input_shape == (1, 6, 6) and data.num_classes == 3
    assert len(data.y_train) == 36 and len(data.y_test) == 9  # 20% split off
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0

    # A save_to_disk directory with its own test split uses it.
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "saved"))
    saved = load_federated(str(tmp_path / "saved"), num_clients=3, seed=0)
    assert len(saved.y_train) == 45 and len(saved.y_test) == 15


def test_local_csv_tabular_with_string_labels_is_standardised(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["f1,f2,species"] + [f"{rng.normal(5, 2):.4f},{rng.normal(-3, 1):.4f},{['setosa', 'virginica'][i % 2]}" for i in range(80)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="Could not find the inputs and labels"):
        load_federated(str(path), num_clients=2)  # 'species' is not a label column name
    path.write_text("\n".join(rows).replace("species", "label") + "\n")
    data = load_federated(str(path), num_clients=2, seed=0)
    assert data.input_shape == (2,) and data.num_classes == 2
    assert abs(float(data.x_train.mean())) < 0.2 and abs(float(data.x_train.std()) - 1.0) < 0.2


def test_pixel_columns_become_square_images(tmp_path):
    import polars as pl

    rng = np.random.default_rng(0)
    table = {f"pixel{i}": rng.integers(0, 256, size=40) for i in range(16)}
    table["label"] = np.arange(40) % 4
    pl.DataFrame(table).write_parquet(tmp_path / "pixels.parquet")
    data = load_federated(str(tmp_path / "pixels.parquet"), num_clients=2, seed=0)
    assert data.input_shape == (1, 4, 4) and data.num_classes == 4
    assert float(data.x_train.max()) <= 1.0


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray((rng.random((5, 5, 3)) * 255).astype(np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = load_federated(str(tmp_path / "imgs"), num_clients=2, seed=0)
    assert data.input_shape == (3, 5, 5) and data.num_classes == 2


def test_decoded_sets_are_cached_and_an_edit_invalidates(tmp_path, monkeypatch):
    import polars as pl

    path = tmp_path / "t.parquet"
    pl.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) ** 2, "label": np.arange(30) % 2}).write_parquet(path)
    calls = []
    real_decode = data_sources.decode
    monkeypatch.setattr(data_sources, "decode", lambda s, *rest: calls.append(s) or real_decode(s, *rest))
    load_federated(str(path), num_clients=2)
    load_federated(str(path), num_clients=2)
    assert len(calls) == 1, "the second load reads the cache"
    pl.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0), "label": np.arange(40) % 2}).write_parquet(path)
    data = load_federated(str(path), num_clients=2)
    assert len(calls) == 2 and len(data.y_train) + len(data.y_test) == 40


def test_plot_partition_draws_every_client_and_class_of_any_partition():
    data = load_federated(
        "blobs(classes=4, dim=8, per_class=60)", num_clients=6, partition="quantity", size_skew=1.0, alpha=0.5, min_partition_size=5
    )
    from velocity.data import plot_partition

    spec = plot_partition(data).to_dict()
    rows = spec["data"]["values"]
    # every non-zero cell of the client × class counts, and nothing else
    assert {(r["client"], r["class"], r["count"]) for r in rows} == {
        (k, c, int(data.label_counts[k, c])) for k in range(6) for c in range(4) if data.label_counts[k, c]
    }
    assert "quantity skew" in spec["title"] and spec["encoding"]["y"]["stack"] == "zero"
    assert plot_partition(data.label_counts, percent=True).to_dict()["encoding"]["y"]["stack"] == "normalize"
    with pytest.raises(ValueError, match=r"client × class matrix of counts, got an array of shape \(6,\)"):
        plot_partition(np.arange(6))


def test_hub_image_sets_are_normalised_by_their_known_statistics_and_a_transform_follows(monkeypatch):
    import datasets

    images, labels = _image_table(40)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=3)})
    hub = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)})
    monkeypatch.setattr(datasets, "load_dataset", lambda name, *a, **k: hub)  # "the hub", offline
    raw = load_federated("ylecun/mnist", num_clients=2, normalize=False)
    assert float(raw.x_train.min()) >= 0.0 and float(raw.x_train.max()) <= 1.0
    normed = load_federated("ylecun/mnist", num_clients=2)
    expected = (raw.x_train.numpy() - 0.1307) / 0.3081
    np.testing.assert_allclose(normed.x_train.numpy(), expected, rtol=0, atol=1e-6)  # float32 of values below 4
    np.testing.assert_allclose(normed.x_test.numpy(), (raw.x_test.numpy() - 0.1307) / 0.3081, rtol=0, atol=1e-6)
    # a CIFAR name asks for three channels: these images have one
    with pytest.raises(
        ValueError, match=r"Expected 3 channel\(s\) in 'uoft-cs/cifar10' for its statistics, got inputs of shape \(1, 6, 6\)"
    ):
        load_federated("uoft-cs/cifar10", num_clients=2)
    flipped = load_federated("ylecun/mnist", num_clients=2, transform=lambda x: x[:, :, ::-1, :].copy())
    np.testing.assert_array_equal(flipped.x_train.numpy(), normed.x_train.numpy()[:, :, ::-1, :])
    with pytest.raises(ValueError, match=r"Expected the transform to return float inputs, one row per example \(32 training\), got"):
        load_federated("ylecun/mnist", num_clients=2, transform=lambda x: x[:3])
    with pytest.raises(ValueError, match=r"Expected a data set with known statistics to normalize .*got 'digits'"):
        load_federated("digits", num_clients=2, normalize=True)


def test_dirichlet_over_another_attribute_skews_that_attribute(tmp_path):
    import datasets

    rng = np.random.default_rng(3)
    n = 600
    table = {"f0": rng.normal(size=n), "label": rng.integers(0, 2, n), "site": rng.choice(["a", "b", "c", "d", "e"], n)}
    path = tmp_path / "sites.parquet"
    datasets.Dataset.from_dict(table).to_parquet(str(path))
    skewed = load_federated(str(path), num_clients=5, partition="dirichlet", alpha=0.05, partition_by="site", min_partition_size=5, seed=1)
    assert "over site" in skewed.partition and skewed.input_shape == (1,)
    # each client's rows, matched back by their (standardised, continuous) feature, come from few sites
    x = (table["f0"] - table["f0"].mean()) / (table["f0"].std() + 1e-8)
    shares = []
    for k in range(5):
        rows = skewed.client(k)[0].numpy()[:, 0]
        sites = [table["site"][int(np.argmin(np.abs(x - v)))] for v in rows]
        shares.append(max(sites.count(s) for s in set(sites)) / len(sites))
    assert np.mean(shares) > 0.6, shares  # iid would give about 0.2–0.3 with five sites
    with pytest.raises(ValueError, match="Expected partition_by with the natural or dirichlet partition, got it with 'iid'"):
        from velocity.sweep import RunSpec

        RunSpec(partition_by="site")
