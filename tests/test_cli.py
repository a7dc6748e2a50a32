"""The command line: one vocabulary with RunSpec and TOML files, a registry listing readable in a
terminal, and errors printed as they are."""

from __future__ import annotations

import argparse

import pytest

from velocity.cli import AXES, build_parser, main, spec_flag
from velocity.registry import list_attacks, list_strategies
from velocity.sweep.spec import RunSpec


def _sweep_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {flag: action for action in sub.choices["sweep"]._actions for flag in action.option_strings}


def test_every_run_spec_key_is_a_flag_with_the_same_name():
    actions = _sweep_actions()
    for key in RunSpec.model_fields:
        flag = spec_flag(key)
        assert flag in actions, f"RunSpec key {key!r} has no {flag} flag"
        if key not in AXES:
            assert actions[flag].dest == key
    assert actions["--model"] is actions["--model-id"] and actions["--clients"] is actions["--num-clients"]  # short aliases
    assert actions["--alpha"] is actions["--alphas"] and actions["--strategy"] is actions["--strategies"]


def test_flags_reach_the_specs(tmp_path, monkeypatch):
    from velocity.cli import _sweep_specs

    argv = ["sweep", "--strategy", "nearest_neighbour", "--attacks", "none,sign_flip", "--topology", "decentralised"]
    argv += ["--momentum", "0.5", "--client-momentum", "0.9", "--weight-decay", "1e-4", "--model-id", "mlp-16"]
    argv += ["--num-clients", "8", "--alpha", "0.5", "--no-batched", "--test-fraction", "0.25", "--seeds", "2", "--seed", "3"]
    specs = _sweep_specs(build_parser().parse_args(argv))
    assert len(specs) == 4
    for s in specs:
        assert (s.topology, s.strategy, s.momentum, s.client_momentum, s.weight_decay) == (
            "decentralised",
            "nearest_neighbour",
            0.5,
            0.9,
            1e-4,
        )
        assert (s.model_id, s.num_clients, s.alpha, s.partition, s.batched, s.test_fraction) == ("mlp-16", 8, 0.5, "dirichlet", False, 0.25)
    assert sorted((s.attack_label, s.seed, s.malicious_fraction) for s in specs) == [
        ("none", 3, 0.0),
        ("none", 4, 0.0),
        ("sign_flip", 3, 0.2),  # the same default share as a TOML file gives
        ("sign_flip", 4, 0.2),
    ]


def test_zero_seeds_is_refused_not_read_as_one(capsys):
    assert main(["sweep", "--seeds", "0", "--rounds", "1"]) == 2
    assert "Expected seeds >= 1, got 0" in capsys.readouterr().out


@pytest.mark.parametrize(("what", "components"), [("strategies", list_strategies()), ("attacks", list_attacks())])
def test_the_registry_listing_fits_80_columns(capsys, what, components):
    assert main(["list", what]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    names = {line.split()[0] for line in lines if line.strip()}
    assert {c.name for c in components} <= names  # one line each


def test_one_components_full_entry(capsys):
    assert main(["list", "strategies", "multi_krum"]) == 0  # names ignore case, _ and -
    out = capsys.readouterr().out
    assert out.startswith("MultiKrum  (rule)")
    assert "requires: n > 2f + 2" in out and "number of updates averaged" in out and "Blanchard et al." in out
    assert main(["list", "attacks", "Krum"]) == 2
    assert "Expected one of the attacks: gaussian_noise" in capsys.readouterr().out


def test_errors_print_user_text_literally(capsys):
    assert main(["sweep", "--strategies", "[bold]Krumm[/bold]", "--rounds", "1"]) == 2
    out = capsys.readouterr().out
    assert "got '[bold]Krumm[/bold]'" in out and out.count("\n") == 1, out  # one line, the markup-like text as typed


def test_list_datasets_gives_each_built_in_sets_sizes_shape_and_natural_column(capsys):
    from velocity.data import describe_builtin_datasets, load_federated

    assert main(["list", "datasets"]) == 0
    out = capsys.readouterr().out
    described = {d["name"]: d for d in describe_builtin_datasets()}
    assert set(described) == {"blobs", "digits", "synthetic-mnist"} and all(name in out for name in described)
    digits = load_federated("digits", num_clients=2)
    assert (described["digits"]["train"], described["digits"]["test"]) == (len(digits.y_train), len(digits.y_test))
    assert described["digits"]["shape"] == (1, 8, 8) and described["synthetic-mnist"]["partition_by"] == "writer"
    assert "1437" in out and "1×28×28" in out
    assert main(["list", "datasets", "digits"]) == 2
