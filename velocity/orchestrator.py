"""The round orchestrator: attacks, aggregation and the server step, with a recorded history."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from velocity import _core
from velocity.aggregation import as_count, as_indices, as_reference, as_update_matrix, as_weights
from velocity.specs import AttacksLike, AttackSpec, StrategyLike, StrategySpec, parse_attacks, parse_strategy

if TYPE_CHECKING:  # pydantic loads with the first run that asks for privacy: `import velocity` stays light
    from velocity.privacy import ServerDP


@dataclass(frozen=True, slots=True)
class AttackOutcome:
    name: str
    strength: float | None


@dataclass(frozen=True, slots=True)
class RoundSummary:
    """One aggregated round. ``global_loss``/``accuracy`` are NaN until the caller reports them.

    What the defence did: ``malicious_share`` is the malicious updates' share of the aggregate
    (``malicious_weight``, their share of the weights, when nothing is done; NaN for rules that
    cannot say); selection rules name the clients they kept (``selected``), with detection
    precision/recall of the ones they excluded; clipping says how many updates it clipped and at
    which radius. Per client, in the order of ``client_ids`` (the round's rows): its share of the
    aggregate (``client_shares``; None when the rule cannot say) and the norm of its update as
    aggregated, after the attacks (``update_norms``). ``None`` where a field does not apply to
    the rule."""

    round: int
    num_clients: int
    num_malicious: int
    malicious_clients: tuple[int, ...]
    client_ids: tuple[int, ...]
    client_shares: tuple[float, ...] | None
    update_norms: tuple[float, ...]
    global_loss: float
    accuracy: float
    attacks: tuple[AttackOutcome, ...]
    attack_distance: float
    honest_mean_norm: float
    aggregate_norm: float
    aggregate_finite: bool
    malicious_share: float
    malicious_weight: float
    selected: tuple[int, ...] | None
    selected_malicious: int | None
    detection_precision: float | None
    detection_recall: float | None
    clipped: int | None
    clip_radius: float | None
    attack_ms: float
    aggregate_ms: float
    server_ms: float
    kernel_ms: float
    #: with server-side DP, the standard deviation of the noise added to each coordinate
    server_noise_std: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundSummary:
        values = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for key in (
            "global_loss",
            "accuracy",
            "attack_distance",
            "honest_mean_norm",
            "aggregate_norm",
            "malicious_share",
            "malicious_weight",
        ):
            values[key] = math.nan if values[key] is None else float(values[key])
        for key in ("malicious_clients", "client_ids"):
            values[key] = tuple(values[key])
        values["update_norms"] = tuple(math.nan if v is None else float(v) for v in values["update_norms"])
        if values["client_shares"] is not None:
            values["client_shares"] = tuple(math.nan if v is None else float(v) for v in values["client_shares"])
        if values["selected"] is not None:
            values["selected"] = tuple(values["selected"])
        values["attacks"] = tuple(AttackOutcome(**a) for a in values["attacks"])
        return cls(**values)


class Orchestrator:
    """Runs federated rounds on update matrices: attack the malicious rows, aggregate, step the
    server optimiser, and record a :class:`RoundSummary` per round.

    Parameters
    ----------
    strategy
        Any strategy form (``"CenteredClipping(tau=1) + FedAvgM"``); stateful parts (centered
        clipping's centre, server-optimiser moments) persist across rounds.
    attacks
        Update attacks applied in order to the malicious clients' rows; data attacks are
        recorded here and executed by the trainer.
    num_clients
        Size of the federation; client ids are ``0 .. num_clients-1``.
    num_malicious
        How many clients are malicious, drawn from ``seed`` (or give ``malicious`` ids).
    seed
        Drives the choice of malicious clients and every random draw of every round.
    server_dp
        DP-FedAvg's server side (:class:`velocity.privacy.ServerDP`): every update clipped to
        ``clip`` before the strategy, each client counted once (``weights`` are not used), and
        Gaussian noise of standard deviation ``noise_multiplier · clip / n`` on the aggregate,
        from a random stream of its own.
    """

    def __init__(
        self,
        strategy: StrategyLike = "FedAvg",
        *,
        attacks: AttacksLike = None,
        num_clients: int,
        num_malicious: int = 0,
        malicious: Sequence[int] | None = None,
        seed: int = 0,
        server_dp: ServerDP | None = None,
    ) -> None:
        self.strategy: StrategySpec = parse_strategy(strategy)
        if server_dp is not None:
            from velocity.privacy import ServerDP

            if not isinstance(server_dp, ServerDP):
                raise TypeError(f"Expected server_dp as a velocity.privacy.ServerDP or None, got {server_dp!r}")
        self.server_dp = server_dp
        self.attacks: list[AttackSpec] = parse_attacks(attacks)
        if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
            raise ValueError(f"Expected num_clients as an integer >= 1, got {num_clients!r}")
        attacks_json = json.dumps([json.loads(a.to_json()) for a in self.attacks])
        self._inner = _core.Orchestrator(
            self.strategy.core,
            attacks_json,
            num_clients,
            num_malicious=as_count(num_malicious, "num_malicious", maximum=num_clients),
            malicious=as_indices(malicious, "malicious", num_clients) if malicious is not None else None,
            seed=as_count(seed, "seed"),
            server_dp=None if server_dp is None else (server_dp.clip, server_dp.noise_multiplier),
        )
        self.num_clients = num_clients

    @property
    def malicious_clients(self) -> list[int]:
        return list(self._inner.malicious_clients)

    @property
    def data_attacks(self) -> list[AttackSpec]:
        """The data attacks the trainer must apply to the malicious clients' data."""
        return [a for a in self.attacks if a.is_data_attack]

    @property
    def global_model(self) -> np.ndarray | None:
        return self._inner.global_model()

    @global_model.setter
    def global_model(self, value: npt.ArrayLike) -> None:
        arr = np.ascontiguousarray(value, dtype=np.float32).ravel()
        self._inner.set_global_model(arr)

    def step(
        self,
        updates: npt.ArrayLike,
        *,
        weights: npt.ArrayLike | None = None,
        client_ids: Sequence[int] | None = None,
        server_update: npt.ArrayLike | None = None,
    ) -> RoundSummary:
        """Run one round on the sampled clients' updates (``n × d``, rows in ``client_ids`` order).
        ``server_update``: the server's own update on its root data, for FLTrust."""
        x = as_update_matrix(updates)
        w = as_weights(weights, x.shape[0])
        ids = as_indices(client_ids, "client ids", self.num_clients) if client_ids is not None else None
        g0 = None if server_update is None else as_reference(server_update, x.shape[1])
        return RoundSummary.from_dict(json.loads(self._inner.step(x, weights=w, client_ids=ids, server_update=g0)))

    def report_metrics(self, loss: float, accuracy: float | None = None, *, round: int | None = None) -> None:
        """Record the loss (and accuracy, a fraction in [0, 1]; NaN: not measured) the caller
        measured after ``round`` (default: the latest)."""
        self._inner.report_metrics(
            float(loss), None if accuracy is None else float(accuracy), None if round is None else as_count(round, "round")
        )

    @property
    def history(self) -> list[RoundSummary]:
        return [RoundSummary.from_dict(d) for d in json.loads(self._inner.history_json())]

    def history_json(self) -> str:
        return self._inner.history_json()

    def __repr__(self) -> str:
        attacks = ", ".join(map(str, self.attacks)) or "none"
        return (
            f"Orchestrator(strategy={self.strategy}, attacks=[{attacks}], num_clients={self.num_clients}, rounds={self._inner.num_rounds})"
        )
