"""Hermetic convergence proofs: a real model, trained on real clients' data, aggregated by the
Rust core and measured on a held-out test set — clean and under attack.

Each test says what was measured (seed 0). The same numbers came out with AVX-512 and with AVX2
kernels (``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``): these MLPs run no convolution,
and a rounding difference between CPUs, were there one, moves a run's accuracy by a few
borderline test examples. So every threshold sits at least 10 test examples (digits: 360 test
examples, 0.028; blobs: 200, 0.05) from what was measured, far from chance (0.10 / 0.25) and from
the failures the attack tests expect. The whole file runs in well under a minute.
"""

from __future__ import annotations

import itertools
import math

import pytest

from velocity.data import load_federated
from velocity.server import FederatedServer
from velocity.training import LocalTrainingConfig

FAST_SGD = LocalTrainingConfig(lr=0.1, batch_size=32, local_epochs=1, momentum=0.9)


def test_blobs_non_iid_four_clients_converges():
    # Each client holds mostly one class (Dirichlet α = 0.1 over 4 classes).
    data = load_federated(
        "blobs(classes=4, dim=10, per_class=250, spread=1.0)",
        num_clients=4,
        partition="dirichlet",
        alpha=0.1,
        min_partition_size=20,
        seed=0,
    )
    dominant = (data.label_counts.max(axis=1) / data.label_counts.sum(axis=1)).mean()
    assert dominant > 0.6, "the partition should be skewed"
    server = FederatedServer(data, model_id="mlp-32", strategy="FedAvg", local=LocalTrainingConfig(lr=0.05, batch_size=32), seed=0)
    history = server.run(8)
    losses = [server.initial_loss] + [r.global_loss for r in history]
    assert losses[-1] < losses[0] / 2
    for prev, cur in itertools.pairwise(losses):
        assert cur <= prev * 1.25, f"a round got more than 25% worse: {losses}"
    assert history[-1].accuracy >= 0.80  # measured 0.865 (chance 0.25)
    assert history[-1].accuracy > history[0].accuracy


def test_digits_dirichlet_reaches_85_percent():
    data = load_federated("digits", num_clients=10, partition="dirichlet", alpha=0.5, seed=0)
    server = FederatedServer(data, model_id="mlp", strategy="FedAvg", local=FAST_SGD, seed=0)
    history = server.run(15)
    assert history[-1].accuracy >= 0.85, [round(r.accuracy, 3) for r in history]  # measured 0.911
    assert all(r.train_ms > 0 and r.aggregate_ms > 0 and r.eval_ms > 0 for r in history)


@pytest.fixture(scope="module")
def digits_iid():
    return load_federated("digits", num_clients=10, partition="iid", seed=0)


def final_accuracy(data, strategy, attack, fraction=0.2, rounds=15):
    server = FederatedServer(
        data, model_id="mlp", strategy=strategy, attacks=attack, malicious_fraction=fraction if attack else 0.0, local=FAST_SGD, seed=0
    )
    return server.run(rounds)[-1].accuracy


ROBUST = ["FedMedian", "TrimmedMean", "CenteredClipping(tau=0.1, iters=3)"]


@pytest.mark.parametrize(
    ("attack", "fraction", "fedavg_drop", "robust_slack"),
    [("sign_flip(scale=4.0)", 0.2, 0.5, 0.08), ("ipm(epsilon=10.0)", 0.2, 0.5, 0.08), ("label_flipping", 0.4, 0.15, 0.12)],
)
def test_fedavg_fails_and_robust_rules_survive(digits_iid, attack, fraction, fedavg_drop, robust_slack):
    """10 clients, iid digits, 15 rounds, seed 0. Measured: clean ≈ 0.89 for every rule. With 2
    malicious clients FedAvg falls to 0.10 under sign flip (×4) and under IPM (ε = 10) while
    FedMedian, TrimmedMean and centered clipping keep 0.85–0.87. Label flipping is a weaker,
    data-side attack: at 20% it costs FedAvg only 0.02, so it is tested at 40% (4 of 10), where
    FedAvg falls to 0.66 and the robust rules keep 0.80–0.85."""
    clean = {s: final_accuracy(digits_iid, s, None) for s in ["FedAvg", *ROBUST]}
    fedavg = final_accuracy(digits_iid, "FedAvg", attack, fraction)
    assert fedavg < clean["FedAvg"] - fedavg_drop, (attack, fedavg, clean["FedAvg"])
    for rule in ROBUST:
        attacked = final_accuracy(digits_iid, rule, attack, fraction)
        assert attacked > clean[rule] - robust_slack, (rule, attack, attacked, clean[rule])
        assert attacked > fedavg, (rule, attack, attacked, fedavg)


def test_alie_slips_under_the_mean_but_does_not_break_robust_rules(digits_iid):
    """ALIE (Baruch et al. 2019) is built to stay inside the honest spread: with the paper's z
    (n=10, f=2 → z = Φ⁻¹(0.6) ≈ 0.25) it barely moves any rule, FedAvg included (measured: every
    rule within 0.01 of clean). With a large z (5) it is no longer hidden: FedAvg loses accuracy
    (measured 0.89 → 0.85) while the median keeps its clean 0.89."""
    for rule in ["FedAvg", *ROBUST]:
        assert final_accuracy(digits_iid, rule, "alie") > final_accuracy(digits_iid, rule, None) - 0.05
    strong_fedavg = final_accuracy(digits_iid, "FedAvg", "alie(z=5.0)")
    strong_median = final_accuracy(digits_iid, "FedMedian", "alie(z=5.0)")
    assert strong_median > strong_fedavg


def test_nan_attack_poisons_fedavg_and_not_the_median(digits_iid):
    server = FederatedServer(digits_iid, model_id="mlp", strategy="FedAvg", attacks="nan", malicious_fraction=0.2, local=FAST_SGD, seed=0)
    record = server.run_round()
    assert math.isnan(record.global_loss)  # measured, not a crash
    robust = FederatedServer(
        digits_iid, model_id="mlp", strategy="FedMedian", attacks="nan", malicious_fraction=0.2, local=FAST_SGD, seed=0
    )
    assert robust.run(5)[-1].accuracy > 0.5
