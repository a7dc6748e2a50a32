"""The server loop's bookkeeping, on a small hand-built data set."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from velocity.data import load_federated
from velocity.server import FederatedServer
from velocity.training import LocalTrainingConfig


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(0)
    n, classes = 400, 4
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x[torch.arange(n), y] += 2.0  # learnable
    idx = np.array_split(np.random.default_rng(0).permutation(300), 10)
    return SimpleNamespace(
        x_train=x[:300],
        y_train=y[:300],
        x_test=x[300:],
        y_test=y[300:],
        client_indices=[np.sort(i) for i in idx],
        num_classes=classes,
        input_shape=(6,),
    )


def test_sampling_and_records(data):
    s = FederatedServer(data, model_id="logreg", clients_per_round=0.4, seed=3)
    r1, r2 = s.run(2)
    assert len(r1.client_ids) == 4 and list(r1.client_ids) == sorted(r1.client_ids)
    again = FederatedServer(data, model_id="logreg", clients_per_round=0.4, seed=3).run(2)
    assert [r.client_ids for r in again] == [r1.client_ids, r2.client_ids]
    assert [r.global_loss for r in again] == [r1.global_loss, r2.global_loss]
    assert s.orchestrator.history[-1].global_loss == r2.global_loss  # reported into the core's record
    assert r1.round_ms >= r1.train_ms + r1.aggregate_ms


def test_batched_and_loop_servers_agree(data):
    cfg = LocalTrainingConfig(lr=0.1, batch_size=16, momentum=0.5)
    a = FederatedServer(data, model_id="mlp-8", local=cfg, batched=True, seed=1).run(3)
    b = FederatedServer(data, model_id="mlp-8", local=cfg, batched=False, seed=1).run(3)
    # float32 trainers agree to ~1e-6 of an update (test_training); a test loss moves about as
    # much. Measured: at most 6e-8 relative; a defect in either path moves it by far more than 1e-4.
    np.testing.assert_allclose([r.global_loss for r in a], [r.global_loss for r in b], rtol=1e-4)


def test_data_attacks_poison_only_malicious_clients(data):
    labels_before = data.y_train.clone()
    s = FederatedServer(data, model_id="logreg", attacks="label_flipping", malicious_fraction=0.3, seed=0)
    s.run(1)
    mal = s.malicious_clients
    assert len(mal) == 3
    for cid, idx in enumerate(data.client_indices):
        original, used = labels_before[idx], s._y_train[idx].cpu()  # (the labels live on the run's device)
        if cid in mal:
            assert torch.equal(used, 3 - original)
        else:
            assert torch.equal(used, original)
    assert torch.equal(data.y_train, labels_before)  # the data set itself is untouched


def test_fedprox_mu_reaches_the_clients(data):
    s = FederatedServer(data, model_id="logreg", strategy="FedProx(mu=0.5)")
    assert s.local.mu == 0.5
    assert FederatedServer(data, model_id="logreg", strategy="FedProx").local.mu == 0.01


def test_client_momentum_scales_the_first_round(data):
    plain = FederatedServer(data, model_id="logreg", seed=2)
    plain.run_round()
    with_momentum = FederatedServer(data, model_id="logreg", client_momentum=0.75, seed=2)
    with_momentum.run_round()
    # round 1: every client sends (1 − β)·Δ with Δ identical to the plain run
    a = plain.orchestrator.history[0].honest_mean_norm
    b = with_momentum.orchestrator.history[0].honest_mean_norm
    assert b == pytest.approx(0.25 * a, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"malicious_fraction": 1.5}, r"Expected malicious_fraction in \[0, 1\], got 1.5"),
        ({"clients_per_round": 0}, r"Expected clients_per_round as a count in 1..10 or a fraction in \(0, 1\], got 0"),
        ({"client_momentum": 1.0}, r"Expected client_momentum in \[0, 1\), got 1.0"),
        ({"strategy": "Krum(f=x)"}, r"Expected an integer for Krum.f"),
    ],
)
def test_server_argument_errors(data, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        FederatedServer(data, model_id="logreg", **kwargs)


def test_impossible_n_for_f_is_a_clear_error(data):
    s = FederatedServer(data, model_id="logreg", strategy="Krum", attacks="sign_flip", malicious_fraction=0.4, seed=0)
    with pytest.raises(ValueError, match=r"Expected n > 2f \+ 2 = 10 for Krum with f = 4, got n = 10"):
        s.run_round()


@pytest.mark.parametrize("topology", ["federated", "decentralised"])
def test_both_trainers_share_one_run_contract(topology):
    """run(k) returns the k records it ran; history keeps them all (the federated server used to
    return its whole history, the decentralised run only the new records)."""
    from velocity.runs import build_trainer
    from velocity.sweep.spec import RunSpec
    from velocity.trainer import Trainer

    spec = RunSpec(dataset="blobs", model_id="logreg", num_clients=5, topology=topology, strategy="FedAvg")
    trainer, _ = build_trainer(spec)
    assert isinstance(trainer, Trainer)
    first = trainer.run(1)
    seen = []
    more = trainer.run(2, on_round=seen.append)
    assert [r.round for r in first] == [1] and [r.round for r in more] == [2, 3] and seen == more
    assert trainer.history == [*first, *more]
    assert trainer.run(0) == []
    with pytest.raises(ValueError, match=r"Expected rounds as an integer >= 0, got -1"):
        trainer.run(-1)


def test_fltrust_trains_the_servers_root_examples_each_round_and_distrusts_reversed_updates() -> None:
    """The server holds root_size clean examples (a seeded draw from the training set) and trains
    on them every round with the clients' procedure; that update is FLTrust's reference, and
    sign-flipped clients, pointing away from it, get no trust."""
    import velocity.server as server_module

    data = load_federated("digits", num_clients=10, seed=0)
    # on the CPU: the reference below is computed there, and compared to the bit
    server = FederatedServer(data, strategy="FLTrust(root_size=37)", attacks=["sign_flip"], malicious_fraction=0.2, seed=0, device="cpu")
    assert server._root is not None and len(server._root) == 37 and len(set(server._root.tolist())) == 37
    seen = []
    real = server.orchestrator.step

    def spy(*args, **kw):
        seen.append(kw.get("server_update"))
        return real(*args, **kw)

    server.orchestrator.step = spy  # type: ignore[method-assign]
    before = torch.from_numpy(server.orchestrator.global_model)
    record = server.run_round()
    # the reference is the clients' local procedure run on the root examples from the global model
    plan = server_module.ClientBatchPlan.make([server._root], server.local, seed=0, round=1, client_ids=[10])
    want = server_module.train_clients_loop(server.model, before, data.x_train, data.y_train, plan, server.local)[0].numpy()
    np.testing.assert_array_equal(seen[0], want)
    assert record.defence is not None and record.defence.malicious_share == 0.0
    for _ in range(2):
        assert server.run_round().defence.malicious_share == 0.0
    # every other rule trains nothing extra
    assert FederatedServer(data, strategy="FedAvg", seed=0)._root is None
