"""The contract a sweep worker drives, whatever the topology: rounds run one at a time and
recorded as :class:`~velocity.rounds.RoundRecord`.

:class:`velocity.server.FederatedServer` (a server and its clients) and
:class:`velocity.runs.DecentralisedRun` (MoNNA or gossip averaging) both implement
:class:`Trainer`, so sweeps, files and comparisons treat them alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from torch import nn

from velocity.rounds import RoundRecord

__all__ = ["RoundRecord", "Trainer"]


class Trainer(ABC):
    """Runs rounds and keeps their records in ``history``; ``initial_loss`` and
    ``initial_accuracy`` are measured before the first round."""

    history: list[RoundRecord]
    initial_loss: float
    initial_accuracy: float

    @property
    @abstractmethod
    def model(self) -> nn.Module:
        """The model a run's checkpoint saves (the global model, or an honest worker's)."""

    @abstractmethod
    def run_round(self) -> RoundRecord:
        """Run one more round, append its record to ``history`` and return it."""

    def run(self, rounds: int, *, on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        """Run ``rounds`` more rounds and return their records (``history`` holds every round so
        far); ``on_round`` is called with each record as its round finishes."""
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
            raise ValueError(f"Expected rounds as an integer >= 0, got {rounds!r}")
        records = []
        for _ in range(rounds):
            record = self.run_round()
            if on_round is not None:
                on_round(record)
            records.append(record)
        return records
