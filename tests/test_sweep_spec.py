"""RunSpec and the experiment loader: one validated list from TOML, grids and flags."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from velocity.sweep import RunSpec, SpecError, grid, load_experiment
from velocity.sweep.spec import DEFAULT_MALICIOUS_FRACTION

EXAMPLE = Path(__file__).parent.parent / "examples" / "experiment.toml"


def test_the_example_experiment_loads():
    specs = load_experiment(EXAMPLE)
    assert [s.label for s in specs] == ["baseline-fedavg", "fedmedian-baseline", "fedavg-under-poisoning", "fedmedian-under-poisoning"]
    poisoned = specs[2]
    assert poisoned.attacks == ("model_poisoning(intensity=0.5)",)
    assert (poisoned.rounds, poisoned.dataset, poisoned.storage, poisoned.min_clients) == (10, "digits", "local://checkpoints", 10)
    assert specs[0].attacks == () and specs[0].malicious_fraction == 0


def test_attacked_runs_get_the_same_default_share_from_toml_flags_and_python(tmp_path):
    """The original spec's example, as written: [shared], four [[runs]], two of them attacked by
    model poisoning with no malicious_fraction (it used to be refused in TOML while the command
    line gave such runs 0.2)."""
    f = tmp_path / "spec_example.toml"
    f.write_text(
        '[shared]\nmodel_id = "mlp"\ndataset = "digits"\nstorage = "local://checkpoints"\nrounds = 10\nnum_clients = 10\nmin_clients = 10\n'
        '[[runs]]\nname = "baseline-fedavg"\nstrategy = "FedAvg"\n'
        '[[runs]]\nname = "fedmedian-baseline"\nstrategy = "FedMedian"\n'
        '[[runs]]\nname = "fedavg-under-poisoning"\nstrategy = "FedAvg"\n[[runs.attacks]]\ntype = "model_poisoning"\nintensity = 0.5\n'
        '[[runs]]\nname = "fedmedian-under-poisoning"\nstrategy = "FedMedian"\n[[runs.attacks]]\ntype = "model_poisoning"\nintensity = 0.5\n'
    )
    specs = load_experiment(f)
    assert [s.malicious_fraction for s in specs] == [0.0, 0.0, 0.2, 0.2]
    assert [s.num_malicious for s in specs] == [0, 0, 2, 2]
    flags = grid(strategies=["FedAvg"], attacks=["none", "model_poisoning(intensity=0.5)"])
    assert [s.malicious_fraction for s in flags] == [0.0, 0.2]
    assert RunSpec(attacks=["sign_flip"]).malicious_fraction == 0.2 == DEFAULT_MALICIOUS_FRACTION
    assert RunSpec(attacks="none").malicious_fraction == 0.0
    assert RunSpec(attacks=["sign_flip"], malicious_fraction=0.3).malicious_fraction == 0.3
    assert [s.malicious_fraction for s in grid(attacks=["none", "ipm"], malicious_fraction=0.4)] == [0.0, 0.4]


def test_grid_expands_and_pairs_seeds():
    specs = grid(strategies=["FedAvg", "Krum(f=2)"], attacks=["none", "sign_flip"], alphas=[0.1, math.inf], seeds=2, rounds=3, seed=7)
    assert len(specs) == 16
    assert {s.seed for s in specs} == {7, 8}
    # the same repetition of every configuration shares its seed
    assert {s.seed for s in specs if s.strategy == "FedAvg" and s.attacks == () and s.alpha == 0.1} == {7, 8}
    clean = [s for s in specs if not s.attacks]
    assert all(s.malicious_fraction == 0 for s in clean)
    assert all(s.partition == "dirichlet" for s in specs)
    assert specs[0].label == "FedAvg | none | α=0.1 | seed=7"
    # the hash ignores the name, the seed changes it
    a, b = specs[0], specs[0].model_copy(update={"name": "x"})
    assert a.spec_hash == b.spec_hash
    assert a.spec_hash != specs[1].spec_hash


def test_matrix_form_in_toml(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text(
        '[shared]\nrounds = 2\n\n[matrix]\nstrategies = ["FedAvg", "FedMedian"]\nattacks = ["none", {type = "ipm", epsilon = 10.0}]\nalphas = [0.5, inf]\nseeds = [0, 5]\n'
    )
    specs = load_experiment(f)
    assert len(specs) == 16
    assert {s.attack_label for s in specs} == {"none", "ipm(epsilon=10.0)"}
    assert {s.alpha_label for s in specs} == {"0.5", "inf"}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[runs]]\nname = "a"\nstrategy = "Krumm"\n', r"run 1 \('a'\), key 'strategy': Unknown strategy component 'Krumm'"),
        ('[[runs]]\nname = "a"\nrounds = 3\nfoo = 1\n', r"run 1 \('a'\), key 'foo': unknown key; expected one of: name, dataset"),
        (
            '[[runs]]\npartition = "circles"\n',
            r"key 'partition': Input should be 'iid', 'shard', 'dirichlet', 'pathological', 'quantity' or 'natural', got 'circles'",
        ),
        ('[[runs]]\npartition = "dirichlet"\n', r"Expected alpha for the dirichlet partition, got none"),
        (
            '[[runs]]\nattacks = ["sign_flip"]\nmalicious_fraction = 0.0\n',
            r"Expected malicious_fraction > 0 with attacks \['sign_flip'\], got 0",
        ),
        ('[[runs]]\nmodel_id = "resnet"\n', r"key 'model_id': Unknown model_id 'resnet'"),
        ("[runs]\nx = 1\n", r"expected \[\[runs\]\] to be an array of tables"),
        ("[shared]\nrounds = 1\n", r"no runs: add \[\[runs\]\] or a \[matrix\]"),
        ("[sharde]\nrounds = 1\n", r"unknown top-level key 'sharde'"),
        ("[[runs]\nname = 1\n", r"malformed TOML"),
        ('[[runs]]\nname = "a"\n[[runs]]\nname = "a"\n', r"runs 1 and 2 are both named 'a'"),
        ('[matrix]\nstrategy = ["FedAvg"]\n', r"unknown key 'strategy' in \[matrix\]"),
        (
            '[[runs]]\nstrategy = "Krum(f=2)"\nattacks = [{type = "alie", z = "big"}]\nmalicious_fraction = 0.2\n',
            r"key 'attacks': Expected a number for alie.z",
        ),
    ],
)
def test_bad_experiments_name_the_file_the_run_and_the_key(tmp_path, toml, message):
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(SpecError, match=message) as info:
        load_experiment(f)
    assert str(f) in str(info.value)


def test_runspec_is_strict_and_canonical():
    s = RunSpec(strategy={"name": "krum", "f": 2}, attacks=[{"type": "SignFlip", "scale": 2}], malicious_fraction=0.2)
    assert s.strategy == "Krum(f=2)" and s.attacks == ("sign_flip(scale=2.0)",)
    with pytest.raises(ValueError, match="min_clients <= num_clients"):
        RunSpec(num_clients=5, min_clients=6)


def test_infinity_is_written_one_way_everywhere(tmp_path):
    """α = inf (iid) is "inf" in config.json, as in component tables and every other file;
    folders written with pydantic's "Infinity" still load, with the same spec hash."""
    import json

    from velocity.specs import to_json_value
    from velocity.sweep.files import atomic_write_json, read_json

    spec = RunSpec(alpha=math.inf, attacks=["ipm(epsilon=inf)"])
    written = json.loads(spec.model_dump_json())
    assert written["alpha"] == "inf" and written["attacks"] == ["ipm(epsilon=inf)"]
    assert (
        RunSpec.model_validate({**written, "alpha": "Infinity"}).spec_hash
        == spec.spec_hash
        == RunSpec.model_validate_json(spec.model_dump_json()).spec_hash
    )
    atomic_write_json(tmp_path / "x.json", {"a": math.inf, "b": -math.inf, "c": math.nan, "d": [1.0, math.inf]})
    assert read_json(tmp_path / "x.json") == {"a": "inf", "b": "-inf", "c": None, "d": [1.0, "inf"]}
    assert to_json_value({"z": math.inf}) == {"z": "inf"}


