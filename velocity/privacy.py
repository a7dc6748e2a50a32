"""Differential privacy: the two settings a run takes, and the privacy budget ε they spend.

- :class:`ClientDP` (``dp = {noise_multiplier, max_grad_norm, delta}``): DP-SGD in every client's
  local training (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016). Each
  example's gradient is clipped to ``max_grad_norm``, the clipped gradients of a Poisson-sampled
  batch are summed, Gaussian noise of standard deviation ``noise_multiplier · max_grad_norm`` is
  added and the sum is divided by the expected batch size. The guarantee is per example of a
  client's data: a client's ε(δ) grows with the local steps it has taken (sample rate q = 1 /
  ⌈examples / batch_size⌉, as Opacus's Poisson data loader).
- :class:`ServerDP` (``server_dp = {clip, noise_multiplier, delta}``): DP-FedAvg's server side
  (McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language Models",
  ICLR 2018), run by the core: every client's update clipped to norm ``clip``, each client counted
  once, and Gaussian noise of standard deviation ``noise_multiplier · clip / n`` added to the
  aggregate of the round's n updates. The guarantee is per client, for the mean: FedAvg or FedProx
  with no pre-aggregator (a server optimiser is post-processing). A robust rule or a
  pre-aggregator can move its output further than ``clip / n`` when one client changes, so the
  same noise gives it no stated ε (:func:`server_dp_holds`): runs record none.

ε is computed by Opacus's accountants (``accountant = "rdp"``, Rényi DP, Mironov et al. 2019, or
``"prv"``, Gopi et al. 2021), which analyse the subsampled Gaussian mechanism under Poisson
sampling. DP-SGD here samples its batches that way; the server samples a fixed number of
clients per round, for which the accountant's q = clients per round / clients is the usual
approximation (exact when every client takes part: q = 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from velocity.specs import MEAN_RULES

if TYPE_CHECKING:
    from velocity.specs import StrategySpec

Accountant = Literal["rdp", "prv"]


class ClientDP(BaseModel):
    """DP-SGD in local training; see the module's docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    noise_multiplier: float = Field(gt=0, allow_inf_nan=False, description="noise std / max_grad_norm (σ)")
    max_grad_norm: float = Field(gt=0, allow_inf_nan=False, description="each example's gradient is clipped to this norm")
    delta: float = Field(1e-5, gt=0, lt=1, description="the δ of the reported (ε, δ); below 1 / a client's examples")
    accountant: Accountant = Field("rdp", description="rdp (Rényi DP) or prv (privacy random variables), Opacus's")

    @property
    def label(self) -> str:
        return f"DP-SGD σ={self.noise_multiplier:g} C={self.max_grad_norm:g}"


class ServerDP(BaseModel):
    """DP-FedAvg's clipping and noise at the server; see the module's docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: float = Field(gt=0, allow_inf_nan=False, description="each client's update is clipped to this norm")
    noise_multiplier: float = Field(gt=0, allow_inf_nan=False, description="noise std on the sum / clip (z)")
    delta: float = Field(1e-5, gt=0, lt=1, description="the δ of the reported (ε, δ); below 1 / clients")
    accountant: Accountant = Field("rdp", description="rdp (Rényi DP) or prv (privacy random variables), Opacus's")

    @property
    def label(self) -> str:
        return f"server DP z={self.noise_multiplier:g} C={self.clip:g}"


def server_dp_holds(strategy: StrategySpec) -> bool:
    """Whether server DP's ε is a guarantee for ``strategy``: a mean of the clipped updates (FedAvg
    or FedProx, no pre-aggregator; a server optimiser only post-processes it)."""
    return not strategy.pre and strategy.rule.name in MEAN_RULES


def epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: Accountant = "rdp") -> float:
    """ε(δ) after ``steps`` compositions of the Gaussian mechanism with this noise multiplier,
    each on a Poisson sample of rate ``sample_rate``: the value Opacus's accountant gives after
    ``steps`` calls of its ``step``."""
    if steps == 0:
        return 0.0
    if accountant == "prv":
        return _prv_epsilon(noise_multiplier, sample_rate, steps, delta)
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import get_privacy_spent

    # Rényi DP composes by addition: the accountant's compute_rdp(q, σ, steps) is steps × one step's
    rdp = steps * _rdp_of_one_step(noise_multiplier, sample_rate)
    eps, _ = get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp, delta=delta)
    return float(eps)


@lru_cache(maxsize=1024)
def _rdp_of_one_step(noise_multiplier: float, sample_rate: float) -> Any:
    # ~30 ms for Opacus's 69 orders: once per client size, not once per round
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp

    return compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDPAccountant.DEFAULT_ALPHAS)


@lru_cache(maxsize=4096)
def _prv_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    import numpy as np
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    # its state: [(noise multiplier, sample rate, steps)], what `steps` calls of `step` build
    acc.load_state_dict({"history": [(noise_multiplier, sample_rate, steps)], "mechanism": acc.mechanism()})
    # at q = 1 its privacy random variable takes log(1 − q) = −inf, on a branch np.where discards
    with np.errstate(divide="ignore"):
        return float(acc.get_epsilon(delta))


class ClientLedger:
    """How many DP-SGD steps each client has taken, and its sample rate: every client's ε."""

    def __init__(self, dp: ClientDP) -> None:
        self.dp = dp
        self._steps: dict[int, int] = {}
        self._rate: dict[int, float] = {}

    def record(self, client_ids: Iterable[int], sample_rates: Iterable[float], steps: Iterable[int]) -> None:
        for cid, q, t in zip(client_ids, sample_rates, steps, strict=True):
            self._rate[cid] = q
            self._steps[cid] = self._steps.get(cid, 0) + t

    def epsilon(self, client: int) -> float:
        if client not in self._steps:
            return 0.0
        d = self.dp
        return epsilon(
            noise_multiplier=d.noise_multiplier,
            sample_rate=self._rate[client],
            steps=self._steps[client],
            delta=d.delta,
            accountant=d.accountant,
        )

    def worst(self) -> float:
        """The largest ε of any client so far: every example of the federation has at least
        this guarantee (0 before any step). ε grows with the sample rate and the steps, so only
        clients that no other client exceeds in both are asked."""
        pairs = {(self._rate[c], self._steps[c]) for c in self._steps}
        front = [(q, t) for q, t in pairs if not any(q2 >= q and t2 >= t and (q2, t2) != (q, t) for q2, t2 in pairs)]
        d = self.dp
        return max(
            (
                epsilon(noise_multiplier=d.noise_multiplier, sample_rate=q, steps=t, delta=d.delta, accountant=d.accountant)
                for q, t in front
            ),
            default=0.0,
        )
