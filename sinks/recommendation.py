"""A user's top-k list with per-item factor contributions and reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecommendedItem:
    item_id: str
    score: float
    contributions: dict[str, float]
    reason: str


@dataclass(frozen=True)
class UserRecommendation:
    user_id: str
    ts: int
    trigger_event_id: str
    weights: dict[str, float]
    items: tuple[RecommendedItem, ...]
    context: dict[str, float] = field(default_factory=dict)
    """The context the weights were computed from (`weighting.context`), by name."""
    latency_ms: float = 0.0
    experiment: str = ""
    arm: str = ""
    """The serving experiment and the user's arm in it (empty without an experiment)."""

    @property
    def list_id(self) -> str:
        """Names this list: an impression of it carries this id (the same for a list emitted twice)."""
        return f"{self.user_id}/{self.trigger_event_id}"

    def to_dict(self) -> dict[str, Any]:
        """The wire form of the Recommendation record."""
        return {
            "user_id": self.user_id,
            "ts": self.ts,
            "trigger_event_id": self.trigger_event_id,
            "weights": self.weights,
            "context": self.context,
            "items": [
                {"item_id": i.item_id, "score": i.score, "contributions": i.contributions, "reason": i.reason}
                for i in self.items
            ],
            "latency_ms": self.latency_ms,
            "list_id": self.list_id,
            "experiment": self.experiment,
            "arm": self.arm,
        }
