"""Models, local training (batched == loop), data attacks and the server loop's bookkeeping."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

from velocity.attacks import parse_attack
from velocity.models import build_model, list_models, parse_model_id
from velocity.training import (
    ClientBatchPlan,
    LocalTrainingConfig,
    evaluate,
    flatten_params,
    poison_labels,
    train_clients_batched,
    train_clients_loop,
)


def toy_data(n=600, shape=(1, 8, 8), classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


CONFIGS = [
    LocalTrainingConfig(lr=0.1, batch_size=32),
    LocalTrainingConfig(lr=0.05, batch_size=16, local_epochs=2, momentum=0.9, weight_decay=1e-3, mu=0.1),
]


def _trainer_case(model_id: str, cfg: LocalTrainingConfig):
    shape = (1, 28, 28) if model_id == "cnn28" else (1, 8, 8)
    x, y = toy_data(n=300 if model_id == "cnn28" else 600, shape=shape)
    # uneven clients: the batched trainer must freeze clients whose own plan is done
    idx = np.array_split(np.arange(len(y)), 6)
    idx[2] = idx[2][:7]
    model = build_model(model_id, input_shape=shape, num_classes=10, seed=3)
    plan = ClientBatchPlan.make(idx, cfg, seed=5, round=1, client_ids=range(6))
    return model, x, y, plan


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("model_id", ["logreg", "mlp-32-16", "cnn28"])
def test_batched_training_matches_the_loop(cfg, model_id):
    """Same algorithm, same numbers: compared in float64, where the two paths' different
    reduction orders (vmap-ed vs single kernels, masked vs plain means) leave differences near
    float64's ε = 1.1e-16. With updates below 1, reductions over at most ~5·10⁴ terms (batch ×
    positions) and at most 14 steps, rounding can reach √(5·10⁴)·14·ε ≈ 4e-13; 1e-12 allows that
    and nothing else (a wrong mask, momentum or proximal term moves an update by ≥ lr·|g| ≈ 1e-4).
    Measured here: at most 1.4e-16, with AVX-512 and with AVX2 kernels."""
    model, x, y, plan = _trainer_case(model_id, cfg)
    model, x = model.double(), x.double()
    g = flatten_params(model)
    g_before = g.clone()
    looped = train_clients_loop(model, g, x, y, plan, cfg)
    batched = train_clients_batched(model, g, x, y, plan, cfg)
    assert looped.dtype == batched.dtype == torch.float64
    assert torch.equal(g, g_before), "training must not write into the global model"
    assert looped.abs().max() > 1e-4, "clients must actually move"
    torch.testing.assert_close(batched, looped, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("model_id", ["logreg", "mlp-32-16", "cnn28"])
def test_float32_training_stays_close_to_float64(cfg, model_id):
    """Both trainers in float32 (what runs use) against the float64 loop, per client as the
    relative error of the whole update row. The float64 test above checks that the two trainers
    compute the same thing; this one checks that float32 does not change the result. Rounding
    alone is small (ε = 6e-8, growing like √K over reductions of K ≲ 5·10⁴ terms: ≈ 1e-5 per
    step), but the loss is not smooth: a rounding difference can flip a max-pool or ReLU decision,
    which sends a gradient through another weight and moves it by up to lr·|g|. With oneDNN's
    AVX-512 convolutions this flips a few decisions in cnn28's second step, 7.7e-4 of that row's
    norm; 1e-2 allows about ten such flips, while a float32-only defect (a dtype cast, a mask in
    the wrong precision) moves rows by a sizeable share of their norm. Measured here: logreg and
    the MLP ≤ 2e-6 on every CPU; cnn28 2e-6 with AVX2 kernels, 7.7e-4 with AVX-512 ones."""
    model, x, y, plan = _trainer_case(model_id, cfg)
    g = flatten_params(model)
    reference = train_clients_loop(copy.deepcopy(model).double(), g.double(), x.double(), y, plan, cfg)
    for trainer in (train_clients_loop, train_clients_batched):
        got = trainer(model, g, x, y, plan, cfg)
        assert got.dtype == torch.float32
        error = (got.double() - reference).norm(dim=1) / reference.norm(dim=1)
        assert error.max() < 1e-2, (trainer.__name__, error.tolist())


def test_batched_training_skips_the_steps_of_clients_whose_plan_is_done():
    """Clients train in order of decreasing plan length, so step t only runs the clients still
    training: the gradient at a step sees exactly those clients (not padded ones), and the
    updates come back in the plan's order."""
    x, y = toy_data(n=200)
    sizes = [10, 70, 30, 70, 5]  # batch 16: 1, 5, 2, 5, 1 steps
    starts = np.cumsum([0, *sizes])
    idx = [np.arange(a, b) for a, b in itertools.pairwise(starts)]
    cfg = LocalTrainingConfig(lr=0.1, batch_size=16, local_epochs=1)
    model = build_model("logreg", input_shape=(1, 8, 8), num_classes=10, seed=0).double()
    plan = ClientBatchPlan.make(idx, cfg, seed=1, round=1, client_ids=range(5))
    seen: list[int] = []

    def counting_vmap(f):  # type: ignore[no-untyped-def]
        batched = torch.func.vmap(f)

        def call(p, xb, *rest):  # type: ignore[no-untyped-def]
            seen.append(xb.shape[0])  # the clients this step trains
            return batched(p, xb, *rest)

        return call

    import velocity.training.local as local_module

    g = flatten_params(model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(local_module, "vmap", counting_vmap)
        batched = train_clients_batched(model, g, x.double(), y, plan, cfg)
    assert seen == [5, 3, 2, 2, 2]  # 5 clients train step 0; 3 have a second step; 2 the last three
    torch.testing.assert_close(batched, train_clients_loop(model, g, x.double(), y, plan, cfg), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("model_id", "device", "expected"), [("logreg", "cpu", True), ("mlp", "cpu", True), ("cnn28", "cpu", False), ("cnn28", "cuda", True)]
)
def test_the_trainer_is_chosen_by_model_and_device(model_id: str, device: str, expected: bool) -> None:
    from velocity.training import prefers_batched

    model = build_model(model_id, input_shape=(1, 28, 28), num_classes=10, seed=0)
    assert prefers_batched(model, torch.device(device)) is expected


def _layer_normed(hidden: int) -> torch.nn.Module:
    """An MLP with a LayerNorm: ghost clipping does not serve it, so DP-SGD takes per-example gradients."""
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, 10))


