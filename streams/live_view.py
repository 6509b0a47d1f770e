"""What the worker's web view shows: each served user's latest recommendations and weights over time.

Bounded in memory (the most recently active users, a fixed number of weight points each); a worker knows the
users whose partitions of the encoded-windows topic it owns.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class UserView:
    """One user's latest recommendation (wire format) and the recent history of their weights."""

    latest: dict[str, Any]
    weights: deque[tuple[int, dict[str, float]]] = field(default_factory=deque)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.latest["user_id"],
            "latest": self.latest,
            "weights_over_time": [{"ts": ts, "weights": weights} for ts, weights in self.weights],
        }


class LiveView:
    """Latest recommendations of up to `max_users` users, with up to `history` weight points each."""

    def __init__(self, max_users: int = 1_000, history: int = 200) -> None:
        self.max_users = max_users
        self.history = history
        self.users: OrderedDict[str, UserView] = OrderedDict()

    def record(self, recommendation: dict[str, Any]) -> None:
        """Keeps a recommendation (as written to the topic); one older (in event time) than the latest is ignored."""
        user_id = recommendation["user_id"]
        view = self.users.get(user_id)
        if view is None:
            view = self.users[user_id] = UserView(recommendation, deque(maxlen=self.history))
        elif view.latest["ts"] > recommendation["ts"]:
            return
        view.latest = recommendation
        view.weights.append((recommendation["ts"], recommendation["weights"]))
        self.users.move_to_end(user_id)
        while len(self.users) > self.max_users:
            self.users.popitem(last=False)

    def user(self, user_id: str) -> dict[str, Any] | None:
        view = self.users.get(user_id)
        return view.to_dict() if view else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The `limit` most recently updated users, newest first."""
        newest = list(reversed(self.users.values()))[:limit]
        return [view.to_dict() for view in newest]
