"""Differential privacy: DP-SGD in local training, DP-FedAvg at the server, and the ε they report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant

from velocity.data import load_federated
from velocity.models import build_model
from velocity.privacy import ClientDP, ClientLedger, ServerDP, epsilon, server_dp_holds
from velocity.server import FederatedServer
from velocity.specs import parse_strategy
from velocity.sweep import Sweep
from velocity.sweep.spec import RunSpec
from velocity.training import ClientBatchPlan, LocalTrainingConfig, flatten_params, train_clients_batched, train_clients_loop
from velocity.training.dp_sgd import clipped_gradient_sum

DP = ClientDP(noise_multiplier=1.1, max_grad_norm=0.5)


def _accountant_epsilon(kind: type, noise: float, rate: float, steps: int, delta: float) -> float:
    acc = kind()
    for _ in range(steps):
        acc.step(noise_multiplier=noise, sample_rate=rate)
    with np.errstate(divide="ignore"):  # PRV at q = 1 takes log(1 − q) on a branch it discards
        return float(acc.get_epsilon(delta))


@pytest.mark.parametrize(("kind", "name"), [(RDPAccountant, "rdp"), (PRVAccountant, "prv")])
@pytest.mark.parametrize(("noise", "rate", "steps"), [(1.1, 0.05, 400), (0.8, 0.25, 37), (2.0, 1.0, 10)])
def test_epsilon_is_the_accountants_own(kind: type, name: str, noise: float, rate: float, steps: int) -> None:
    got = epsilon(noise_multiplier=noise, sample_rate=rate, steps=steps, delta=1e-5, accountant=name)  # type: ignore[arg-type]
    assert got == _accountant_epsilon(kind, noise, rate, steps, 1e-5)
    assert epsilon(noise_multiplier=noise, sample_rate=rate, steps=0, delta=1e-5) == 0.0


def test_the_ledger_reports_the_worst_client() -> None:
    ledger = ClientLedger(DP)
    ledger.record([0, 1, 2], [0.5, 0.25, 0.25], [4, 8, 6])
    ledger.record([1], [0.25], [8])
    each = {c: _accountant_epsilon(RDPAccountant, 1.1, q, t, 1e-5) for c, q, t in [(0, 0.5, 4), (1, 0.25, 16), (2, 0.25, 6)]}
    assert [ledger.epsilon(c) for c in range(3)] == [each[0], each[1], each[2]]
    assert ledger.worst() == max(each.values())
    assert ledger.epsilon(9) == 0.0 and ClientLedger(DP).worst() == 0.0


def test_poisson_batches_sample_each_example_at_the_stated_rate() -> None:
    """Each epoch is ⌈n / B⌉ steps and each example is in a batch with probability q = 1/steps:
    over 2 epochs × 13 steps of 200 examples (q = 1/13) the batch sizes are Binomial(200, 1/13),
    mean 15.4, sd 3.8; their mean over 26 batches has sd 0.74, so 4 of those bound it."""
    cfg = LocalTrainingConfig(batch_size=16, local_epochs=2, dp=DP)
    idx = [np.arange(200), np.arange(200, 205)]
    plan = ClientBatchPlan.make(idx, cfg, seed=3, round=2, client_ids=[0, 1])
    assert plan.sample_rates == (1 / 13, 1.0)
    assert plan.expected_batch == pytest.approx((200 / 13, 5.0))
    assert [len(b) for b in plan.batches] == [26, 2]
    sizes = [len(b) for b in plan.batches[0]]
    assert abs(np.mean(sizes) - 200 / 13) < 4 * 0.74, sizes
    assert all(set(b.tolist()) <= set(range(200)) for b in plan.batches[0])
    assert all(len(b) == 5 for b in plan.batches[1]), "q = 1 takes every example"
    again = ClientBatchPlan.make(idx, cfg, seed=3, round=2, client_ids=[0, 1])
    assert all(torch.equal(a, b) for a, b in zip(plan.batches[0], again.batches[0], strict=True))
    assert plan.noise_seeds == again.noise_seeds


def test_clipping_bounds_every_examples_contribution() -> None:
    """Per-example gradients of norms 0.1, 1, 10 and 100 (two parameters together) clipped to
    C = 2: the sum is g₁ + g₂ + 2·g₃/‖g₃‖ + 2·g₄/‖g₄‖ (up to Opacus's 1e-6), masked rows dropped."""
    g = torch.tensor([[0.06, 0.0, 0.08], [0.0, 1.0, 0.0], [6.0, 8.0, 0.0], [0.0, 0.0, 100.0], [50.0, 0.0, 0.0]], dtype=torch.float64)
    per_example = {"w": g[:, :2].reshape(5, 2, 1), "b": g[:, 2:]}
    mask = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    out = clipped_gradient_sum(per_example, mask, 2.0)
    norms = g.norm(dim=1)
    want = sum(g[i] * min(1.0, 2.0 / (float(norms[i]) + 1e-6)) for i in range(4))
    got = torch.cat([out["w"].reshape(-1), out["b"]])
    torch.testing.assert_close(got, want, atol=1e-15, rtol=0)


def _sequence_model() -> torch.nn.Module:
    """Linear layers on a (batch, 3, 5) input: each example's weight gradient sums over 3 positions."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 6, bias=False), nn.Flatten(), nn.ReLU(), nn.Linear(18, 3))


def _conv_model() -> torch.nn.Module:
    """Convolutions with padding, a stride, no bias on one, then a linear layer, on (batch, 2, 10, 10)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
        nn.Flatten(),
        nn.Linear(54, 3),
    )