def test_a_key_added_later_keeps_the_identity_of_earlier_runs():
    """Settings saved by an earlier version (tests/data) keep the spec_hash it gave them, so
    their sweep folders resume: the quantity partition's keys enter only runs that use it."""
    import json

    recorded = json.loads((Path(__file__).parent / "data" / "spec_hashes_2cc5877.json").read_text())["specs"]
    for entry in recorded:
        assert RunSpec.model_validate(entry["config"]).spec_hash == entry["spec_hash"], entry["config"]
    base = RunSpec(partition="quantity")
    assert RunSpec(partition="quantity", size_skew=2.0).spec_hash != base.spec_hash
    assert RunSpec(partition="quantity", size_distribution="exponential").spec_hash != base.spec_hash
    assert RunSpec(size_skew=2.0).spec_hash == RunSpec().spec_hash  # an iid run does not read it
    with pytest.raises(ValueError, match="size_skew"):
        RunSpec(partition="quantity", size_skew=math.inf)


def test_the_natural_partition_needs_its_column():
    with pytest.raises(ValueError, match=r"Expected partition_by .* for the natural partition, got none"):
        RunSpec(partition="natural")
    spec = RunSpec(partition="natural", partition_by="writer", dataset="synthetic-mnist")
    assert spec.label == "FedAvg | none | natural by writer | seed=0"
    assert RunSpec(alpha=0.5, partition_by="writer").label == "FedAvg | none | α=0.5 over writer | seed=0"
