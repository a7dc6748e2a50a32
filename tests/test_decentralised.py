"""Decentralised learning: MoNNA (momentum + nearest-neighbour averaging) and gossip averaging.

Reference: Farhadkhani, Guerraoui, Gupta, Hoang, Pinot, Stephan, "Robust Collaborative Learning
with Linear Gradient Overhead", ICML 2023.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from velocity.decentralised import MonnaSimulation, MonnaStep, nearest_neighbour_mix


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny per-worker ops run far faster on one thread (and do not fight other processes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def linear_1d(weight: float = 0.0, bias: float | None = None) -> nn.Linear:
    m = nn.Linear(1, 1, bias=bias is not None)
    with torch.no_grad():
        m.weight.fill_(weight)
        if bias is not None:
            m.bias.fill_(bias)
    return m


def toy_workers(k: int, size: int = 40, dim: int = 3, classes: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, dim, generator=g), torch.randint(0, classes, (size,), generator=g)) for _ in range(k)]


# ---------------------------------------------------------------------------- hand-computed


def test_nearest_neighbour_mix_hand_case():
    # Honest models 0, 10, 20 and one Byzantine model 100 (n = 4, f = 1, reach "all"): each worker
    # receives n − f = 3 models (its own, one honest peer, the Byzantine one) and averages the
    # n − 2f = 2 closest to its own: 0 → (0+10)/2, 10 → (10+20)/2, 20 → (20+10)/2.
    models = np.array([[0.0], [10.0], [20.0], [100.0]], np.float32)
    received = [[0, 1, 3], [1, 2, 3], [2, 1, 3]]
    np.testing.assert_array_equal(nearest_neighbour_mix(models, received, keep=2), [[5.0], [15.0], [15.0]])
    # keeping all three is plain averaging, which lets the Byzantine model in
    np.testing.assert_allclose(nearest_neighbour_mix(models, received, keep=3)[:, 0], [110 / 3, 130 / 3, 130 / 3], rtol=1e-6)


@pytest.mark.parametrize("aggregator", ["nearest_neighbour", "average"])
def test_simulation_mixes_0_10_20_and_byzantine_100_by_hand(aggregator):
    """The same case end to end. w = 0, MSE on one example (x = 1, y = y_i): g = 2(w − y_i) = −2y_i;
    β = 0, lr = 1 → post-step models 2y_i = 0, 10, 20. The Byzantine row starts at the honest
    mean 10 and scaling(factor=10) makes it 100. Which honest peer a worker hears is random, so
    the expected mix is tabulated per (worker, peer)."""
    nna = {(0, 1): 5.0, (0, 2): 10.0, (1, 0): 5.0, (1, 2): 15.0, (2, 0): 10.0, (2, 1): 15.0}
    data = [(torch.ones(1, 1), torch.tensor([[y]])) for y in (0.0, 5.0, 10.0)]
    seen = {}
    for seed in range(40):
        sim = MonnaSimulation(
            model=linear_1d(0.0),
            data=data,
            loss_fn=F.mse_loss,
            n=4,
            f=1,
            learning_rate=1.0,
            beta=0.0,
            batch_size=None,
            attack="scaling",
            attack_kwargs={"factor": 10.0},
            aggregator=aggregator,
            seed=seed,
        )
        (s,) = sim.run(1)
        assert s.step == 1
        assert s.post_step_models[:, 0].tolist() == [0.0, 10.0, 20.0]
        assert s.byzantine_models[:, 0].tolist() == [100.0]
        peers = s.received[:, 1].tolist()
        assert s.received[:, 0].tolist() == [0, 1, 2] and s.received[:, 2].tolist() == [3, 3, 3]
        for w, p in enumerate(peers):
            own = 10.0 * w
            expected = nna[(w, p)] if aggregator == "nearest_neighbour" else (own + 10.0 * p + 100.0) / 3
            assert s.mixed_models[w, 0].item() == pytest.approx(expected, rel=1e-6)
        seen[tuple(peers)] = s.mixed_models[:, 0].tolist()
    assert len({(w, p) for peers in seen for w, p in enumerate(peers)}) == 6, "every (worker, peer) pair drawn"
    if aggregator == "nearest_neighbour":  # the case: peers 1, 2, 1 (drawn by seeds 1, 3, 8, ...)
        assert seen[(1, 2, 1)] == [5.0, 15.0, 15.0]


def test_beta_zero_step_of_a_linear_model_with_mse_by_hand():
    """y = w·x + b, w = 0.5, b = 0, lr = 0.1, β = 0, full batch, n = 2, f = 0.
    Worker 0: x = (1, 2), y = (3, 5): residuals (−2.5, −4); loss (6.25 + 16)/2 = 11.125;
    ∂w = 2·mean(r·x) = −10.5, ∂b = 2·mean(r) = −6.5 → w = 1.55, b = 0.65.
    Worker 1: x = (0, 1), y = (1, 1): residuals (−1, −0.5); loss 0.625;
    ∂w = −0.5, ∂b = −1.5 → w = 0.55, b = 0.15.
    Mixing with f = 0 averages both (n − 2f = 2): w = 1.05, b = 0.4."""
    data = [
        (torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [5.0]])),
        (torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [1.0]])),
    ]
    sim = MonnaSimulation(model=linear_1d(0.5, 0.0), data=data, loss_fn=F.mse_loss, n=2, f=0, learning_rate=0.1, beta=0.0, batch_size=None)
    (s,) = sim.run(1)

    def close(a, b):
        torch.testing.assert_close(a, torch.tensor(b), rtol=1e-6, atol=1e-6)

    close(s.losses, [11.125, 0.625])
    close(s.gradients, [[-10.5, -6.5], [-0.5, -1.5]])
    close(s.momentum, [[-10.5, -6.5], [-0.5, -1.5]])
    close(s.post_step_models, [[1.55, 0.65], [0.55, 0.15]])
    close(s.mixed_models, [[1.05, 0.4], [1.05, 0.4]])
    assert s.byzantine_models.shape == (0, 2) and s.attack is None
    close(sim.models, [[1.05, 0.4], [1.05, 0.4]])
    assert sim.worker_model(1).weight.item() == pytest.approx(1.05)


def test_momentum_formula_exactly_for_beta_one_half():
    sim = MonnaSimulation(
        model=nn.Linear(3, 2),
        data=toy_workers(6),
        n=8,
        f=2,
        learning_rate=0.3,
        beta=0.5,
        batch_size=5,
        attack="alie",
        seed=4,
    )
    theta = sim.models
    m = torch.zeros_like(theta)
    for s in sim.run(4):
        m = 0.5 * m + 0.5 * s.gradients
        torch.testing.assert_close(s.momentum, m, rtol=0, atol=0)
        torch.testing.assert_close(s.post_step_models, theta - 0.3 * m, rtol=0, atol=0)
        theta = s.mixed_models
    torch.testing.assert_close(sim.momentum, m, rtol=0, atol=0)


def test_batched_gradients_match_a_loop_over_workers():
    data = toy_workers(5, size=12)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    sim = MonnaSimulation(model=model, data=data, n=7, f=2, learning_rate=0.1, batch_size=None, attack="sign_flip", seed=1)
    s1, s2 = sim.run(2)
    for w, (x, y) in enumerate(data):
        net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        torch.nn.utils.vector_to_parameters(s1.mixed_models[w].clone(), net.parameters())
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        g = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        torch.testing.assert_close(s2.gradients[w], g, rtol=1e-5, atol=1e-6)
        assert s2.losses[w].item() == pytest.approx(loss.item(), rel=1e-5)


# ---------------------------------------------------------------------------- received sets


@pytest.mark.parametrize("reach", ["all", "sampled"])
def test_received_sets(reach):
    n, f = 10, 3
    sim = MonnaSimulation(
        model=nn.Linear(3, 2),
        data=toy_workers(n - f),
        n=n,
        f=f,
        learning_rate=0.1,
        attack="ipm",
        byzantine_reach=reach,
        batch_size=4,
        seed=2,
    )
    counts = []
    for s in sim.run(30):
        r = s.received
        assert r.shape == (n - f, n - f)
        assert r[:, 0].tolist() == list(range(n - f)), "each worker's own model comes first"
        for w, row in enumerate(r.tolist()):
            assert len(set(row)) == n - f and all(0 <= v < n for v in row) and w not in row[1:]
            if reach == "all":
                assert set(range(n - f, n)) <= set(row), "every Byzantine model reaches every honest worker"
        counts += s.byzantine_received.tolist()
        assert s.byzantine_models.shape == (f, sim.dim)
    if reach == "all":
        assert set(counts) == {f}
    else:
        assert min(counts) >= 0 and max(counts) <= f
        assert set(counts) != {f}, "sampled reach must sometimes miss a Byzantine model"
        assert len(set(counts)) > 1


# ---------------------------------------------------------------------------- behaviour


def test_run_returns_steps_from_one_and_is_reproducible():
    kw = {
        "model": nn.Linear(3, 2),
        "data": toy_workers(5),
        "n": 7,
        "f": 2,
        "learning_rate": 0.2,
        "attack": "gaussian_noise",
        "byzantine_reach": "sampled",
        "batch_size": 6,
    }
    a = MonnaSimulation(**kw, seed=9)
    assert a.run(0) == []
    steps = a.run(3) + a.run(2)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5] and all(isinstance(s, MonnaStep) for s in steps)
    b = MonnaSimulation(**kw, seed=9).run(5)
    for s, t in zip(steps, b, strict=True):
        assert torch.equal(s.mixed_models, t.mixed_models) and torch.equal(s.received, t.received)
    # results are copies: editing one does not touch the simulation
    before = a.models
    steps[-1].mixed_models.add_(1.0)
    steps[-1].momentum.add_(1.0)
    assert torch.equal(a.models, before)


def test_registered_aggregation_rules_mix_each_received_set():
    data = toy_workers(7)
    sim = MonnaSimulation(
        model=nn.Linear(3, 2),
        data=data,
        n=10,
        f=3,
        learning_rate=0.1,
        attack="sign_flip",
        aggregator="TrimmedMean",
        aggregator_kwargs={"f": 3},
        seed=0,
    )
    (s,) = sim.run(1)
    models = torch.cat([s.post_step_models, s.byzantine_models]).numpy()
    for w, row in enumerate(s.received.numpy()):
        x = np.sort(models[row], axis=0)[3:-3]
        np.testing.assert_allclose(s.mixed_models[w].numpy(), x.mean(axis=0), rtol=1e-6, atol=1e-7)
    assert sim.aggregator == "TrimmedMean(f=3)"


def test_monna_keeps_learning_under_sign_flip_while_averaging_collapses():
    """digits (iid over the 11 honest workers), mlp-32, n = 16, f = 5, reach "all", sign flipping
    (each Byzantine worker sends −mean of the honest post-step models), lr 0.5, β = 0.99 (the
    paper's), minibatches of 32, 300 rounds, every worker starting from the same model.

    Measured (test accuracy over the honest workers, seeds 0–3): MoNNA 0.939–0.961 (seed 0:
    0.939–0.947); gossip averaging 0.097–0.103 (chance: each round pulls every model to
    about a tenth of the honest mean, and the ReLU network cannot recover); the same 11 workers
    with no Byzantine ones and plain averaging 0.947 (MoNNA without attack: 0.947 too). Thresholds
    leave wide slack. About 4–5 s on one CPU thread (most of it MoNNA's run, which warms torch.func).
    """
    from velocity.data import load_federated
    from velocity.models import build_model

    fd = load_federated("digits", num_clients=11, partition="iid", seed=0)

    def accuracy(**kw):
        model = build_model("mlp-32", input_shape=fd.input_shape, num_classes=10, seed=0)
        sim = MonnaSimulation(model=model, data=fd, learning_rate=0.5, beta=0.99, batch_size=32, seed=0, **kw)
        steps = sim.run(300)
        assert all(torch.isfinite(s.losses).all() for s in steps[:5])
        return sim.evaluate(fd.x_test, fd.y_test)[1]

    monna = accuracy(n=16, f=5, attack="sign_flip")
    averaging = accuracy(n=16, f=5, attack="sign_flip", aggregator="average")
    clean = accuracy(n=11, f=0, aggregator="average")
    assert monna.min() >= 0.85, monna
    assert averaging.max() <= 0.30, averaging
    assert clean.min() >= 0.85, clean


NEW_DEFENCES = ["Meamed", "MDA", "SMEA", "CAF", "DnC", "SignGuard", "ClippedClustering", "FoolsGold", "FLAME"]


@pytest.mark.parametrize("rule", NEW_DEFENCES)
def test_the_filtering_clustering_and_similarity_defences_keep_monna_learning_under_sign_flip(rule):
    """Each rule on every worker's received set (the models themselves: the sign-flipped models
    point away from the honest ones), the setting of the test above with 120 rounds.

    Measured (seed 0, mean test accuracy of the honest workers): MDA, SMEA, DnC and
    ClippedClustering 0.907, CAF 0.901, Meamed 0.890, FoolsGold 0.874, FLAME 0.841, SignGuard
    0.708; gossip averaging 0.100. The bound sits far from chance (0.1) and below every rule.
    A rule that keeps state across rounds starts afresh on each received set here (see
    MonnaSimulation's docstring)."""
    from velocity.data import load_federated
    from velocity.models import build_model

    fd = load_federated("digits", num_clients=11, partition="iid", seed=0)
    model = build_model("mlp-32", input_shape=fd.input_shape, num_classes=10, seed=0)
    sim = MonnaSimulation(
        model=model, data=fd, n=16, f=5, learning_rate=0.5, beta=0.99, batch_size=32, seed=0, attack="sign_flip", aggregator=rule
    )
    sim.run(120)
    accuracy = sim.evaluate(fd.x_test, fd.y_test)[1]
    assert accuracy.min() >= 0.5, (rule, accuracy)


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("change", "exc", "message"),
    [
        ({"f": -1}, ValueError, r"Expected an integer >= 0 for f, got -1"),
        ({"n": 6, "f": 3}, ValueError, r"Expected n − f > f \(an honest majority\) for a decentralised run, got n = 6, f = 3"),
        ({"beta": 1.0}, ValueError, r"Expected a value in \[0, 1\) for beta, got 1.0"),
        ({"beta": -0.1}, ValueError, r"Expected a value in \[0, 1\) for beta, got -0.1"),
        ({"learning_rate": 0.0}, ValueError, r"Expected a value > 0 for learning_rate, got 0.0"),
        ({"attack": None}, ValueError, r"Expected an attack for the f = 2 Byzantine workers"),
        ({"byzantine_reach": "some"}, ValueError, r"Expected 'all' or 'sampled' for byzantine_reach, got 'some'"),
        ({"attack": "label_flipping"}, ValueError, r"Expected an update attack .* got the data attack 'label_flipping'"),
        ({"attack": "sign_flipp"}, ValueError, r"sign_flipp"),
        ({"aggregator": "Krum"}, ValueError, r"Krum"),  # Krum needs n > 2f + 2 on the 5 received models
        ({"aggregator": "FedAvg + FedAdam"}, ValueError, r"Expected an aggregator without a server optimiser"),
        ({"aggregator": "nearest_neighbour", "aggregator_kwargs": {"k": 1}}, ValueError, r"Expected no aggregator_kwargs"),
        ({"data": toy_workers(4)}, ValueError, r"Expected data for the n − f = 5 honest workers, got 4"),
        ({"batch_size": 50}, ValueError, r"Expected batch_size <= the smallest local data set \(40 examples\), got 50"),
        ({"n": 7.0}, TypeError, r"Expected an integer for n"),
        ({"model": "mlp"}, TypeError, r"Expected model as a torch.nn.Module"),
    ],
)
def test_bad_arguments_are_errors(change, exc, message):
    kw = {"model": nn.Linear(3, 2), "data": toy_workers(5), "n": 7, "f": 2, "learning_rate": 0.1, "attack": "sign_flip"}
    kw.update(change)
    with pytest.raises(exc, match=message):
        MonnaSimulation(**kw)


def test_run_rejects_negative_rounds():
    sim = MonnaSimulation(model=nn.Linear(3, 2), data=toy_workers(5), n=5, f=0, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"Expected an integer >= 0 for rounds, got -1"):
        sim.run(-1)
    with pytest.raises(TypeError, match=r"Expected an integer number of rounds"):
        sim.run(2.5)
    assert sim.step_count == 0


def test_kernel_errors_cross_as_value_errors():
    with pytest.raises(ValueError, match=r"Expected row indices below n = 2 for received set 0, got 5"):
        nearest_neighbour_mix(np.zeros((2, 3), np.float32), [[0, 5]], keep=1)
    with pytest.raises(ValueError, match=r"Expected 1 <= keep <= 2"):
        nearest_neighbour_mix(np.zeros((2, 3), np.float32), [[0, 1]], keep=3)


@pytest.mark.parametrize("reach", ["all", "sampled"])
@pytest.mark.parametrize("aggregator", ["nearest_neighbour", "average", "nna", "gossip"])
def test_f_zero_needs_no_attack_and_mixes_everyone(reach, aggregator):
    # f = 0: every worker hears all n − 1 others and keeps all n models, whatever the rule
    sim = MonnaSimulation(
        model=nn.Linear(3, 2), data=toy_workers(4), n=4, f=0, learning_rate=0.1, byzantine_reach=reach, aggregator=aggregator
    )
    (s,) = sim.run(1)
    assert s.received.shape == (4, 4) and s.byzantine_models.shape == (0, sim.dim) and s.attack is None
    torch.testing.assert_close(s.mixed_models, s.post_step_models.mean(0, keepdim=True).expand(4, -1))