def _per_example_reference(model: torch.nn.Module, max_norm: float):
    """The definition: every example's gradient by torch.func, clipped and summed."""
    from torch.func import functional_call, grad, vmap

    def loss(p, xi, yi):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))
    return lambda p, xb, yb, mask: clipped_gradient_sum(per_example(p, xb, yb), mask, max_norm)


@pytest.mark.parametrize("max_norm", [0.05, 1e3])
@pytest.mark.parametrize("model_id", ["logreg", "mlp-32-16", "sequence", "conv"])
def test_ghost_clipping_gives_the_per_example_clipped_sum(model_id: str, max_norm: float) -> None:
    """Ghost clipping's sum equals the per-example definition, alone and vmapped over clients as the
    batched trainer runs it, with masked examples, in float64 to 1e-12 (sums of order 0.1 to 10,
    rounding of order 1e-15; a bias left out of the norm, or a convolution's norm scaled by 0.9,
    fails it). C = 0.05 clips every example, C = 1000 none."""
    from torch.func import vmap

    from velocity.training.dp_sgd import clipped_sum, ghost_clipping_applies

    built = {"sequence": (_sequence_model, (3, 5)), "conv": (_conv_model, (2, 10, 10))}
    make, shape = built.get(model_id, (lambda: build_model(model_id, input_shape=(1, 8, 8), num_classes=3, seed=0), (1, 8, 8)))
    model = make().double()
    assert ghost_clipping_applies(model)
    g = torch.Generator().manual_seed(2)
    k, b = 3, 9
    x, y = torch.randn(k, b, *shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (k, b), generator=g)
    mask = torch.ones(k, b, dtype=torch.float64)
    mask[1, -4:] = 0
    params = {n: p.detach() + 0.1 * torch.randn(k, *p.shape, generator=g, dtype=torch.float64) for n, p in model.named_parameters()}
    reference, ghost = _per_example_reference(model, max_norm), clipped_sum(model)
    want = vmap(reference)(params, x, y, mask)
    got = vmap(lambda p, xb, yb, m: ghost(p, xb, yb, m, max_norm))(params, x, y, mask)
    one = ghost({n: v[1] for n, v in params.items()}, x[1], y[1], mask[1], max_norm)
    assert set(got) == set(want) == set(one)
    assert max(float(v.abs().max()) for v in want.values()) > 0.01
    for n in want:
        torch.testing.assert_close(got[n], want[n], atol=1e-12, rtol=0)
        torch.testing.assert_close(one[n], want[n][1], atol=1e-12, rtol=0)


