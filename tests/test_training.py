"""Models, local training (batched == loop), data attacks and the server loop's bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from velocity.attacks import parse_attack
from velocity.models import build_model, list_models, parse_model_id
from velocity.training import (
    ClientBatchPlan,
    LocalTrainingConfig,
    flatten_params,
    poison_labels,
    train_clients_batched,
    train_clients_loop,
)


def toy_data(n=600, shape=(1, 8, 8), classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize(
    "cfg",
    [
        LocalTrainingConfig(lr=0.1, batch_size=32),
        LocalTrainingConfig(lr=0.05, batch_size=16, local_epochs=2, momentum=0.9, weight_decay=1e-3, mu=0.1),
    ],
)
@pytest.mark.parametrize("model_id", ["logreg", "mlp-32-16", "cnn28"])
def test_batched_training_matches_the_loop(cfg, model_id):
    shape = (1, 28, 28) if model_id == "cnn28" else (1, 8, 8)
    x, y = toy_data(n=300 if model_id == "cnn28" else 600, shape=shape)
    # uneven clients: the batched trainer must freeze clients whose own plan is done
    idx = np.array_split(np.arange(len(y)), 6)
    idx[2] = idx[2][:7]
    model = build_model(model_id, input_shape=shape, num_classes=10, seed=3)
    g = flatten_params(model)
    g_before = g.clone()
    plan = ClientBatchPlan.make(idx, cfg, seed=5, round=1, client_ids=range(6))
    looped = train_clients_loop(model, g, x, y, plan, cfg)
    batched = train_clients_batched(model, g, x, y, plan, cfg)
    assert torch.equal(g, g_before), "training must not write into the global model"
    assert looped.abs().max() > 1e-4, "clients must actually move"
    torch.testing.assert_close(batched, looped, atol=2e-6, rtol=1e-4)


def test_batch_plan_is_seeded_per_client():
    idx = [np.arange(0, 50), np.arange(50, 120), np.arange(120, 130)]
    cfg = LocalTrainingConfig(batch_size=8, local_epochs=2)
    a = ClientBatchPlan.make(idx, cfg, seed=1, round=3, client_ids=[4, 7, 9])
    b = ClientBatchPlan.make(idx[1:], cfg, seed=1, round=3, client_ids=[7, 9])
    assert all(torch.equal(p, q) for p, q in zip(a.batches[1], b.batches[0]))  # same client, same batches
    c = ClientBatchPlan.make(idx, cfg, seed=1, round=4, client_ids=[4, 7, 9])
    assert not all(torch.equal(p, q) for p, q in zip(a.batches[0], c.batches[0]))  # a new round reshuffles
    for client, batches in zip(idx, a.batches):
        seen = torch.cat(batches).numpy()
        assert sorted(seen.tolist()) == sorted(np.concatenate([client, client]).tolist())  # every example, every epoch
        assert max(len(bt) for bt in batches) == 8


def test_label_attacks():
    y = torch.tensor([0, 1, 2, 3, 9])
    assert poison_labels(y, [parse_attack("label_flipping")], 10).tolist() == [9, 8, 7, 6, 0]
    assert poison_labels(y, [parse_attack("targeted_label_flipping(source=2, target=5)")], 10).tolist() == [0, 1, 5, 3, 9]
    with pytest.raises(ValueError, match=r"Expected targeted_label_flipping.target in 0..9, got 12"):
        poison_labels(y, [parse_attack("targeted_label_flipping(source=2, target=12)")], 10)
    assert poison_labels(y, [parse_attack("sign_flip")], 10).tolist() == y.tolist()  # update attacks are not data attacks


def test_model_registry():
    assert set(list_models()) == {"logreg", "mlp", "cnn28", "cnn32"}
    assert parse_model_id("mlp") == ("mlp", (128, 64))
    assert parse_model_id("MLP-256-128") == ("mlp", (256, 128))
    for model_id, shape in [("logreg", (20,)), ("mlp", (1, 8, 8)), ("cnn28", (1, 28, 28)), ("cnn32", (3, 32, 32))]:
        m = build_model(model_id, input_shape=shape, num_classes=7)
        assert m(torch.zeros(2, *shape)).shape == (2, 7)
    w1 = flatten_params(build_model("mlp", input_shape=(5,), num_classes=3, seed=1))
    w2 = flatten_params(build_model("mlp", input_shape=(5,), num_classes=3, seed=1))
    assert torch.equal(w1, w2)
    with pytest.raises(ValueError, match=r"Unknown model_id 'resnet'; expected one of: logreg, mlp, cnn28, cnn32"):
        build_model("resnet", input_shape=(5,), num_classes=3)
    with pytest.raises(ValueError, match=r"Expected inputs of shape \(1, 28, 28\) for model 'cnn28', got \(3, 32, 32\)"):
        build_model("cnn28", input_shape=(3, 32, 32), num_classes=10)
    with pytest.raises(ValueError, match=r"Expected hidden sizes only for mlp"):
        parse_model_id("cnn28-5")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0}, r"Expected lr > 0, got 0"),
        ({"batch_size": 0}, r"Expected batch_size an integer >= 1, got 0"),
        ({"momentum": 1.0}, r"Expected momentum in \[0, 1\), got 1.0"),
        ({"mu": -1}, r"Expected mu >= 0, got -1"),
    ],
)
def test_local_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocalTrainingConfig(**kwargs)
