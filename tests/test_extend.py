"""Python rules and attacks (velocity.extend): registered in Python, run beside the built-in ones,
in this process and in a sweep's worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from velocity import FederatedServer, Sweep, extend, load_federated
from velocity.sweep.spec import RunSpec

pytestmark = pytest.mark.usefixtures("clean_extend_registry")


def weighted_mean(updates, *, f, weights):  # FedAvg, written in Python
    return (updates * (weights / weights.sum())[:, None]).sum(axis=0)


def test_names_are_checked() -> None:
    with pytest.raises(ValueError, match="Expected a name that is not a built-in component, got 'Krum'"):
        extend.rule("Krum")(weighted_mean)
    with pytest.raises(ValueError, match="Expected a name that is not a built-in component, got 'SIGN_FLIP'"):
        extend.attack("SIGN_FLIP")(weighted_mean)
    with pytest.raises(ValueError, match=r"Expected a name made of letters, digits and underscores, got 'my rule'"):
        extend.rule("my rule")(weighted_mean)
    with pytest.raises(ValueError, match=r"Unknown strategy|unknown"):
        RunSpec(strategy="NotRegistered")


def test_names_match_as_the_cores_do() -> None:
    """Built-in names ignore case, `_` and `-`; Python names follow the same rule, so a Python
    name cannot shadow a built-in one ("multi_krum" would have run the Python rule in specs and
    the core's MultiKrum in velocity.aggregate), and a registered name is found however spelt."""
    with pytest.raises(ValueError, match="got 'multi_krum' \\(it names 'MultiKrum'"):
        extend.rule("multi_krum")(weighted_mean)
    with pytest.raises(ValueError, match="got 'Sign_Flip' \\(it names 'sign_flip'"):
        extend.attack("Sign_Flip")(weighted_mean)
    with pytest.raises(ValueError, match="got 'NNA' \\(it names 'nearest_neighbour'"):
        extend.rule("NNA")(weighted_mean)
    extend.rule("MedianOfMeans")(weighted_mean)
    assert extend.get("median_of_means", "rule") is extend.get("MEDIAN-OF-MEANS") is not None
    spec = RunSpec(strategy="median_of_means")
    assert spec.strategy == "MedianOfMeans" and spec.python_components == ["MedianOfMeans"]


def test_a_python_rule_runs_like_the_built_in_one_it_reimplements() -> None:
    extend.rule("PyMean")(weighted_mean)
    data = load_federated("blobs", num_clients=6, seed=0)
    common = {"model_id": "logreg", "attacks": ["sign_flip(scale=3.0)"], "malicious_fraction": 1 / 3, "seed": 0}
    servers = [FederatedServer(data, strategy=name, **common) for name in ("FedAvg", "PyMean")]
    for server in servers:
        server.run(3)
    core, python = servers
    np.testing.assert_allclose(python.orchestrator.global_model, core.orchestrator.global_model, rtol=1e-5, atol=1e-6)
    for a, b in zip(core.history, python.history, strict=True):
        assert (a.num_malicious, a.attacks[0].name) == (b.num_malicious, b.attacks[0].name) == (2, "sign_flip")
        assert b.attack_distance == pytest.approx(a.attack_distance, rel=1e-4)
        assert b.global_loss == pytest.approx(a.global_loss, rel=1e-5)


def test_a_python_attack_runs_like_the_built_in_one_it_reimplements() -> None:
    @extend.attack("flip_by_four")
    def flip(updates, *, malicious, rng):
        return -4.0 * updates[malicious]

    data = load_federated("blobs", num_clients=6, seed=0)
    runs = []
    for attack in ("sign_flip(scale=4.0)", "flip_by_four"):
        server = FederatedServer(data, model_id="logreg", strategy="FedMedian", attacks=[attack], malicious_fraction=1 / 3, seed=0)
        server.run(3)
        runs.append(server)
    np.testing.assert_allclose(runs[1].orchestrator.global_model, runs[0].orchestrator.global_model, rtol=1e-6, atol=1e-7)
    assert [a.name for a in runs[1].history[0].attacks] == ["flip_by_four"]


def test_python_attacks_act_before_the_core_attacks() -> None:
    @extend.attack("zero_out")
    def zero_out(updates, *, malicious, rng):
        return np.zeros((len(malicious), updates.shape[1]))

    data = load_federated("blobs", num_clients=6, seed=0)
    server = FederatedServer(
        data, model_id="logreg", strategy="FedAvg", attacks=["zero_out", "sign_flip"], malicious_fraction=1 / 3, seed=0
    )
    record = server.run_round()
    assert [a.name for a in record.attacks] == ["zero_out", "sign_flip"]


def test_what_a_python_component_returns_is_checked() -> None:
    @extend.rule("TooShort")
    def too_short(updates, *, f, weights):
        return updates[0, :-1]

    @extend.attack("one_row")
    def one_row(updates, *, malicious, rng):
        return updates[:1]

    x = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"Expected rule 'TooShort' to return a vector of 3 values, got shape \(2,\)"):
        extend.run_rule(extend.get("TooShort"), x, f=1, weights=np.ones(5))
    with pytest.raises(
        ValueError, match=r"Expected attack 'one_row' to return 2 × 3 rows \(one per malicious client\), got shape \(1, 3\)"
    ):
        extend.run_attack(extend.get("one_row"), x, malicious=[1, 2], rng=np.random.default_rng(0))