def test_ghost_clipping_serves_sequences_of_linear_and_plain_convolution_layers() -> None:
    """Grouped, padded-by-name or non-zero-padded convolutions, other convolutions, normalisation
    layers and models that are not a flat Sequential take per-example gradients."""
    from velocity.training.dp_sgd import ghost_clipping_applies

    nn = torch.nn
    assert ghost_clipping_applies(build_model("mlp", input_shape=(1, 28, 28), num_classes=10))
    assert ghost_clipping_applies(build_model("cnn28", input_shape=(1, 28, 28), num_classes=10))
    assert not ghost_clipping_applies(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten()))
    assert not ghost_clipping_applies(nn.Sequential(nn.Conv2d(4, 4, 3, padding="same"), nn.Flatten()))
    assert not ghost_clipping_applies(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.Flatten()))
    assert not ghost_clipping_applies(nn.Sequential(nn.Conv1d(4, 4, 3), nn.Flatten()))
    assert not ghost_clipping_applies(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)))
    assert not ghost_clipping_applies(nn.Sequential(nn.Sequential(nn.Linear(4, 2))))
    shared = nn.Linear(4, 4)
    assert not ghost_clipping_applies(nn.Sequential(shared, nn.ReLU(), shared))

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    assert not ghost_clipping_applies(Wrapped())


def _one_client_step(x: torch.Tensor, y: torch.Tensor, batch: torch.Tensor, dp: ClientDP, expected: float, trainer) -> torch.Tensor:
    """One DP-SGD step of plain SGD (lr 1, no momentum) from a seeded MLP: the update is −g."""
    cfg = LocalTrainingConfig(lr=1.0, momentum=0.0, batch_size=8, local_epochs=1, dp=dp)
    model = build_model("mlp-64", input_shape=(20,), num_classes=3, seed=0).double()
    # a one-client plan of one batch
    plan = ClientBatchPlan(((batch,),), sample_rates=(0.5,), expected_batch=(expected,), noise_seeds=(11,))
    return trainer(model, flatten_params(model), x, y, plan, cfg)[0]


@pytest.mark.parametrize("trainer", [train_clients_loop, train_clients_batched])
def test_the_noise_has_the_stated_scale(trainer) -> None:
    """An empty Poisson batch leaves the noise alone: the update is −N(0, σ²C²)/E[batch] per
    parameter. Over d = 1,539 parameters the sample sd is within 5·sd/√(2d) = 9 % of σC/E
    (its own sd is 1.8 %), the mean within 5/√d of it, and the kurtosis near a Gaussian's 3
    (its sd is √(24/d) = 0.12)."""
    x, y = torch.randn(10, 20, dtype=torch.float64), torch.randint(0, 3, (10,))
    dp = ClientDP(noise_multiplier=1.3, max_grad_norm=0.7)
    update = _one_client_step(x, y, torch.zeros(0, dtype=torch.int64), dp, 4.0, trainer)
    d = update.numel()
    scale = 1.3 * 0.7 / 4.0
    z = (-update / scale).numpy()
    assert abs(z.mean()) < 5 / math.sqrt(d)
    assert abs(z.std() - 1) < 5 / math.sqrt(2 * d)
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3) < 5 * math.sqrt(24 / d)


@pytest.mark.parametrize("trainer", [train_clients_loop, train_clients_batched])
def test_a_clipped_step_moves_no_further_than_the_clip(trainer) -> None:
    """With noise 10⁻⁹ of the clip, one example whose gradient is far above C = 10⁻⁴ (an
    untrained MLP's is of order 0.1 to 1) moves the model by C / E[batch] (the clipped gradient's
    norm is C·‖g‖/(‖g‖ + 10⁻⁶), within 10⁻⁵ of C), and two such examples by at most 2C / E[batch]."""
    x, y = torch.randn(10, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(1)), torch.arange(10) % 3
    dp = ClientDP(noise_multiplier=1e-9, max_grad_norm=1e-4)
    one = _one_client_step(x, y, torch.tensor([3]), dp, 2.0, trainer)
    assert float(one.norm()) == pytest.approx(1e-4 / 2.0, rel=1e-5)
    two = _one_client_step(x, y, torch.tensor([3, 4]), dp, 2.0, trainer)
    assert float(two.norm()) <= 2 * 1e-4 / 2.0 * (1 + 1e-6)


