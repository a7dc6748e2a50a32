"""The validated description of one run: ``RunSpec``.

TOML files, CLI flags and Python grids all end as a list of ``RunSpec`` objects; everything
downstream (the pool, the files, the comparison) reads only that list. Names and parameters are
checked against the Rust registry when the spec is built, so a typo fails before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from velocity import extend
from velocity.decentralised.setup import mixer_name
from velocity.decentralised.setup import validate as validate_decentralised
from velocity.models import parse_model_id
from velocity.privacy import ClientDP, ServerDP
from velocity.specs import attack_items, parse_attack, parse_attacks, parse_strategy, to_json_value
from velocity.training.config import LocalTrainingConfig
from velocity.training.device import device_name

Partition = Literal["iid", "shard", "dirichlet", "pathological", "quantity", "natural"]
SizeDistribution = Literal["power_law", "exponential"]
#: Keys that only one partition reads, left out of the identity of runs with another (so a
#: run's identity, and the spec_hash its folder resumes by, never changes when one is added).
_PARTITION_ONLY_KEYS = {"size_distribution": ("quantity",), "size_skew": ("quantity",), "partition_by": ("natural", "dirichlet")}
#: The share of malicious clients a run with attacks gets when it does not say (TOML, flags and
#: Python alike); a run without attacks gets 0.
DEFAULT_MALICIOUS_FRACTION = 0.2
Topology = Literal["federated", "decentralised"]
_LOCAL = LocalTrainingConfig()  # the local training defaults, defined once


def _as_value_error(fn: Any, value: Any) -> Any:
    """pydantic attaches the key name only to ValueErrors; the core raises TypeError for values
    of the wrong type, so convert them."""
    try:
        return fn(value)
    except TypeError as e:
        raise ValueError(str(e)) from None


class RunSpec(BaseModel):
    """One federated run: data and partition, model, local training, strategy, attacks, seed.

    Key names are the same in TOML, Python and the CLI. Unknown keys are errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    name: str | None = Field(None, description="run name; derived from strategy/attack/α/seed when omitted")
    dataset: str = Field("digits", description="built-in set (blobs, digits, synthetic-mnist), local path or hub name")
    model_id: str = Field("mlp", description="logreg, mlp[-h1-h2...], cnn28, cnn32")
    partition: Partition = Field(
        "iid",
        description="iid, dirichlet (set by alpha), shard, pathological, quantity (skewed client sizes; label skew too with alpha) "
        "or natural (by the partition_by column)",
    )
    alpha: float | None = Field(None, gt=0, description="Dirichlet concentration; inf is iid")
    shards_per_client: int | None = Field(None, ge=1, description="label-sorted shards per client (shard partition)")
    classes_per_client: int | None = Field(None, ge=1, description="classes per client (pathological partition)")
    min_partition_size: int = Field(
        10, ge=0, description="Dirichlet draws are redone until every client has this many examples (quantity: the smallest client allowed)"
    )
    size_distribution: SizeDistribution = Field(
        "power_law", description="quantity partition: client k's share ∝ (k+1)^-size_skew (power_law) or e^(-size_skew·k) (exponential)"
    )
    size_skew: float = Field(1.0, ge=0, allow_inf_nan=False, description="quantity partition: how fast client sizes fall off (0: equal)")
    partition_by: str | None = Field(
        None,
        min_length=1,
        description="natural partition: the column whose values stay together (synthetic-mnist has 'writer'); dirichlet: the attribute skewed instead of the label",
    )
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share held out as the test set (when the source has no test split)")
    num_clients: int = Field(10, ge=1, description="size of the federation")
    min_clients: int | None = Field(None, ge=1, description="clients trained per round (all when omitted)")
    rounds: int = Field(10, ge=1, description="federated rounds (decentralised: steps of every worker)")
    local_epochs: int = Field(_LOCAL.local_epochs, ge=1, description="local epochs per round")
    lr: float = Field(_LOCAL.lr, gt=0, description="local learning rate")
    batch_size: int = Field(_LOCAL.batch_size, ge=1, description="local minibatch size")
    momentum: float = Field(_LOCAL.momentum, ge=0, lt=1, description="local SGD momentum (reset every round)")
    weight_decay: float = Field(_LOCAL.weight_decay, ge=0, description="local SGD weight decay")
    client_momentum: float = Field(0.0, ge=0, lt=1, description="worker momentum across rounds (MoNNA's β when decentralised)")
    malicious_fraction: float = Field(
        0.0, ge=0, le=1, description=f"share of malicious clients (default {DEFAULT_MALICIOUS_FRACTION} with attacks, 0 without)"
    )
    strategy: str = Field(
        "FedAvg",
        description='"Krum(f=2)", "NNM(f=2) + Krum(f=2)", or a table; decentralised runs also take "nearest_neighbour" (MoNNA)',
    )
    attacks: tuple[str, ...] = Field((), description="attacks, each text or a table with `type`")
    topology: Topology = Field("federated", description="federated (a server) or decentralised (MoNNA / gossip)")
    seed: int = Field(0, ge=0, description="drives the partition, model, malicious clients and batches")
    storage: str | None = Field(None, description="URI for the final checkpoint, e.g. local://checkpoints")
    batched: bool | None = Field(
        None,
        description="train the sampled clients together with torch.func (true) or one by one (false); "
        "by default the faster for the model and device; not part of the run's identity",
    )
    dp: ClientDP | None = Field(
        None,
        description="DP-SGD in local training: {noise_multiplier, max_grad_norm, delta = 1e-5, accountant = 'rdp'}; ε per example",
    )
    server_dp: ServerDP | None = Field(
        None,
        description="DP-FedAvg at the server: {clip, noise_multiplier, delta = 1e-5, accountant = 'rdp'}; ε per client, for the mean",
    )
    device: str = Field(
        "auto",
        description="where models, data and client training run: auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps; "
        "not part of the run's identity",
    )

    @field_validator("strategy", mode="before")
    @classmethod
    def _canonical_strategy(cls, value: Any) -> str:
        mixer = mixer_name(value)  # a decentralised mixer ("MoNNA", "gossip"): its registry name
        if mixer is not None:
            return mixer
        python = extend.get(value, "rule")
        if python is not None:
            return python.name
        return str(_as_value_error(parse_strategy, value))

    @field_validator("attacks", mode="before")
    @classmethod
    def _canonical_attacks(cls, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)) else list(value)
        # Python attacks (velocity.extend) keep their name; the rest go through the core's parser.
        out: list[str] = []
        for item in items:
            python = extend.get(item, "update_attack")
            if python is not None:
                out.append(python.name)
            else:
                out.extend(str(a) for a in _as_value_error(parse_attacks, item))
        return tuple(out)

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        return device_name(value)  # its form only: whether this machine has it is checked before running

    @field_validator("model_id")
    @classmethod
    def _known_model(cls, value: str) -> str:
        _as_value_error(parse_model_id, value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _implied_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # `alpha` alone (as from --alphas) means a Dirichlet partition.
        if data.get("alpha") is not None and "partition" not in data:
            data = {**data, "partition": "dirichlet"}
        # A run with attacks and no malicious share gets the default share.
        if data.get("malicious_fraction") is None:
            try:
                attacked = bool(attack_items(data.get("attacks")))
            except TypeError:
                attacked = False  # not attacks at all: the field's own check says so
            data = {**data, "malicious_fraction": DEFAULT_MALICIOUS_FRACTION if attacked else 0.0}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        if self.partition == "dirichlet" and self.alpha is None:
            raise ValueError("Expected alpha for the dirichlet partition, got none")
        if self.partition == "shard" and self.shards_per_client is None:
            raise ValueError("Expected shards_per_client for the shard partition, got none")
        if self.partition == "pathological" and self.classes_per_client is None:
            raise ValueError("Expected classes_per_client for the pathological partition, got none")
        if self.partition == "natural" and self.partition_by is None:
            raise ValueError("Expected partition_by (the column whose values stay together) for the natural partition, got none")
        if self.partition_by is not None and self.partition not in ("natural", "dirichlet"):
            raise ValueError(f"Expected partition_by with the natural or dirichlet partition, got it with {self.partition!r}")
        if self.min_clients is not None and self.min_clients > self.num_clients:
            raise ValueError(f"Expected min_clients <= num_clients = {self.num_clients}, got {self.min_clients}")
        if self.attacks and self.malicious_fraction == 0:
            raise ValueError(f"Expected malicious_fraction > 0 with attacks {list(self.attacks)}, got 0: no client would attack")
        if self.topology == "decentralised":
            if self.dp is not None or self.server_dp is not None:
                raise ValueError(
                    "Expected topology 'federated' with dp or server_dp (decentralised runs train without them), got 'decentralised'"
                )
            self._check_decentralised()
        else:
            if mixer_name(self.strategy) is not None:
                raise ValueError(
                    f"Expected topology 'decentralised' for strategy '{self.strategy}' (a decentralised mixer), got 'federated'"
                )
            self._check_strategy_fits()
            python_rule = extend.get(self.strategy, "rule")
            if self.server_dp is not None and python_rule is not None:
                raise ValueError(
                    f"Expected a built-in strategy with server_dp (the core clips the updates and adds the noise), "
                    f"got the Python rule {python_rule.name!r}, which aggregates outside the core"
                )
        return self

    @field_serializer("alpha", when_used="json")
    def _alpha_json(self, value: float | None) -> Any:
        # α = inf (iid) is written "inf", as every file writes infinity (config.json, worker messages)
        return to_json_value(value)

    @property
    def num_malicious(self) -> int:
        return round(self.malicious_fraction * self.num_clients)

    @property
    def num_data_holders(self) -> int:
        """Clients that hold a share of the data: all of them in a federation; in a
        decentralised run the n − f honest workers (the Byzantine ones hold none)."""
        return self.num_clients - self.num_malicious if self.topology == "decentralised" else self.num_clients

    def _check_decentralised(self) -> None:
        """MoNNA's conditions, checked by the same function MonnaSimulation uses."""
        try:
            validate_decentralised(n=self.num_clients, f=self.num_malicious, attacks=list(self.attacks), aggregator=self.strategy)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{e} (num_clients = {self.num_clients}, malicious_fraction = {self.malicious_fraction})") from None

    def _check_strategy_fits(self) -> None:
        """Dry-run the strategy on an n × 1 matrix with the round's n and the worst-case f, so an
        impossible combination (Krum with n ≤ 2f + 2, trimming everything) fails before any run."""
        n = self.min_clients or self.num_clients
        f = min(n, self.num_malicious)
        problem = self._dry_run(n, f)
        if problem:
            given = f"num_clients = {self.num_clients}, " + (f"min_clients = {self.min_clients}, " if self.min_clients else "")
            raise ValueError(
                f"{self.strategy} cannot aggregate {n} clients per round with up to {f} malicious "
                f"({given}malicious_fraction = {self.malicious_fraction}): {problem}"
            )

    def _dry_run(self, n: int, f: int) -> str | None:
        """The core's complaint when the strategy aggregates an n × 1 matrix with this f, if any."""
        import numpy as np

        from velocity.aggregation import aggregate

        zeros = np.zeros((n, 1), np.float32)
        try:
            python_rule = extend.get(self.strategy, "rule")
            if python_rule is not None:
                extend.run_rule(python_rule, zeros, f=f, weights=np.ones(n))
            else:
                aggregate(zeros, self.strategy, f=f, reference=zeros[0])  # (FLTrust's server update: the run trains it)
        except (ValueError, TypeError) as e:
            return str(e)
        return None

    def clean_twin(self) -> RunSpec:
        """This run's clean baseline: the same settings, seed included, with no attack and no
        malicious clients. The comparison matches twins without the seed (``config_key``), the
        panel with it (``spec_hash``)."""
        return self.model_copy(update={"attacks": (), "malicious_fraction": 0.0, "name": None})

    @property
    def targeted(self) -> bool:
        """Whether a targeted attack runs (its success rate is measured each round)."""
        return any(extend.get(a) is None and parse_attack(a).is_targeted for a in self.attacks)

    @property
    def attack_label(self) -> str:
        return " + ".join(self.attacks) if self.attacks else "none"

    @property
    def partition_args(self) -> dict[str, Any]:
        """The arguments of ``velocity.data.load_federated`` (and ``partition_label_counts``) that
        this run's partition and test split take, besides the data set and the client count."""
        return {
            "partition": self.partition,
            "alpha": self.alpha,
            "shards_per_client": self.shards_per_client,
            "classes_per_client": self.classes_per_client,
            "min_partition_size": self.min_partition_size,
            "size_distribution": self.size_distribution,
            "size_skew": self.size_skew,
            "partition_by": self.partition_by,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
        }

    @property
    def label_skewed(self) -> bool:
        """Whether the clients' label mixes are drawn from a Dirichlet (a finite α)."""
        return self.alpha is not None and not math.isinf(self.alpha) and self.partition in ("dirichlet", "quantity")

    @property
    def alpha_label(self) -> str:
        """The heterogeneity level as the verdict groups it: "0.5", "inf", "iid", "shard"…; a
        quantity skew is named as such, with its α when the labels are skewed too."""
        if self.partition == "quantity":
            return f"quantity, α={self.alpha:g}" if self.label_skewed else "quantity"
        if self.partition == "natural":
            return f"natural by {self.partition_by}"
        if self.partition != "dirichlet" or self.alpha is None:
            return self.partition
        over = f" over {self.partition_by}" if self.partition_by else ""
        return "inf" if math.isinf(self.alpha) else f"{self.alpha:g}{over}"

    @property
    def partition_label(self) -> str:
        """The partition as a reader names it: "α=0.5" for a Dirichlet draw, "quantity
        (power-law 1.5), α=0.5" for a quantity skew, else "iid", "shard"…"""
        if self.partition == "quantity":
            sizes = f"quantity ({self.size_distribution.replace('_', '-')} {self.size_skew:g})"
            return f"{sizes}, α={self.alpha:g}" if self.label_skewed else sizes
        if self.partition == "natural":
            return self.alpha_label
        return f"α={self.alpha_label}" if self.partition == "dirichlet" else self.partition

    @property
    def privacy_label(self) -> str:
        """The run's differential privacy, "DP-SGD σ=1 C=1", "server DP z=1 C=0.5", both, or ""."""
        return ", ".join(p.label for p in (self.dp, self.server_dp) if p is not None)

    @property
    def strategy_label(self) -> str:
        """The strategy as comparisons name a row: with the run's privacy, when it has any, so
        that FedAvg with and without DP are two rows."""
        return f"{self.strategy} [{self.privacy_label}]" if self.privacy_label else self.strategy

    @property
    def label(self) -> str:
        """The run's name, or one derived from what distinguishes it."""
        if self.name:
            return self.name
        if self.partition in ("quantity", "natural"):
            return f"{self.strategy_label} | {self.attack_label} | {self.partition_label} | seed={self.seed}"
        return f"{self.strategy_label} | {self.attack_label} | α={self.alpha_label} | seed={self.seed}"

    @property
    def config_key(self) -> str:
        """Identifies the configuration without the seed: repeated seeds share it."""
        return json.dumps(self._identity(exclude={"seed"}), sort_keys=True)

    @property
    def spec_hash(self) -> str:
        """Hash of everything that defines the run: not its name, storage URI, device or trainer
        (these change the numbers by rounding at most)."""
        return hashlib.sha256(json.dumps(self._identity(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def python_components(self) -> list[str]:
        """The names of the Python rules and attacks (velocity.extend) this run uses."""
        return [name for name in (self.strategy, *self.attacks) if extend.get(name) is not None]

    def _identity(self, exclude: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        # where and how a run trains is not what it is: the same run on a GPU, or with its clients
        # trained one by one, resumes and repeats the run on the CPU with batched clients
        data = self.model_dump(mode="json", exclude={"name", "storage", "device", "batched", *exclude})
        for key, partitions in _PARTITION_ONLY_KEYS.items():
            if self.partition not in partitions or data[key] is None:
                del data[key]
        for key in ("dp", "server_dp"):  # keys added later: a run without them keeps its identity
            if data[key] is None:
                del data[key]
        if self.python_components:  # a changed Python rule is a different run
            data["python_source"] = {n: extend.get(n).source_hash for n in self.python_components}  # type: ignore[union-attr]
        return data


def check_runnable(specs: Iterable[RunSpec]) -> None:
    """Refuse, before any run starts, a device this machine does not have and a targeted attack
    its data set cannot carry (a class the data set does not have, a trigger larger than its
    inputs): one ``ValueError`` naming the run. Each data set a targeted run uses is read once
    (and stays cached for the runs)."""
    specs = list(specs)
    from velocity.training.device import resolve_device

    for spec in specs:
        try:
            resolve_device(spec.device)
        except ValueError as e:
            raise ValueError(f"{spec.label}: {e}") from None
    for spec in specs:
        if spec.partition in ("quantity", "natural"):  # a client too small, a column missing: known now
            from velocity.data import partition_label_counts

            try:
                partition_label_counts(spec.dataset, num_clients=spec.num_data_holders, **spec.partition_args)
            except ValueError as e:
                raise ValueError(f"{spec.label} on {spec.dataset}: {e}") from None
    targeted = [s for s in specs if s.targeted]
    if not targeted:
        return
    from velocity.data import input_shape, num_classes
    from velocity.training.backdoor import check_targets

    for spec in targeted:
        try:
            classes = num_classes(spec.dataset, test_fraction=spec.test_fraction)
            shape = input_shape(spec.dataset, test_fraction=spec.test_fraction)
            check_targets([parse_attack(a) for a in spec.attacks if extend.get(a) is None], classes, shape)
        except ValueError as e:
            raise ValueError(f"{spec.label} on {spec.dataset}: {e}") from None
