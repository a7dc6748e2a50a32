"""The Python face: registry, spec parsing, typed objects, errors, orchestrator and CLI."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

import velocity
from velocity import Orchestrator, aggregate, parse_attack, parse_strategy
from velocity.attacks import ALIE, SignFlip
from velocity.strategies import NNM, FedAdam, Krum, TrimmedMean

EXPECTED_STRATEGIES = {
    "FedAvg",
    "FedProx",
    "FedMedian",
    "TrimmedMean",
    "Krum",
    "MultiKrum",
    "Bulyan",
    "GeometricMedian",
    "CenteredClipping",
    "Meamed",
    "MDA",
    "SMEA",
    "CAF",
    "DnC",
    "SignGuard",
    "ClippedClustering",
    "FoolsGold",
    "FLAME",
    "FLTrust",
    "FedAvgM",
    "FedAdam",
    "FedYogi",
    "FedAdagrad",
    "NNM",
    "Bucketing",
    "Clipping",
    "ARC",
}
EXPECTED_ATTACKS = {
    "gaussian_noise",
    "sign_flip",
    "scaling",
    "model_poisoning",
    "ipm",
    "alie",
    "mimic",
    "sybil",
    "min_max",
    "min_sum",
    "fang_krum",
    "fang_trim",
    "backdoor",
    "nan",
    "inf",
    "adaptive_ipm",
    "adaptive_alie",
    "agr_tailored",
    "label_flipping",
    "targeted_label_flipping",
}


def test_registry_lists_every_component_with_parameters_and_reference():
    strategies = {c.name: c for c in velocity.list_strategies()}
    attacks = {c.name: c for c in velocity.list_attacks()}
    assert set(strategies) == EXPECTED_STRATEGIES
    assert set(attacks) == EXPECTED_ATTACKS
    for c in [*strategies.values(), *attacks.values()]:
        assert c.summary and c.reference, c.name
        for p in c.params:
            assert p.type in ("int", "float", "bool", "choice") and p.description
            assert bool(p.choices) == (p.type == "choice"), (c.name, p.name)
    assert attacks["min_max"].param("perturbation").choices == ("unit_vec", "std", "sign")
    assert strategies["Krum"].requires == "n > 2f + 2"
    assert strategies["FedAdam"].param("eta").default == 0.1
    assert attacks["targeted_label_flipping"].kind == "data_attack"
    assert attacks["targeted_label_flipping"].param("source").required


def test_every_registered_component_reaches_python_by_its_names_and_aliases():
    """A registry entry (with its kernel) is all a component needs: the typed classes, the
    specs, the command line and the decentralised setup pick it up from the registry."""
    import velocity.attacks
    import velocity.strategies
    from velocity.cli import _KIND_TITLES
    from velocity.registry import find_component, registry
    from velocity.specs import parse_attack, parse_strategy

    for c in registry():
        assert c.kind in _KIND_TITLES, c.name  # velocity list shows its kind
        for name in (c.name, *c.aliases, c.name.upper()):
            assert find_component(name, c.kind) == c
        if c.kind in ("rule", "pre_aggregator", "server_optimizer"):
            assert any(getattr(cls, "info", None) == c for cls in vars(velocity.strategies).values()), c.name
        elif c.kind in ("update_attack", "data_attack"):
            assert any(getattr(cls, "info", None) == c for cls in vars(velocity.attacks).values()), c.name
    # aliases work wherever names do, and canonicalise to the registered name
    assert str(parse_strategy("FedTrimmedAvg(f=1) + FedAdam")) == "TrimmedMean(f=1) + FedAdam"
    assert str(parse_strategy("NearestNeighbourMixing(f=1) + RFA")) == "NNM(f=1) + GeometricMedian"
    assert parse_attack("ALittleIsEnough").name == "alie" and parse_attack("SignFlipping").name == "sign_flip"
    assert velocity.RunSpec(strategy="CClip(tau=1.0)").strategy == "CenteredClipping(tau=1.0)"
    assert velocity.RunSpec(topology="decentralised", strategy="MoNNA").strategy == "nearest_neighbour"
    with pytest.raises(ValueError, match="'nearest_neighbour' is a Mixer, not a valid strategy component"):
        parse_strategy("NNA")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("krum(f=2)", "Krum(f=2)"),
        ("nnm(f=1) + multi_krum(f=1, m=3)", "NNM(f=1) + MultiKrum(f=1, m=3)"),
        ({"name": "TrimmedMean", "beta": 0.1}, "TrimmedMean(beta=0.1)"),
        (
            {"pre": [{"name": "Bucketing", "s": 3}], "rule": "FedMedian", "server": {"name": "FedYogi"}},
            "Bucketing(s=3) + FedMedian + FedYogi",
        ),
        ([{"type": "Clipping", "c": 2.5}, "FedAvg"], "Clipping(c=2.5) + FedAvg"),
        ("FedAdam", "FedAdam"),
        ("FedAdam(eta=0.1)", "FedAdam"),  # the default value is not repeated
    ],
)
def test_parse_strategy_forms_agree(given, canonical):
    spec = parse_strategy(given)
    assert str(spec) == canonical
    assert parse_strategy(str(spec)) == spec
    assert parse_strategy(spec.to_dict()) == spec
    # The core's parsed copy is the same strategy, and survives the trip to a worker process.
    assert json.loads(spec.core.canonical())["text"] == canonical
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.core.canonical() == spec.core.canonical()


def test_typed_objects_compose_and_validate():
    assert str(NNM(f=2) + Krum(f=2)) == "NNM(f=2) + Krum(f=2)"
    assert str(TrimmedMean(beta=0.2) + FedAdam(eta=0.01)) == "TrimmedMean(beta=0.2) + FedAdam(eta=0.01)"
    assert str(SignFlip(scale=2.0)) == "sign_flip(scale=2.0)"
    assert ALIE().name == "alie"
    assert "Blanchard" in Krum.__doc__
    with pytest.raises(TypeError):
        Krum(2)  # keyword-only
    with pytest.raises(ValueError, match=r"Expected a value >= 0 for Krum.f, got -1"):
        Krum(f=-1)


@pytest.mark.parametrize(
    ("bad", "exc", "message"),
    [
        ("Krumm(f=1)", ValueError, r"Unknown strategy component 'Krumm'; expected one of: .*Krum"),
        ("Krum(g=1)", ValueError, r"Unknown parameter 'g' for Krum: expected one of: f"),
        ("Krum(f=1.5)", TypeError, r"Expected an integer for Krum.f, got 1.5"),
        ("FedAdam(beta_1=1.0)", ValueError, r"Expected a value >= 0 and < 1 for FedAdam.beta_1, got 1.0"),
        ("sign_flip", ValueError, r"'sign_flip' is a UpdateAttack, not a valid strategy component"),
        ("Krum + NNM(f=1)", ValueError, r"must come before"),
        (42, TypeError, r"Expected a strategy as text like"),
    ],
)
def test_bad_strategies_are_clear_errors(bad, exc, message):
    for _ in range(2):  # a text parsed before is not remembered as valid
        with pytest.raises(exc, match=message):
            parse_strategy(bad)


def test_a_strategy_text_is_parsed_once():
    spec = parse_strategy("nnm(f=1) + krum(f=1)")
    assert parse_strategy("nnm(f=1) + krum(f=1)") is spec  # the parsed spec is reused, not re-parsed
    assert parse_strategy("NNM(f=1) + Krum(f=1)") == spec
    assert parse_strategy("NNM(f=1) + Krum(f=2)") != spec


def test_attack_specs():
    a = parse_attack({"type": "model_poisoning", "intensity": 0.5})
    assert (a.name, a.params["intensity"], str(a)) == ("model_poisoning", 0.5, "model_poisoning(intensity=0.5)")
    assert parse_attack("targeted_label_flipping(source=1, target=7)").is_data_attack
    with pytest.raises(ValueError, match="requires the parameter 'source'"):
        parse_attack("targeted_label_flipping")
    with pytest.raises(ValueError, match="not a valid attack"):
        parse_attack("Krum")
    assert velocity.parse_attacks("none") == []


def test_aggregate_input_errors():
    x = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"Expected updates as a 2-D array"):
        aggregate(np.ones(3), "FedAvg")
    with pytest.raises(ValueError, match=r"at least one row"):
        aggregate(np.ones((0, 3)), "FedAvg")
    with pytest.raises(TypeError, match=r"real-valued array, got dtype"):
        aggregate(np.array([["a", "b"]]), "FedAvg")
    with pytest.raises(ValueError, match=r"Expected weights as 5 values"):
        aggregate(x, "FedAvg", weights=[1, 2])
    with pytest.raises(ValueError, match=r"Expected a finite value >= 0 for weights\[1\], got -1"):
        aggregate(x, "FedAvg", weights=[1, -1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"Expected n > 2f \+ 2 = 6 for Krum with f = 2, got n = 5"):
        aggregate(x, "Krum(f=2)")
    with pytest.raises(ValueError, match=r"Krum needs f"):
        aggregate(x, "Krum")
    with pytest.raises(ValueError, match=r"Expected n > 2·trim = 6 for TrimmedMean, got n = 5"):
        aggregate(x, "TrimmedMean(f=3)")
    with pytest.raises(ValueError, match=r"Expected n >= 4f \+ 3 = 7 for Bulyan with f = 1, got n = 5"):
        aggregate(x, "Bulyan(f=1)")
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"Expected finite updates for FedAvg, got NaN in row 2 at index 1"):
        aggregate(bad, "FedAvg")
    # float64 and integer input are converted, not rejected
    assert aggregate(x.astype(np.float64), "FedAvg").dtype == np.float32
    assert np.allclose(aggregate(np.arange(6).reshape(2, 3), "FedAvg"), [1.5, 2.5, 3.5])


def test_robust_rules_take_nan_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 16)).astype(np.float32)
    x[0] = np.nan
    for rule in ("FedMedian", "TrimmedMean(f=1)", "Krum(f=1)", "MultiKrum(f=1)", "Bulyan(f=1)"):
        out = aggregate(x, rule)
        assert np.all(np.isfinite(out)), rule


def test_orchestrator_round_trip():
    rng = np.random.default_rng(1)
    honest = rng.normal(1.0, 0.1, size=(10, 50)).astype(np.float32)
    orch = Orchestrator("FedMedian", attacks="sign_flip(scale=10)", num_clients=20, num_malicious=4, seed=3)
    mal = orch.malicious_clients
    assert len(mal) == 4 and len(set(mal)) == 4 and all(0 <= m < 20 for m in mal)
    ids = sorted(set(range(20)) - set(mal))[:7] + mal[:3]
    s = orch.step(honest, client_ids=ids)
    assert s.round == 1 and s.num_clients == 10 and s.num_malicious == 3
    assert sorted(s.malicious_clients) == sorted(mal[:3])
    assert math.isnan(s.global_loss)  # nothing is invented
    orch.report_metrics(0.25, 0.9)
    h = orch.history[0]
    assert (h.global_loss, h.accuracy) == (0.25, 0.9)
    assert h.attacks[0].name == "sign_flip"
    # the median of 7 honest rows near 1 and 3 rows near -10 stays with the honest side
    assert np.all(orch.global_model > 0.5)
    with pytest.raises(ValueError, match=r"Expected distinct client ids, got 1 twice"):
        orch.step(honest, client_ids=[1, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match=r"Expected 50 parameters \(the global model\) for the update size, got 10"):
        orch.step(honest[:, :10])


def test_orchestrator_same_seed_same_numbers():
    rng = np.random.default_rng(2)
    rounds = [rng.normal(size=(8, 40)).astype(np.float32) for _ in range(3)]

    def run():
        o = Orchestrator(
            "Bucketing(s=2) + TrimmedMean(f=1) + FedAdam", attacks=["gaussian_noise(sigma=2.0)"], num_clients=8, num_malicious=2, seed=11
        )
        for r in rounds:
            o.step(r)
        return o.global_model, o.malicious_clients

    (g1, m1), (g2, m2) = run(), run()
    assert m1 == m2
    np.testing.assert_array_equal(g1, g2)


def test_cli_list(capsys):
    from velocity.cli import main

    assert main(["list", "strategies"]) == 0
    assert "Bulyan" in capsys.readouterr().out
    assert main(["list", "attacks"]) == 0
    assert "adaptive_alie" in capsys.readouterr().out
    assert main(["sweep", "--strategies", "Krum(f=9)", "--attacks", "alie", "--rounds", "1"]) == 2
    assert "Krum(f=9) cannot aggregate 10 clients" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["strategies", "attacks"])
def test_the_type_stubs_of_the_generated_classes_are_current(module):
    from velocity._stubs import stub, stub_path

    assert stub_path(module).read_text(encoding="utf-8") == stub(module), "run `make stubs`"


def test_type_checkers_see_the_generated_classes(tmp_path):
    """mypy reads the stubs: a keyword the registry does not declare is a type error."""
    import subprocess
    import sys

    ok = tmp_path / "ok.py"
    ok.write_text(
        "from velocity.strategies import NNM, Krum\nfrom velocity.attacks import ALIE\ns = NNM(f=2) + Krum(f=2)\na = ALIE(z=1.5)\n"
    )
    bad = tmp_path / "bad.py"
    bad.write_text("from velocity.strategies import Krum\nk = Krum(ff=2)\n")
    run = [sys.executable, "-m", "mypy", "--no-incremental", "--config-file", "/dev/null"]
    assert subprocess.run([*run, str(ok)], capture_output=True, text=True).returncode == 0
    out = subprocess.run([*run, str(bad)], capture_output=True, text=True).stdout
    assert 'Unexpected keyword argument "ff" for "Krum"' in out, out