@pytest.mark.parametrize("mu", [0.0, 0.1])
@pytest.mark.parametrize("model_id", ["logreg", "mlp-32-16", "cnn28"])
def test_dp_sgd_batched_matches_the_loop(model_id: str, mu: float) -> None:
    """The two trainers draw the same noise (each client's own generator, parameter by parameter)
    and clip the same per-example gradients: in float64 they agree to rounding, bounded as in
    tests/test_training.py's comparison (1e-12 against updates of order 0.1; a wrong noise
    draw, divisor or proximal term moves an update by ≥ 1e-4)."""
    shape = (1, 28, 28) if model_id == "cnn28" else (1, 8, 8)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, *shape, generator=g, dtype=torch.float64), torch.randint(0, 10, (120,), generator=g)
    idx = np.array_split(np.arange(120), 4)
    idx[1] = idx[1][:7]
    cfg = LocalTrainingConfig(lr=0.05, batch_size=8, local_epochs=2, momentum=0.9, weight_decay=1e-3, mu=mu, dp=DP)
    model = build_model(model_id, input_shape=shape, num_classes=10, seed=3).double()
    plan = ClientBatchPlan.make(idx, cfg, seed=5, round=1, client_ids=range(4))
    params = flatten_params(model)
    looped = train_clients_loop(model, params, x, y, plan, cfg)
    batched = train_clients_batched(model, params, x, y, plan, cfg)
    assert looped.abs().max() > 1e-3
    torch.testing.assert_close(batched, looped, atol=1e-12, rtol=0)


def _digits(clients: int = 5):
    return load_federated("digits", num_clients=clients, seed=0)


def test_a_private_run_records_each_rounds_epsilon_as_the_accountant_gives_it() -> None:
    data = _digits()
    local = LocalTrainingConfig(batch_size=32, local_epochs=1, dp=DP)
    server = FederatedServer(data, model_id="logreg", local=local, seed=0)
    records = server.run(3)
    # every client trains every round: each took ⌈n/32⌉ steps per round at q = 1/that
    steps = {c: -(-len(i) // 32) for c, i in enumerate(data.client_indices)}
    for r, record in enumerate(records, 1):
        want = max(_accountant_epsilon(RDPAccountant, 1.1, 1 / s, s * r, 1e-5) for s in steps.values())
        assert record.dp_epsilon == pytest.approx(want, rel=1e-12)
        assert math.isnan(record.server_dp_epsilon)
    assert records[0].dp_epsilon < records[1].dp_epsilon < records[2].dp_epsilon
    assert all(math.isfinite(r.global_loss) for r in records)


def test_server_dp_records_epsilon_for_the_mean_only() -> None:
    data = _digits(10)
    dp = ServerDP(clip=0.5, noise_multiplier=1.5)
    fedavg = FederatedServer(data, model_id="logreg", server_dp=dp, clients_per_round=4, seed=0).run(3)
    for r, record in enumerate(fedavg, 1):
        assert record.server_dp_epsilon == pytest.approx(_accountant_epsilon(RDPAccountant, 1.5, 0.4, r, 1e-5), rel=1e-12)
        assert record.defence.clip_radius == 0.5
    krum = FederatedServer(data, model_id="logreg", strategy="Krum", server_dp=dp, clients_per_round=4, seed=0).run(2)
    assert all(math.isnan(r.server_dp_epsilon) for r in krum)
    assert server_dp_holds(parse_strategy("FedAvg + FedAdam")) and server_dp_holds(parse_strategy("FedProx"))
    assert not server_dp_holds(parse_strategy("NNM + FedAvg")) and not server_dp_holds(parse_strategy("Krum"))


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"dp": {"noise_multiplier": 0, "max_grad_norm": 1}}, "dp.noise_multiplier"),
        ({"dp": {"noise_multiplier": 1, "max_grad_norm": -1}}, "dp.max_grad_norm"),
        ({"dp": {"noise_multiplier": 1, "max_grad_norm": 1, "delta": 1}}, "dp.delta"),
        ({"dp": {"noise_multiplier": 1, "max_grad_norm": 1, "accountant": "gdp"}}, "dp.accountant"),
        ({"server_dp": {"clip": 1, "noise_multiplier": -0.5}}, "server_dp.noise_multiplier"),
        ({"server_dp": {"clip": 0, "noise_multiplier": 1}}, "server_dp.clip"),
        ({"server_dp": {"clip": 1}}, "server_dp.noise_multiplier"),
        ({"server_dp": {"clip": 1, "noise_multiplier": 1, "sigma": 2}}, "server_dp.sigma"),
        (
            {"dp": {"noise_multiplier": 1, "max_grad_norm": 1}, "topology": "decentralised", "strategy": "MoNNA", "num_clients": 6},
            "Expected topology 'federated' with dp",
        ),
    ],
)
def test_bad_privacy_settings_are_refused_before_the_run(keys: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RunSpec(**keys)


def test_server_dp_with_a_python_rule_is_refused(clean_extend_registry: None) -> None:
    from velocity.extend import rule

    @rule("PlainMean")
    def plain_mean(updates, *, f, weights):
        return updates.mean(axis=0)

    with pytest.raises(ValueError, match=r"Expected a built-in strategy with server_dp.*'PlainMean'"):
        RunSpec(strategy="PlainMean", server_dp={"clip": 1, "noise_multiplier": 1})
    with pytest.raises(ValueError, match="Expected a built-in strategy with server_dp"):
        FederatedServer(_digits(), model_id="logreg", strategy="PlainMean", server_dp=ServerDP(clip=1, noise_multiplier=1))
    RunSpec(strategy="PlainMean", dp={"noise_multiplier": 1, "max_grad_norm": 1})  # DP-SGD is the clients': any rule


def test_dp_sgd_refuses_batch_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    import velocity.server as server_module

    def with_batch_norm(model_id, *, input_shape, num_classes, seed):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, num_classes))

    monkeypatch.setattr(server_module, "build_model", with_batch_norm)
    with pytest.raises(ValueError, match=r"Expected a model without batch normalisation for DP-SGD.*BatchNorm1d"):
        FederatedServer(_digits(), local=LocalTrainingConfig(dp=DP))


