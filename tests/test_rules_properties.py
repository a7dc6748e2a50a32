"""Every rule against a plain numpy reference, and the properties robust aggregation promises.

The references follow the papers' definitions (see the docstrings in vfl-rs/src/rules/).
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from velocity import aggregate, apply_attack

# The same examples on every run, so CI is not a lottery; HYPOTHESIS_PROFILE=explore draws new
# ones (and more of them) to hunt for bugs.
settings.register_profile("velocity", max_examples=60, deadline=None, derandomize=True, database=None)
settings.register_profile("explore", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "velocity"))

finite = st.floats(-100, 100, allow_nan=False, width=32)


@st.composite
def matrices(draw, min_n=1, max_n=12, max_d=24, unique=False):
    """`unique=True` for rules that select by distance: repeated values make exact ties common,
    and a tie may be broken differently by a float32 kernel and a float64 reference."""
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, max_d))
    return draw(arrays(np.float32, (n, d), elements=finite, unique=unique))


# ---------------------------------------------------------------- numpy references
def ref_trimmed_mean(x, t):
    return np.sort(x.astype(np.float64), axis=0)[t : len(x) - t].mean(axis=0)


def ref_sq_dists(x):
    x = x.astype(np.float64)
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def assume_no_near_tie(key, k):
    """Selections by distance are defined up to ties; float32 kernels and float64 references may
    break an exact tie differently, so skip inputs whose k-th and (k+1)-th keys (nearly) tie."""
    s = np.sort(np.asarray(key, dtype=np.float64))
    if 0 < k < len(s):
        gap = abs(s[k] - s[k - 1])
        # Exact ties are structural (Krum with one neighbour: the closest pair share a score)
        # and both sides break them by index; only near ties are ambiguous.
        assume(gap == 0.0 or gap > 1e-5 * (1.0 + abs(s[k])))


def ref_krum_scores(x, f, members=None):
    d2 = ref_sq_dists(x)
    members = list(range(len(x))) if members is None else members
    k = min(max(len(members) - f - 2, 1), len(members) - 1)
    rows = [np.sort([d2[i, j] for j in members if j != i]) for i in members]
    for r in rows:
        assume_no_near_tie(r, k)
    return np.array([r[:k].sum() for r in rows])


def ref_multikrum(x, f, m):
    scores = ref_krum_scores(x, f)
    assume_no_near_tie(scores, m)
    order = np.argsort(scores, kind="stable")[:m]
    return x[order].astype(np.float64).mean(axis=0)


def ref_bulyan(x, f):
    remaining, chosen = list(range(len(x))), []
    while len(chosen) < len(x) - 2 * f:
        if len(remaining) == 1:
            pos = 0
        else:
            scores = ref_krum_scores(x, f, remaining)
            assume_no_near_tie(scores, 1)
            pos = int(np.argmin(scores))
        chosen.append(remaining.pop(pos))
    sel = x[chosen].astype(np.float64)
    beta = len(chosen) - 2 * f
    med = np.median(sel, axis=0)
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        col = np.sort(sel[:, j])
        dist = np.abs(col - med[j])
        out[j] = col[np.argsort(dist, kind="stable")[:beta]].mean()
    return out


def ref_nnm(x, f):
    d2 = ref_sq_dists(x)
    k = len(x) - f
    out = []
    for i in range(len(x)):
        key = d2[i].copy()
        key[i] = -np.inf
        assume_no_near_tie(key, k)
        out.append(x[np.argsort(key, kind="stable")[:k]].astype(np.float64).mean(axis=0))
    return np.array(out)


def ref_centered_clipping(x, tau, iters, v=None):
    v = np.zeros(x.shape[1]) if v is None else v
    for _ in range(iters):
        diff = x.astype(np.float64) - v
        norms = np.linalg.norm(diff, axis=1)
        scale = np.minimum(1.0, tau / np.where(norms > 0, norms, 1.0))
        v = v + (diff * scale[:, None]).mean(axis=0)
    return v


def tol(x):
    """The core accumulates in float64 and returns float32 (ε = 6e-8 of the magnitudes involved);
    the iterative rules stop at their own tolerance (1e-6 relative by default). 1e-4 of the
    largest magnitude bounds both; a wrong rule is off by a sizeable share of the spread. The
    core is built for baseline x86-64, so its numbers do not depend on the CPU."""
    return 1e-4 * (1.0 + np.abs(x).max())


# ---------------------------------------------------------------- agreement with the references
@given(matrices(), st.data())
def test_fedavg_is_the_weighted_mean(x, data):
    w = np.array(data.draw(st.lists(st.floats(0.1, 50), min_size=len(x), max_size=len(x))))
    np.testing.assert_allclose(aggregate(x, "FedAvg", weights=w), np.average(x.astype(np.float64), axis=0, weights=w), atol=tol(x))
    np.testing.assert_allclose(aggregate(x, "FedProx(mu=0.1)"), x.astype(np.float64).mean(axis=0), atol=tol(x))


@given(matrices())
def test_fedmedian_is_numpys_median(x):
    np.testing.assert_allclose(aggregate(x, "FedMedian"), np.median(x.astype(np.float64), axis=0), atol=tol(x))


@given(matrices(min_n=3), st.data())
def test_trimmed_mean(x, data):
    t = data.draw(st.integers(0, (len(x) - 1) // 2))
    np.testing.assert_allclose(aggregate(x, f"TrimmedMean(f={t})"), ref_trimmed_mean(x, t), atol=tol(x))


@given(matrices(min_n=4, unique=True), st.data())
def test_krum_and_multikrum_follow_the_paper(x, data):
    f = data.draw(st.integers(0, (len(x) - 3) // 2))
    m = data.draw(st.integers(1, len(x)))
    np.testing.assert_allclose(aggregate(x, f"Krum(f={f})"), ref_multikrum(x, f, 1), atol=tol(x))
    np.testing.assert_allclose(aggregate(x, f"MultiKrum(f={f}, m={m})"), ref_multikrum(x, f, m), atol=tol(x))


@given(matrices(min_n=3, max_n=11, unique=True), st.data())
def test_bulyan(x, data):
    f = data.draw(st.integers(0, (len(x) - 3) // 4))
    np.testing.assert_allclose(aggregate(x, f"Bulyan(f={f})"), ref_bulyan(x, f), atol=tol(x))


@given(matrices(min_n=2, unique=True), st.data())
def test_nnm_mixes_nearest_neighbours(x, data):
    f = data.draw(st.integers(0, len(x) - 1))
    np.testing.assert_allclose(aggregate(x, f"NNM(f={f}) + FedAvg"), ref_nnm(x, f).mean(axis=0), atol=tol(x))


@given(matrices(), st.floats(0.1, 50), st.integers(1, 4))
def test_centered_clipping(x, tau, iters):
    got = aggregate(x, f"CenteredClipping(tau={tau}, iters={iters})")
    np.testing.assert_allclose(got, ref_centered_clipping(x, tau, iters), atol=tol(x))


@given(matrices(min_n=2))
def test_geometric_median_minimises_the_sum_of_distances(x):
    gm = aggregate(x, "GeometricMedian(nu=1e-9, tol=1e-10, max_iter=500)").astype(np.float64)
    xd = x.astype(np.float64)

    def cost(z):
        return np.linalg.norm(xd - z, axis=1).sum()

    best_candidate = min(cost(xd.mean(axis=0)), min(cost(r) for r in xd))
    assert cost(gm) <= best_candidate * (1 + 1e-4) + 1e-3


@given(matrices(), st.floats(0.01, 20))
def test_static_clipping_bounds_the_norms(x, c):
    # with equal rows, the aggregate is the clipped row itself
    row = x[:1]
    got = aggregate(np.repeat(row, 3, axis=0), f"Clipping(c={c}) + FedAvg")
    norm = np.linalg.norm(row.astype(np.float64))
    expected = row[0] * min(1.0, c / norm) if norm > 0 else row[0]
    np.testing.assert_allclose(got, expected, atol=tol(x))
    assert np.linalg.norm(aggregate(x, f"Clipping(c={c}) + FedAvg")) <= c * (1 + 1e-5)


# ---------------------------------------------------------------- the spread-based defences
def assume_gap(values, best_index, rel=1e-5):
    """The best of `values` (smallest) is clearly ahead of the others: float32 kernels and float64
    references may order near ties differently."""
    v = np.asarray(values, dtype=np.float64)
    others = np.delete(v, best_index)
    if len(others):
        assume(others.min() - v[best_index] > rel * (1.0 + abs(v[best_index])))


def ref_meamed(x, f):
    """Per coordinate, the mean of the n − f values closest to numpy's median (Xie et al. 2018)."""
    out = []
    for col in x.astype(np.float64).T:
        dist = np.abs(col - np.median(col))
        assume_no_near_tie(dist, len(col) - f)
        out.append(col[np.argsort(dist, kind="stable")[: len(col) - f]].mean())
    return np.array(out)


