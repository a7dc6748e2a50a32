"""Adaptive attacks aim at the defence that really runs: a Python rule, MoNNA's mixing, a callable.

The core's own strategies (pre-aggregators, rule, server optimiser, bucketing's shuffle) are
checked against real rounds in ``vfl-rs/tests/attacks.rs``; here the defences that live in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from velocity import FederatedServer, apply_attack, extend, load_federated
from velocity.decentralised import MonnaSimulation, nearest_neighbour_mix

pytestmark = pytest.mark.usefixtures("clean_extend_registry")


def log_grid(lower: float, upper: float, steps: int) -> np.ndarray:
    """The adaptive attacks' candidates (the core's formula)."""
    return np.exp(np.log(lower) + (np.log(upper) - np.log(lower)) * np.arange(steps) / (steps - 1))


def damage(outputs: np.ndarray, mu: np.ndarray) -> float:
    """The attacks' objective: mean squared distance of the defended outputs from the honest mean."""
    out = np.atleast_2d(np.asarray(outputs, dtype=np.float64))
    return float(((out - mu.astype(np.float64)) ** 2).sum(axis=1).mean())


def ipm_rows(x: np.ndarray, malicious: list[int], eps: float) -> np.ndarray:
    honest = [r for r in range(len(x)) if r not in malicious]
    out = x.copy()
    out[malicious] = -np.float32(eps) * x[honest].mean(axis=0)
    return out


def coordinate_median(m: np.ndarray) -> np.ndarray:
    return np.median(m, axis=0)


@pytest.mark.parametrize("seed", range(4))
def test_a_callable_defence_is_what_adaptive_ipm_maximises(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.normal(size=30), 1.0, size=(11, 30)).astype(np.float32)
    malicious = [1, 4, 8]
    out, outcome = apply_attack(x, "adaptive_ipm(steps=6)", malicious=malicious, defence=coordinate_median)
    mu = np.delete(x, malicious, axis=0).mean(axis=0)
    scores = {eps: damage(coordinate_median(ipm_rows(x, malicious, eps)), mu) for eps in log_grid(0.1, 100.0, 6)}
    best = max(scores.values())
    # float32 medians: damages within float32 rounding of the best are the same candidate
    assert scores[min(scores, key=lambda e: abs(e - outcome["strength"]))] >= best * (1 - 1e-6)
    want = ipm_rows(x, malicious, outcome["strength"])[malicious]
    # the core sums the honest mean in float64, numpy in float32: a few float32 ulps of the largest value
    np.testing.assert_allclose(out[malicious], want, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(want).max())


def test_a_callable_defence_changes_the_pick_from_fedavgs() -> None:
    # Against FedAvg the damage grows with ε; a defence that drops every row beyond 5× the median
    # norm makes the largest ε useless, so the pick falls to the largest ε it still lets through.
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 0.1, size=(10, 8)).astype(np.float32)
    malicious = [0, 1]

    def norm_filter(m: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(m, axis=1)
        return m[norms <= 5 * np.median(norms)].mean(axis=0)

    _, against_fedavg = apply_attack(x, "adaptive_ipm(steps=4)", malicious=malicious)
    _, against_filter = apply_attack(x, "adaptive_ipm(steps=4)", malicious=malicious, defence=norm_filter)
    assert against_fedavg["strength"] == pytest.approx(100.0)
    assert against_filter["strength"] == pytest.approx(1.0)  # of {0.1, 1, 10, 100}: 10 and 100 are dropped


def test_a_defence_that_fails_says_so() -> None:
    x = np.ones((5, 4), np.float32)

    def broken(m: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("the rule divided by zero")

    with pytest.raises(ZeroDivisionError, match="the rule divided by zero"):
        apply_attack(x, "adaptive_alie", malicious=[0], defence=broken)
    with pytest.raises(ValueError, match=r"Expected the defence to return 4 numbers or rows of 4 numbers, got an array of shape \(5, 3\)"):
        apply_attack(x, "adaptive_alie", malicious=[0], defence=lambda m: m[:, :3])
    with pytest.raises(TypeError, match="Expected defence to be a function of the update matrix, got str"):
        apply_attack(x, "adaptive_alie", malicious=[0], defence="FedMedian")  # type: ignore[arg-type]


def test_a_federated_run_with_a_python_rule_attacks_that_rule() -> None:
    """The adaptive attack of a run with a Python rule is given that rule as its defence (it was
    optimised against FedAvg, whatever the rule)."""
    extend.rule("PyMedian")(lambda updates, *, f, weights: np.median(updates, axis=0))
    seen: list[tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None, dict]] = []
    import velocity.server as server_module

    real = server_module.apply_attack

    def spy(x: np.ndarray, attack: object, **kw: object) -> tuple[np.ndarray, dict]:
        out, outcome = real(x, attack, **kw)  # type: ignore[arg-type]
        seen.append((x.copy(), kw.get("defence"), outcome))  # type: ignore[arg-type]
        return out, outcome

    data = load_federated("blobs", num_clients=6, seed=0)
    server = FederatedServer(
        data, model_id="logreg", strategy="PyMedian", attacks=["adaptive_ipm(steps=5)"], malicious_fraction=1 / 3, seed=0
    )
    server_module.apply_attack = spy  # type: ignore[assignment]
    try:
        record = server.run_round()
    finally:
        server_module.apply_attack = real
    ((x, defence, outcome),) = seen
    assert defence is not None
    malicious = [r for r, cid in enumerate(record.client_ids) if cid in set(server.malicious_clients)]
    np.testing.assert_array_equal(defence(x), np.median(x, axis=0))
    mu = np.delete(x, malicious, axis=0).mean(axis=0)
    scores = {eps: damage(np.median(ipm_rows(x, malicious, eps), axis=0), mu) for eps in log_grid(0.1, 100.0, 5)}
    chosen = min(scores, key=lambda e: abs(e - outcome["strength"]))
    assert scores[chosen] >= max(scores.values()) * (1 - 1e-6)
    assert record.attacks[0].strength == outcome["strength"]


def test_monna_adaptive_attacks_aim_at_the_workers_mixing() -> None:
    """The Byzantine workers' adaptive ALIE picks the z whose models, mixed into every honest
    worker's received set as this round mixes them, put the honest models furthest from their mean."""
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(30, 3, generator=g), torch.randint(0, 2, (30,), generator=g)) for _ in range(6)]
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    steps = 5
    sim = MonnaSimulation(
        model=model, data=data, n=8, f=2, learning_rate=0.2, batch_size=None, attack=f"adaptive_alie(steps={steps})", seed=3
    )
    k, f = 6, 2
    for step in sim.run(2):
        post = step.post_step_models.numpy()
        received = step.received.numpy()
        mu = post.mean(axis=0)
        sd = post.std(axis=0)  # population std, as ALIE's
        scores = {}
        for z in log_grid(0.1, 10.0, steps):
            byz = np.repeat((mu - np.float32(z) * sd)[None, :].astype(np.float32), f, axis=0)
            models = np.ascontiguousarray(np.concatenate([post, byz]))
            scores[z] = damage(nearest_neighbour_mix(models, received, keep=8 - 2 * f), mu)
        assert step.attack is not None
        chosen = min(scores, key=lambda z: abs(z - step.attack["strength"]))
        assert abs(chosen - step.attack["strength"]) < 1e-9 * chosen
        assert scores[chosen] >= max(scores.values()) * (1 - 1e-6), (step.step, step.attack, scores)
        assert len(post) == k