def test_privacy_keys_leave_other_runs_identity_alone() -> None:
    plain = RunSpec()
    assert "dp" not in plain.config_key and "server_dp" not in plain.config_key
    private = RunSpec(dp={"noise_multiplier": 1, "max_grad_norm": 1})
    assert private.spec_hash != plain.spec_hash
    assert private.label == "FedAvg [DP-SGD σ=1 C=1] | none | α=iid | seed=0"
    assert RunSpec(server_dp={"clip": 0.5, "noise_multiplier": 2}).strategy_label == "FedAvg [server DP z=2 C=0.5]"


def test_a_sweep_reports_privacy_in_rounds_summaries_and_the_comparison(tmp_path) -> None:
    shared = {"dataset": "digits", "model_id": "logreg", "rounds": 2, "num_clients": 5}
    specs = [
        RunSpec(**shared, dp={"noise_multiplier": 1.0, "max_grad_norm": 1.0}),
        RunSpec(**shared, server_dp={"clip": 1.0, "noise_multiplier": 1.0}),
        RunSpec(**shared, strategy="FedMedian", server_dp={"clip": 1.0, "noise_multiplier": 1.0}),
    ]
    sweep = Sweep(specs, out=tmp_path, parallel=2).run()
    results = sweep.results
    final = results.filter(results["round"] == 2).sort("index")
    assert final["dp_epsilon"].to_list()[0] > 0 and math.isnan(final["dp_epsilon"].to_list()[1])
    assert final["server_dp_epsilon"].to_list()[1] > 0 and math.isnan(final["server_dp_epsilon"].to_list()[2])
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/summary.json"))]
    assert sorted(s["final_dp_epsilon"] is not None for s in summaries) == [False, False, True]
    markdown = (tmp_path / "comparison.md").read_text()
    assert "ε DP-SGD" in markdown and "ε server DP" in markdown and "δ = 1e-05" in markdown
    assert "Server DP without ε: FedMedian" in markdown
    assert "FedMedian [server DP z=1 C=1]" in markdown