def test_a_spec_with_a_python_rule_is_validated_by_a_dry_run_and_hashed_with_its_source() -> None:
    @extend.rule("NeedsHonestMajority")
    def needs_majority(updates, *, f, weights):
        if not len(updates) > 2 * f:
            raise ValueError(f"Expected n > 2f, got n = {len(updates)}, f = {f}")
        return np.median(updates, axis=0)

    spec = RunSpec(strategy="NeedsHonestMajority", attacks=["sign_flip"], malicious_fraction=0.2)
    assert spec.python_components == ["NeedsHonestMajority"]
    with pytest.raises(
        ValueError,
        match=r"NeedsHonestMajority cannot aggregate 10 clients per round with up to 5 malicious .*Expected n > 2f, got n = 10, f = 5",
    ):
        RunSpec(strategy="NeedsHonestMajority", attacks=["sign_flip"], malicious_fraction=0.5)
    before = spec.spec_hash

    @extend.rule("NeedsHonestMajority")
    def changed(updates, *, f, weights):
        return np.mean(updates, axis=0)

    assert RunSpec(strategy="NeedsHonestMajority", attacks=["sign_flip"], malicious_fraction=0.2).spec_hash != before
    with pytest.raises(
        ValueError, match=r"Expected built-in components in a decentralised run, got the Python ones \['NeedsHonestMajority'\]"
    ):
        RunSpec(topology="decentralised", strategy="NeedsHonestMajority")


def test_a_sweep_ships_functions_defined_in_a_function_to_its_worker_processes(tmp_path: Path) -> None:
    scale = 10.0  # a closure: cloudpickle must send it by value, the worker cannot import it

    @extend.attack("push")
    def push(updates, *, malicious, rng):
        return updates[malicious] * scale + rng.normal(size=(len(malicious), updates.shape[1]))

    @extend.rule("TrimmedByNorm")
    def trimmed_by_norm(updates, *, f, weights):
        keep = np.argsort(np.linalg.norm(updates, axis=1))[: len(updates) - f]
        return updates[keep].mean(axis=0)

    sweep = Sweep.from_grid(
        strategies=["FedAvg", "TrimmedByNorm"],
        attacks=["none", "push"],
        dataset="blobs",
        model_id="logreg",
        num_clients=6,
        rounds=3,
        lr=0.5,
        out=tmp_path,
        parallel=2,
    )
    sweep.run()
    assert sweep.status == {"finished": 4}, [s.get("error") for s in sweep.summaries().values()]
    rows = sweep.results
    assert set(rows["attack"]) == {"none", "push"} and len(rows) == 12
    comparison = sweep.comparison()
    assert {e["strategy"] for e in comparison["ranking"]} == {"FedAvg", "TrimmedByNorm"}


def test_the_panel_offers_python_components(tmp_path: Path) -> None:
    extend.rule("PyMean")(weighted_mean)
    extend.attack("flip")(lambda updates, *, malicious, rng: -updates[malicious])
    panel = Sweep.from_grid(strategies=["FedAvg"], dataset="blobs", model_id="logreg", num_clients=4, out=tmp_path).panel()
    try:
        assert "PyMean" in panel.strategy_options and "flip" in panel.attack_options
    finally:
        panel.close()