def subsets(n, f):
    return list(itertools.combinations(range(n), n - f))


def ref_mda(x, f):
    d2 = ref_sq_dists(x)
    cands = subsets(len(x), f)
    diam = [max((d2[i, j] for i, j in itertools.combinations(s, 2)), default=0.0) for s in cands]
    best = int(np.argmin(diam))
    assume_gap(diam, best)
    return x[list(cands[best])].astype(np.float64).mean(axis=0)


def ref_smea(x, f):
    x64 = x.astype(np.float64)
    cands = subsets(len(x), f)
    top = [np.linalg.eigvalsh(np.cov(x64[list(s)].T, bias=True).reshape(x.shape[1], x.shape[1]))[-1] for s in cands]
    best = int(np.argmin(top))
    assume_gap(top, best)
    return x64[list(cands[best])].mean(axis=0)


def ref_caf(x, f):
    """CAF with the exact top eigenpair of the d × d weighted covariance (the core works with the
    n × n Gram matrix: a different route to the same numbers)."""
    x64 = x.astype(np.float64)
    n = len(x)
    c = np.ones(n)
    seen = []  # (λ, μ) per iteration
    for _ in range(4 * n):
        if c.sum() <= n - 2 * f:
            break
        mu = (c[:, None] * x64).sum(axis=0) / c.sum()
        r = x64 - mu
        vals, vecs = np.linalg.eigh((c[:, None] * r).T @ r / c.sum())
        assume(len(vals) < 2 or vals[-1] - vals[-2] > 1e-6 * (1.0 + vals[-1]))  # a defined eigenvector
        seen.append((vals[-1], mu))
        if vals[-1] <= 0:
            break
        tau = (r @ vecs[:, -1]) ** 2
        c = c * np.maximum(1 - tau / tau.max(), 0)
    else:
        assume(False)  # longer than the core's cap
    if not seen:
        return x64.mean(axis=0)
    best = int(np.argmin([lam for lam, _ in seen]))
    assume_gap([lam for lam, _ in seen], best, rel=1e-4)
    return seen[best][1]


