"""What one applied event teaches the shared signals, as a record that every worker folds in the same order.

A worker that applies an event to its user's state does not change the shared signals (popularity, co-visitation,
transitions, the sequence model, the prior and context map) itself: it emits a `SharedIncrement`, and every
worker, itself included, folds the increments of all workers in one order (`OnlineModel.fold`). Items are named
by id, not catalogue row, since rows depend on the order a worker's catalogue arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from weighting.fusion_learning import Weights
from weighting.user_state import event_fingerprint


def increment_fingerprint(user_id: str, event_id: str) -> int:
    """A 64-bit hash of the user id and event id: an event id needs to be unique only among its user's events, so
    two users' events of the same id are two increments.

    >>> increment_fingerprint("u1", "7") != increment_fingerprint("u2", "7")
    True
    >>> increment_fingerprint("u1", "17") != increment_fingerprint("u11", "7")
    True
    """
    return event_fingerprint(f"{len(user_id)}:{user_id}{event_id}")


@dataclass(frozen=True)
class JudgedContext:
    """A feedback event's part: the context it was judged in (added to the context moments) and, when its item
    was among the candidates, the gradient that steps the prior and the context map."""

    context: Weights
    standardised: Weights
    gradient: Weights | None


@dataclass(frozen=True)
class SharedIncrement:
    """One event on an item, applied for the first time to its user's state."""

    fingerprint: int
    """The event's fingerprint (`increment_fingerprint`): an increment folded twice counts once."""
    item_id: str
    ts: int
    amount: float
    """The consumption's strength (≤ 0: it counts in no count and teaches the sequence model nothing)."""
    previous: tuple[str, ...]
    """The user's recent consumptions before it, oldest first."""
    judged: JudgedContext | None = None

    def to_json(self) -> bytes:
        record: dict[str, Any] = {"fp": self.fingerprint, "item": self.item_id, "ts": self.ts,
                                  "amount": self.amount, "previous": self.previous}
        if self.judged is not None:
            judged = self.judged
            record["context"] = judged.context.tolist()
            record["standardised"] = judged.standardised.tolist()
            record["gradient"] = None if judged.gradient is None else judged.gradient.tolist()
        return orjson.dumps(record)

    @classmethod
    def from_json(cls, raw: bytes) -> SharedIncrement:
        """The inverse of `to_json`, float64 values exact; raises on a malformed record."""
        record = orjson.loads(raw)
        judged = None
        if "context" in record:
            gradient = record["gradient"]
            judged = JudgedContext(np.array(record["context"], dtype=np.float64),
                                   np.array(record["standardised"], dtype=np.float64),
                                   None if gradient is None else np.array(gradient, dtype=np.float64))
        return cls(int(record["fp"]), str(record["item"]), int(record["ts"]), float(record["amount"]),
                   tuple(map(str, record["previous"])), judged)
