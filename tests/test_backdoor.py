"""Backdoors (BadNets, DBA) and the success rate of targeted attacks, measured every round
(velocity/training/backdoor.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from velocity.data import load_federated
from velocity.server import FederatedServer
from velocity.specs import parse_attack
from velocity.training import LocalTrainingConfig
from velocity.training.backdoor import make_trigger, plant_backdoor, success_probe


def test_the_trigger_is_the_bottom_right_square_of_an_image_or_the_last_features() -> None:
    x = torch.rand(5, 1, 8, 8)
    trigger = make_trigger((1, 8, 8), 3, x)
    assert trigger.value == float(x.max())
    stamped = trigger.stamp(x)
    assert torch.equal(stamped[:, :, 5:, 5:], torch.full((5, 1, 3, 3), trigger.value))
    assert torch.equal(stamped[:, :, :5, :], x[:, :, :5, :]) and torch.equal(stamped[:, :, :, :5], x[:, :, :, :5])
    tabular = make_trigger((20,), 4, torch.zeros(3, 20))
    assert tabular.features.tolist() == [16, 17, 18, 19]
    # DBA: the trigger in parts, one per malicious client in turn
    assert [p.tolist() for p in tabular.parts(2)] == [[16, 17], [18, 19]]


@pytest.mark.parametrize(
    ("shape", "size", "said"),
    [
        ((1, 8, 8), 9, "Expected a backdoor trigger of at most 8 pixels for 8×8 images, got size = 9"),
        ((20,), 21, "Expected a backdoor trigger of at most 20 features, got size = 21"),
    ],
)
def test_a_trigger_larger_than_the_input_is_refused(shape: tuple[int, ...], size: int, said: str) -> None:
    with pytest.raises(ValueError) as e:
        make_trigger(shape, size, torch.zeros(1, *shape))
    assert str(e.value) == said


def test_only_a_share_of_the_malicious_clients_examples_carry_the_trigger_and_the_target_label() -> None:
    x, y = torch.zeros(40, 6), torch.arange(40) % 3
    clients = [np.arange(0, 10), np.arange(10, 20), np.arange(20, 30), np.arange(30, 40)]
    attack = parse_attack("backdoor(target=2, size=2, fraction=0.5)")
    trigger = make_trigger((6,), 2, torch.ones(1, 6))
    px, py = plant_backdoor(x, y, clients, [1, 3], attack, trigger, 3, seed=0)
    stamped = (px[:, 4:] == 1).all(1)
    assert stamped[10:20].sum() == 5 and stamped[30:40].sum() == 5 and stamped.sum() == 10  # half of each malicious client's
    assert (py[stamped] == 2).all() and torch.equal(py[~stamped], y[~stamped]) and torch.equal(px[:, :4], x[:, :4])
    with pytest.raises(ValueError, match=r"^Expected backdoor.target in 0..2 \(the data set has 3 classes\), got 5$"):
        plant_backdoor(x, y, clients, [1], parse_attack("backdoor(target=5)"), trigger, 3, seed=0)
    # distributed: each malicious client stamps its own part
    px, _ = plant_backdoor(x, y, clients, [1, 3], parse_attack("backdoor(size=2, distributed=true)"), trigger, 3, seed=0)
    assert (px[10:20, 4] == 1).any() and not (px[10:20, 5] == 1).any()
    assert (px[30:40, 5] == 1).any() and not (px[30:40, 4] == 1).any()


def test_the_success_probe_counts_what_the_attack_aims_at() -> None:
    x_test, y_test = torch.zeros(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    trigger = make_trigger((4,), 1, torch.ones(1, 4))
    probe = success_probe([parse_attack("backdoor(target=0, size=1)")], x_test, y_test, trigger)
    assert probe is not None and len(probe.x) == 4 and (probe.x[:, 3] == 1).all()  # not of the target class, triggered
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():  # predicts class 0 exactly when the trigger feature is on
        model.weight.zero_(), model.bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
        model.weight[0, 3] = 1.0
    assert probe.rate(model) == 1.0
    flip = success_probe([parse_attack("targeted_label_flipping(source=1, target=1)")], x_test, y_test, None)
    assert flip is not None and len(flip.x) == 2 and flip.rate(model) == 1.0  # the source class's examples, classified as 1
    assert success_probe([parse_attack("sign_flip")], x_test, y_test, None) is None


def test_a_backdoor_succeeds_against_fedavg_and_the_rate_is_recorded_every_round() -> None:
    """Digits, 10 clients, 3 malicious stamping half their examples: FedAvg learns the backdoor
    (measured: success 1.00 at accuracy 0.96 after 20 rounds); the bounds leave wide margins."""
    data = load_federated("digits", num_clients=10, seed=0)
    local = LocalTrainingConfig(lr=0.1, momentum=0.9)
    server = FederatedServer(data, model_id="mlp", attacks=["backdoor(target=0)"], malicious_fraction=0.3, local=local, seed=0)
    history = server.run(15)
    assert all(not math.isnan(r.attack_success) for r in history)
    assert history[-1].accuracy > 0.85 and history[-1].attack_success > 0.5
    clean = FederatedServer(data, model_id="mlp", local=local, seed=0).run(1)
    assert math.isnan(clean[0].attack_success)  # no targeted attack, nothing measured


@pytest.mark.parametrize(
    ("attack", "said"),
    [
        ("backdoor(target=10)", r"backdoor\.target in 0\.\.9 \(the data set has 10 classes\), got 10"),
        ("backdoor(size=9)", r"a backdoor trigger of at most 8 pixels for 8×8 images, got size = 9"),
        (
            "targeted_label_flipping(source=3, target=12)",
            r"targeted_label_flipping\.target in 0\.\.9 \(the data set has 10 classes\), got 12",
        ),
    ],
)
def test_a_targeted_attack_its_data_cannot_carry_is_refused_before_any_run(tmp_path, attack: str, said: str) -> None:
    """Refused when the sweep is made (or a run is added), naming the run, with nothing written:
    the runs used to start and each fail on its own."""
    from velocity import Sweep

    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=rf"^FedAvg \| {re.escape(attack)} \| α=iid \| seed=0 on digits: Expected {said}$"):
        Sweep.from_grid(attacks=["none", attack], dataset="digits", num_clients=5, rounds=1, out=out)
    assert not out.exists()
    sweep = Sweep.from_grid(attacks=["none"], dataset="digits", num_clients=5, rounds=1, out=out)
    with pytest.raises(ValueError, match=said):
        sweep.add(sweep.specs[0].model_copy(update={"attacks": (attack,), "malicious_fraction": 0.2}))
    assert len(sweep.specs) == 1