@pytest.mark.parametrize(
    ("model", "device", "expected"),
    [("ln-8", "cpu", True), ("ln-128", "cpu", False), ("ln-128", "cuda", True), ("mlp", "cpu", True), ("cnn28", "cpu", False)],
)
def test_dp_sgd_trains_clients_one_by_one_on_the_cpu_when_their_per_example_gradients_are_large(
    model: str, device: str, expected: bool
) -> None:
    """100 clients × batch 32 of per-example gradients: the LayerNorm MLP with 8 hidden units has
    6,386 parameters (82 MB: batched is faster), with 128 units 102,026 (1.3 GB: one by one). The
    MLP clips by ghost clipping and holds none."""
    from velocity.training import prefers_batched

    built = (
        _layer_normed(int(model[3:])) if model.startswith("ln-") else build_model(model, input_shape=(1, 28, 28), num_classes=10, seed=0)
    )
    assert prefers_batched(built, torch.device(device), per_example_rows=100 * 32) is expected


def test_batch_plan_is_seeded_per_client():
    idx = [np.arange(0, 50), np.arange(50, 120), np.arange(120, 130)]
    cfg = LocalTrainingConfig(batch_size=8, local_epochs=2)
    a = ClientBatchPlan.make(idx, cfg, seed=1, round=3, client_ids=[4, 7, 9])
    b = ClientBatchPlan.make(idx[1:], cfg, seed=1, round=3, client_ids=[7, 9])
    assert all(torch.equal(p, q) for p, q in zip(a.batches[1], b.batches[0], strict=True))  # same client, same batches
    c = ClientBatchPlan.make(idx, cfg, seed=1, round=4, client_ids=[4, 7, 9])
    assert not all(torch.equal(p, q) for p, q in zip(a.batches[0], c.batches[0], strict=True))  # a new round reshuffles
    for client, batches in zip(idx, a.batches, strict=True):
        seen = torch.cat(batches).numpy()
        assert sorted(seen.tolist()) == sorted(np.concatenate([client, client]).tolist())  # every example, every epoch
        assert max(len(bt) for bt in batches) == 8


def test_label_attacks():
    y = torch.tensor([0, 1, 2, 3, 9])
    assert poison_labels(y, [parse_attack("label_flipping")], 10).tolist() == [9, 8, 7, 6, 0]
    assert poison_labels(y, [parse_attack("targeted_label_flipping(source=2, target=5)")], 10).tolist() == [0, 1, 5, 3, 9]
    with pytest.raises(ValueError, match=r"Expected targeted_label_flipping.target in 0..9 \(the data set has 10 classes\), got 12"):
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


@pytest.mark.parametrize("mode", [True, False])
def test_evaluation_restores_the_models_mode(mode):
    model = build_model("mlp-8", input_shape=(4,), num_classes=3, seed=0).train(mode)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    loss, accuracy = evaluate(model, x, y)
    assert model.training is mode
    assert loss > 0 and 0 <= accuracy <= 1