def test_a_matrix_sweeps_privacy_levels() -> None:
    from velocity.sweep.experiment import SpecError, parse_experiment

    text = """
[shared]
dataset = "digits"
[matrix]
strategies = ["FedAvg", "Krum"]
attacks = ["none", "sign_flip"]
privacy = [{}, {dp = {noise_multiplier = 1.0, max_grad_norm = 0.5}}, {server_dp = {clip = 1.0, noise_multiplier = 2.0}}]
"""
    specs = parse_experiment(text)
    assert len(specs) == 2 * 2 * 3
    levels = {(s.dp is not None, s.server_dp is not None) for s in specs}
    assert levels == {(False, False), (True, False), (False, True)}
    assert all(s.malicious_fraction == (0.2 if s.attacks else 0.0) for s in specs)
    assert len({s.config_key for s in specs}) == 12
    for bad, message in [
        ("privacy = [{epsilon = 1}]", "Expected privacy levels with the keys dp, server_dp, got 'epsilon'"),
        ("privacy = {dp = {noise_multiplier = 1.0, max_grad_norm = 1.0}}", "Expected privacy as a list of tables"),
        ("privacy = [{}, 3]", "Expected each privacy level as a table"),
        ("privacy = [{dp = {noise_multiplier = -1.0, max_grad_norm = 1.0}}]", "key 'dp.noise_multiplier': .*greater than 0, got -1.0"),
        (
            "privacy = [{dp = {noise_multiplier = 1.0, max_grad_norm = 1.0, sigma = 2}}]",
            "key 'dp.sigma': unknown key; expected one of: noise_multiplier, max_grad_norm, delta, accountant",
        ),
        ("privacy = [{server_dp = {clip = 1.0}}]", "key 'server_dp.noise_multiplier': required, got none"),
    ]:
        with pytest.raises(SpecError, match=message):
            parse_experiment(f'[matrix]\nstrategies = ["FedAvg"]\n{bad}\n')


def test_the_command_line_takes_privacy_tables(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from velocity.cli import main

    assert main(["sweep", "--dataset", "digits", "--model", "logreg", "--rounds", "1", "--clients", "3",
                 "--dp", "noise_multiplier=1.2,max_grad_norm=0.5", "--out", str(tmp_path / "s")]) == 0  # fmt: skip
    config = json.loads(next((tmp_path / "s").glob("*/config.json")).read_text())
    assert config["dp"] == {"noise_multiplier": 1.2, "max_grad_norm": 0.5, "delta": 1e-5, "accountant": "rdp"}
    summary = json.loads(next((tmp_path / "s").glob("*/summary.json")).read_text())
    assert f"{summary['final_dp_epsilon']:.2f}" in capsys.readouterr().out  # the terminal's table shows ε
    with pytest.raises(SystemExit):
        main(["sweep", "--dp", "noise_multiplier", "--out", str(tmp_path / "bad")])


def test_the_panels_run_button_keeps_the_sweeps_privacy() -> None:
    """Runs the panel queues are built on the sweep's first run: its DP settings carry over, and
    the run table shows their ε once measured."""
    from velocity.panel.state import Controls, run_table, specs_from_controls

    base = RunSpec(dataset="digits", server_dp={"clip": 0.5, "noise_multiplier": 2.0}, dp={"noise_multiplier": 1.0, "max_grad_norm": 1.0})
    new, skipped = specs_from_controls(base, Controls(("FedAvg", "FedMedian"), ("none",), None, 0.2, 10, 10), [base])
    assert skipped == ["FedAvg × none: already in this sweep"]  # FedAvg is the base run itself, privacy included
    assert [s.strategy for s in new] == ["FedMedian"]
    assert (new[0].dp, new[0].server_dp) == (base.dp, base.server_dp)
    table = run_table(
        [base], ["finished"], {0: {"status": "finished", "final_dp_epsilon": 3.5, "final_server_dp_epsilon": 9.0}}, {}, {0: 3}
    )
    assert (table[0]["dp_epsilon"], table[0]["server_dp_epsilon"]) == (3.5, 9.0)
    assert table[0]["strategy"] == "FedAvg [DP-SGD σ=1 C=1, server DP z=2 C=0.5]"


def test_the_server_trains_linear_networks_together_under_dp_sgd() -> None:
    """On the CPU, 100 MLP clients train together under DP-SGD: ghost clipping holds no per-example
    gradients (by them, 109,386 parameters × 100 clients × batch 32 would be 1.4 GB a step, which
    trained them one by one). A convolutional model trains one by one, with DP or without."""
    data = load_federated("synthetic-mnist", num_clients=100, seed=0)
    private = LocalTrainingConfig(dp=DP)
    assert FederatedServer(data, model_id="mlp", local=private, device="cpu", seed=0).batched is True
    assert FederatedServer(data, model_id="logreg", local=private, device="cpu", seed=0).batched is True
    assert FederatedServer(data, model_id="cnn28", local=private, device="cpu", seed=0).batched is False