def ref_dnc(x, f):
    """DnC over every coordinate (deterministic): drop the f rows farthest along the top right
    singular vector of the centred updates."""
    x64 = x.astype(np.float64)
    z = x64 - x64.mean(axis=0)
    _, sv, vt = np.linalg.svd(z, full_matrices=False)
    assume(len(sv) < 2 or sv[0] - sv[1] > 1e-4 * (1.0 + sv[0]))
    score = (z @ vt[0]) ** 2
    assume_no_near_tie(score, len(x) - f)
    return x64[np.sort(np.argsort(score, kind="stable")[: len(x) - f])].mean(axis=0)


@given(matrices(min_n=1, unique=True), st.data())
def test_meamed(x, data):
    f = data.draw(st.integers(0, (len(x) - 1) // 2))
    np.testing.assert_allclose(aggregate(x, f"Meamed(f={f})"), ref_meamed(x, f), atol=tol(x))


@given(matrices(min_n=1, max_n=10, unique=True), st.data())
def test_mda(x, data):
    f = data.draw(st.integers(0, (len(x) - 1) // 2))
    np.testing.assert_allclose(aggregate(x, f"MDA(f={f})"), ref_mda(x, f), atol=tol(x))


@given(matrices(min_n=1, max_n=9, max_d=8, unique=True), st.data())
def test_smea(x, data):
    f = data.draw(st.integers(0, (len(x) - 1) // 2))
    np.testing.assert_allclose(aggregate(x, f"SMEA(f={f})"), ref_smea(x, f), atol=tol(x))


@given(matrices(min_n=1, max_n=10, max_d=8, unique=True), st.data())
def test_caf(x, data):
    f = data.draw(st.integers(0, (len(x) - 1) // 2))
    np.testing.assert_allclose(aggregate(x, f"CAF(f={f})"), ref_caf(x, f), atol=tol(x))


@given(matrices(min_n=2, unique=True), st.data())
def test_dnc_over_every_coordinate(x, data):
    f = data.draw(st.integers(0, len(x) - 1))
    np.testing.assert_allclose(aggregate(x, f"DnC(f={f}, sub_dim={x.shape[1]})"), ref_dnc(x, f), atol=tol(x))


def ref_clipped_clustering(x):
    """fedlib's ClippedClustering on a fresh instance, with scipy's average linkage."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    x64 = x.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1)
    tau = np.median(norms)
    clipped = x64 * np.minimum(1.0, tau / np.maximum(norms, 1e-300))[:, None]
    cn = np.maximum(np.linalg.norm(clipped, axis=1), 1e-8)
    dist = 1.0 - (clipped @ clipped.T) / np.outer(cn, cn)
    np.fill_diagonal(dist, 0.0)
    z = linkage(squareform(np.maximum(dist, 0.0), checks=False), method="average")
    assume(len(z) < 2 or z[-1, 2] - z[-2, 2] > 1e-6)  # a clear last merge
    n = len(x)

    def members(label):
        return [int(label)] if label < n else members(z[int(label) - n, 0]) + members(z[int(label) - n, 1])

    a, b = members(z[-1, 0]), members(z[-1, 1])
    assume(len(a) != len(b))
    return clipped[a if len(a) > len(b) else b].mean(axis=0)


@given(x=matrices(min_n=3, max_n=10, max_d=6, unique=True))
def test_clipped_clustering_on_a_fresh_instance(x):
    assume(np.all(np.linalg.norm(x.astype(np.float64), axis=1) > 1e-3))
    np.testing.assert_allclose(aggregate(x, "ClippedClustering"), ref_clipped_clustering(x), atol=tol(x))


@given(
    honest=arrays(np.float32, (8, 12), elements=st.floats(0.125, 2, width=32)),
    f=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_sign_guard_drops_sign_flipped_updates(honest, f, seed):
    """Honest updates with positive coordinates and f sign-flipped copies (same norms, so the norm
    band keeps them): the sign statistics single the flipped ones out, and SignGuard averages the
    honest updates clipped to the median norm."""
    x = np.concatenate([honest, -honest[:f]])
    perm = np.random.default_rng(seed).permutation(len(x))
    x64 = x.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1)
    m = np.median(norms)
    want = (x64[: len(honest)] * np.minimum(1.0, m / norms[: len(honest)])[:, None]).mean(axis=0)
    np.testing.assert_allclose(aggregate(x[perm], "SignGuard"), want, atol=1e-5)


def ref_foolsgold(x):
    """The authors' foolsgold() on one round's updates (the histories are the updates), then the
    weighted mean of the updates."""
    x64 = x.astype(np.float64)
    n = len(x)
    unit = x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), 1e-300)
    cs = unit @ unit.T
    np.fill_diagonal(cs, 0.0)  # the authors subtract the identity; exactly 0, not float noise
    maxcs = cs.max(axis=1)
    for i in range(n):
        for j in range(n):
            if i != j and maxcs[i] < maxcs[j]:
                cs[i, j] *= maxcs[i] / maxcs[j]
    wv = np.clip(1 - cs.max(axis=1), 0, 1)
    assume(wv.max() > 1e-6)
    wv = wv / wv.max()
    wv[wv == 1] = 0.99
    with np.errstate(divide="ignore"):
        wv = np.log(wv / (1 - wv)) + 0.5
    # the authors' `wv[(np.isinf(wv) + wv > 1)] = 1` reads (isinf(wv) + wv) > 1: +inf → 1, while
    # -inf (a client with α = 0) stays -inf and `wv[wv < 0] = 0` zeroes it
    wv = np.where(wv > 1, 1.0, np.maximum(wv, 0.0))
    assume(wv.sum() > 0)
    return (wv[:, None] * x64).sum(axis=0) / wv.sum()


@given(x=matrices(min_n=2, max_n=10, max_d=8, unique=True))
@example(x=np.array([[1.0], [2.0], [-1.0]], np.float32))  # two clients with α = 0: their weight is 0
def test_foolsgold_one_round(x):
    assume(np.all(np.linalg.norm(x.astype(np.float64), axis=1) > 1e-3))
    np.testing.assert_allclose(aggregate(x, "FoolsGold"), ref_foolsgold(x), atol=tol(x))


def ref_flame(x):
    """FLAME's Algorithm 1 without noise, with scikit-learn's HDBSCAN as the reference clustering."""
    from sklearn.cluster import HDBSCAN

    x64 = x.astype(np.float64)
    n = len(x)
    norms = np.linalg.norm(x64, axis=1)
    unit = x64 / np.maximum(norms, 1e-8)[:, None]
    dist = 1.0 - unit @ unit.T
    np.fill_diagonal(dist, 0.0)
    clusterer = HDBSCAN(metric="precomputed", min_cluster_size=n // 2 + 1, min_samples=1, allow_single_cluster=True, copy=True)
    labels = clusterer.fit((dist + dist.T) / 2).labels_
    admitted = np.flatnonzero(labels == 0)
    assert len(admitted) > n // 2, labels  # one cluster, holding a majority, as FLAME assumes
    s = np.median(norms)
    return (x64[admitted] * np.minimum(1.0, s / norms[admitted])[:, None]).mean(axis=0)


@pytest.mark.parametrize("seed", range(40))
def test_flame_against_scikit_learns_hdbscan(seed):
    """Two groups of updates around two random directions (continuous draws: no distance ties,
    which HDBSCAN's labelling is sensitive to), the second a minority of any size."""
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(2, 25)), int(rng.integers(2, 30))
    f = int(rng.integers(0, (n - 1) // 2 + 1))
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[: n - f] += (rng.normal(size=d) * rng.uniform(0, 3)).astype(np.float32)
    x[n - f :] += (rng.normal(size=d) * rng.uniform(0, 3)).astype(np.float32)
    np.testing.assert_allclose(aggregate(x, "FLAME(noise_level=0)"), ref_flame(x), atol=tol(x))


@pytest.mark.parametrize("rule", ["MDA", "SMEA"])
@given(honest=arrays(np.float32, (9, 6), elements=st.floats(-1, 1, width=32)), f=st.integers(1, 4), seed=st.integers(0, 1000))
def test_the_greedy_search_beyond_max_subsets_drops_a_far_cluster(rule, honest, f, seed):
    """With one subset allowed the search is greedy; f updates far from the honest ones (a shifted
    copy of some of them) are the ones it drops."""
    evil = honest[:f] + np.float32(100.0)
    x = np.concatenate([honest, evil])[np.random.default_rng(seed).permutation(9 + f)]
    got = aggregate(x, f"{rule}(f={f}, max_subsets=1)")
    np.testing.assert_allclose(got, honest.astype(np.float64).mean(axis=0), atol=1e-5)


# ---------------------------------------------------------------- properties
ORDER_FREE = [
    "FedAvg",
    "FedMedian",
    "TrimmedMean(f=1)",
    "GeometricMedian",
    "CenteredClipping(tau=5)",
    "Clipping(c=3) + FedAvg",
    "ARC(f=1) + FedAvg",
    "Meamed(f=1)",
]
ALL_RULES = [
    *ORDER_FREE,
    "Krum(f=1)",
    "MultiKrum(f=1)",
    "Bulyan(f=1)",
    "NNM(f=1) + FedAvg",
    "Bucketing(s=2) + FedMedian",
    "MDA(f=1)",
    "SMEA(f=1)",
    "CAF(f=1)",
    "DnC(f=1)",
    "SignGuard",
    "ClippedClustering",
    "FLAME(noise_level=0)",
]


@pytest.mark.parametrize("rule", ORDER_FREE)
@given(x=matrices(min_n=7), seed=st.integers(0, 2**32 - 1))
def test_permutation_invariance(rule, x, seed):
    perm = np.random.default_rng(seed).permutation(len(x))
    np.testing.assert_allclose(aggregate(x, rule), aggregate(x[perm], rule), atol=tol(x))


@pytest.mark.parametrize("rule", ALL_RULES)
@given(row=arrays(np.float32, (1, 9), elements=st.floats(-1, 1, width=32)), n=st.integers(7, 12))
def test_equal_rows_give_that_row(rule, row, n):
    x = np.repeat(row, n, axis=0)
    expected = row[0]
    if rule.startswith("Clipping"):
        expected = row[0] * min(1.0, 3 / max(np.linalg.norm(row), 1e-30))
    elif rule.startswith("CenteredClipping"):
        expected = row[0] * min(1.0, 5 / max(np.linalg.norm(row), 1e-30))
    np.testing.assert_allclose(aggregate(x, rule), expected, atol=1e-5)


@given(matrices(min_n=2, max_n=6), st.data())
def test_integer_weights_equal_repeated_rows(x, data):
    counts = np.array(data.draw(st.lists(st.integers(1, 4), min_size=len(x), max_size=len(x))))
    repeated = np.repeat(x, counts, axis=0)
    for rule in ("FedAvg", "GeometricMedian", "CenteredClipping(tau=2)"):
        np.testing.assert_allclose(aggregate(x, rule, weights=counts), aggregate(repeated, rule), atol=10 * tol(x), err_msg=rule)


# (DnC is not here: its scores are centred on the mean of every row, which the Byzantine rows pull;
# with identical honest rows at 0 and Byzantine 5 and 1, it drops 5 and an honest 0 and keeps 1.)
@pytest.mark.parametrize("rule", ["FedMedian", "TrimmedMean", "Bulyan", "Krum", "MultiKrum", "NNM + TrimmedMean", "Meamed", "MDA", "SMEA"])
@given(data=st.data())
def test_robust_rules_stay_within_the_honest_rows(rule, data):
    """With f arbitrary rows (any magnitude, NaN, Inf), coordinate-wise rules stay inside the honest
    rows' coordinate range; Krum-type rules stay within their bounding box expanded by the honest spread."""
    f = data.draw(st.integers(1, 2))
    n = 4 * f + 3
    d = data.draw(st.integers(1, 10))
    honest = data.draw(arrays(np.float32, (n - f, d), elements=st.floats(-1, 1, width=32)))
    evil = data.draw(arrays(np.float32, (f, d), elements=st.floats(width=32)))
    x = np.concatenate([honest, evil])
    x = x[np.random.default_rng(data.draw(st.integers(0, 1000))).permutation(n)]
    spec = {
        "FedMedian": "FedMedian",
        "TrimmedMean": f"TrimmedMean(f={f})",
        "Bulyan": f"Bulyan(f={f})",
        "Krum": f"Krum(f={f})",
        "MultiKrum": f"MultiKrum(f={f})",
        "NNM + TrimmedMean": f"NNM(f={f}) + TrimmedMean(f={f})",
        "Meamed": f"Meamed(f={f})",
        "MDA": f"MDA(f={f})",
        "SMEA": f"SMEA(f={f})",
    }[rule]
    out = aggregate(x, spec)
    lo, hi = honest.min(axis=0), honest.max(axis=0)
    # Coordinate-wise rules stay inside the honest range exactly. Bulyan averages, per coordinate,
    # the β values closest to the median of its selection; up to f of them may be Byzantine values
    # that lie near that median (itself inside the honest range), so it stays within the honest
    # range widened by the honest spread (seen: honest {−1, 0}, a Byzantine 0.5 → 1/6). Distance-
    # based rules can pick a Byzantine row only if it lies close to the honest ones: allow twice
    # the honest spread.
    if rule in ("FedMedian", "TrimmedMean"):
        slack = 0.0
    elif rule in ("Bulyan", "Meamed"):  # (Meamed is Bulyan's second stage over every row)
        slack = hi - lo
    else:
        slack = 2.0 * float((hi - lo).max()) + 1e-6
    assert np.all(np.isfinite(out))
    assert np.all(out >= lo - slack - 1e-5) and np.all(out <= hi + slack + 1e-5)


# ---------------------------------------------------------------- attacks, pinned by hand
def test_alie_is_mu_minus_z_sigma_with_the_papers_z():
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    honest = x[:3].astype(np.float64)
    out, info = apply_attack(x, "alie", malicious=[3, 4])
    # n = 5, f = 2: s = floor(5/2) + 1 - 2 = 1, z = Φ⁻¹(4/5) = 0.841621
    assert info["strength"] == pytest.approx(0.8416212335729143)
    expected = honest.mean(0) - 0.8416212335729143 * honest.std(0)  # population std (ddof=0)
    np.testing.assert_allclose(out[3], expected, rtol=1e-6)
    np.testing.assert_allclose(out[4], expected, rtol=1e-6)
    np.testing.assert_array_equal(out[:3], x[:3])


def test_ipm_and_sign_flip_by_hand():
    x = np.array([[1.0, -2.0], [3.0, 4.0], [9.0, 9.0]], dtype=np.float32)
    out, _ = apply_attack(x, "ipm(epsilon=0.5)", malicious=[2])
    np.testing.assert_allclose(out[2], [-1.0, -0.5])
    out, _ = apply_attack(x, "sign_flip(scale=3)", malicious=[2])
    np.testing.assert_allclose(out[2], [-27.0, -27.0])


def test_gaussian_noise_really_adds_noise():
    x = np.zeros((4, 20000), dtype=np.float32)
    out, _ = apply_attack(x, "gaussian_noise(sigma=2.0)", malicious=[1, 3], seed=5)
    assert out[1].std() == pytest.approx(2.0, rel=0.03) and out[3].std() == pytest.approx(2.0, rel=0.03)
    assert not np.array_equal(out[1], out[3])
    np.testing.assert_array_equal(out[[0, 2]], 0.0)
    # the FedAvg aggregate carries the noise: std of the mean = sigma * sqrt(f) / n = 2 * sqrt(2) / 4
    assert aggregate(out, "FedAvg").std() == pytest.approx(2 * np.sqrt(2) / 4, rel=0.05)


# ---------------------------------------------------------------- Min-Max and Min-Sum (NDSS 2021)
def _perturbation(honest: np.ndarray, kind: str) -> np.ndarray:
    mu = honest.mean(0).astype(np.float32).astype(np.float64)  # the kernel's mean is float32 (a denormal mean is 0)
    if kind == "unit_vec":
        norm = np.linalg.norm(mu)
        return mu / norm if norm > 0 else np.zeros_like(mu)
    if kind == "sign":
        return np.sign(mu)
    return honest.std(0, ddof=1)  # the authors' torch.std


@pytest.mark.parametrize("attack", ["min_max", "min_sum"])
@pytest.mark.parametrize("kind", ["unit_vec", "std", "sign"])
@given(x=matrices(min_n=4, max_n=10, max_d=12))
def test_min_max_and_min_sum_meet_their_bound_and_a_larger_gamma_would_not(attack: str, kind: str, x: np.ndarray) -> None:
    """The malicious row is μ − γ·p (float64 references), within the paper's bound, and γ is the
    largest the search finds: 1 % more of the first γ tried breaks the bound (or γ sits at the
    search's ceiling, twice the first γ)."""
    honest = x[:-2].astype(np.float64)
    out, info = apply_attack(x, f"{attack}(perturbation={kind}, gamma_init=10.0)", malicious=[len(x) - 2, len(x) - 1])
    gamma = info["strength"]
    p = _perturbation(honest, kind)
    mu = honest.mean(0).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(out[-1], mu - gamma * p, rtol=1e-5, atol=1e-3)
    pair = ((honest[:, None, :] - honest[None, :, :]) ** 2).sum(-1)
    bound = pair.max() if attack == "min_max" else pair.sum(1).min()

    def score(g: float) -> float:
        d = ((mu - g * p - honest) ** 2).sum(1)
        return d.max() if attack == "min_max" else d.sum()

    scale = max(1.0, bound)
    assert score(gamma) <= bound + 1e-6 * scale  # (float32 rows, float64 sums)
    if gamma < 20.0 - 1e-3 and np.any(p != 0):
        assert score(gamma + 0.1) > bound - 1e-6 * scale


def ref_fltrust(x, g0):
    """Cao et al.'s FLTrust: trust ReLU(cos(g_i, g_0)), updates rescaled to ‖g_0‖, trust-weighted mean."""
    x64, g = x.astype(np.float64), g0.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1)
    trust = np.maximum((x64 @ g) / (norms * np.linalg.norm(g)), 0.0)
    assume(trust.sum() > 1e-6)
    return (trust[:, None] * x64 * (np.linalg.norm(g) / norms)[:, None]).sum(axis=0) / trust.sum()


@given(x=matrices(min_n=1, max_n=10, max_d=8), g0=arrays(np.float32, 8, elements=st.floats(-10, 10, width=32)))
def test_fltrust(x, g0):
    g0 = g0[: x.shape[1]]
    assume(np.linalg.norm(g0) > 1e-3 and np.all(np.linalg.norm(x.astype(np.float64), axis=1) > 1e-3))
    np.testing.assert_allclose(aggregate(x, "FLTrust", reference=g0), ref_fltrust(x, g0), atol=tol(x) * (1 + np.abs(g0).max()))
