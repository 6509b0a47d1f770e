"""Per-user windows of events: what a window holds, when it is flushed, and its wire form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.events import STRONG_KINDS, BehaviorEvent


@dataclass(frozen=True)
class WindowedEvent:
    """A valid event with where it came from and when it arrived (wall clock, ms)."""

    event: BehaviorEvent
    source: str
    arrived_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.event.to_dict(), "source": self.source, "arrived_ms": self.arrived_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowedEvent:
        event = BehaviorEvent(
            event_id=data["event_id"], user_id=data["user_id"], kind=data["kind"], ts=data["ts"],
            item_id=data.get("item_id"), query=data.get("query"), value=data.get("value"),
        )
        return cls(event, data["source"], data["arrived_ms"])


@dataclass(frozen=True)
class WindowPolicy:
    """Flush when the window holds `max_events`, when its oldest event waited `max_wait_ms`, or on a strong event."""

    max_events: int = 5
    max_wait_ms: float = 300.0

    def is_due(self, window: list[WindowedEvent], now_ms: float) -> bool:
        if not window:
            return False
        return (
            len(window) >= self.max_events
            or window[-1].event.kind in STRONG_KINDS
            or now_ms - window[0].arrived_ms >= self.max_wait_ms
        )


@dataclass
class WindowBatch:
    """One ingest batch's view of users' windows: each window is loaded once, events are appended in order, and a
    due window is set aside for sending and replaced by an empty one. `changed` names the users whose stored window
    must be rewritten (or deleted, when it ends empty) once the batch's flushes are acked."""

    policy: WindowPolicy
    load: Callable[[str], list[WindowedEvent]]
    windows: dict[str, list[WindowedEvent]] = field(default_factory=dict)
    flushed: list[tuple[str, list[WindowedEvent]]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    def add(self, item: WindowedEvent) -> None:
        user_id = item.event.user_id
        self.window(user_id).append(item)
        self.changed.add(user_id)
        self.flush_if_due(user_id, item.arrived_ms)

    def flush_if_due(self, user_id: str, now_ms: float) -> None:
        window = self.window(user_id)
        if self.policy.is_due(window, now_ms):
            self.flushed.append((user_id, window))
            self.windows[user_id] = []
            self.changed.add(user_id)

    def window(self, user_id: str) -> list[WindowedEvent]:
        if user_id not in self.windows:
            self.windows[user_id] = self.load(user_id)
        return self.windows[user_id]


class PendingWindows:
    """Each input partition's open windows with the time each is due for its age-based flush (this worker's view).

    Ingest flushes a partition's due windows whenever a batch holds a message of that partition; the timer sends a
    tick only for a window still open `grace_ms` after it fell due (its partition was quiet). An entry is dropped
    only when ingest stored the window empty, never when a tick is sent: a tick is re-armed, so a flush that did
    not happen is asked for again."""

    def __init__(self) -> None:
        self._due: dict[int, dict[str, float]] = {}

    def opened(self, partition: int, user_id: str, due_ms: float) -> None:
        self._due.setdefault(partition, {})[user_id] = due_ms

    def closed(self, partition: int, user_id: str) -> None:
        self._due.get(partition, {}).pop(user_id, None)

    def due(self, partition: int, now_ms: float) -> list[str]:
        return [user_id for user_id, due in self._due.get(partition, {}).items() if due <= now_ms]

    def to_tick(self, now_ms: float, grace_ms: float, owned: set[int]) -> list[str]:
        """The windows still open `grace_ms` after they fell due, each re-armed to be asked again `grace_ms` later.
        Forgets the partitions this worker no longer owns (their new owner recovers their windows); an empty
        `owned` (no assignment yet, or a rebalance under way) forgets nothing."""
        for partition in set(self._due) - owned if owned else ():
            del self._due[partition]
        late = []
        for opened in self._due.values():
            for user_id, due in opened.items():
                if now_ms - due >= grace_ms:
                    late.append(user_id)
                    opened[user_id] = now_ms
        return late


def source_partition(window: list[WindowedEvent]) -> int:
    """The input partition a window's events came from (`topic:partition:offset` sources)."""
    return int(window[0].source.rsplit(":", 2)[1])


def encode_window(window: list[WindowedEvent]) -> bytes:
    return orjson.dumps([item.to_dict() for item in window])


def decode_window(raw: bytes | None) -> list[WindowedEvent]:
    if not raw:
        return []
    return [WindowedEvent.from_dict(data) for data in orjson.loads(raw)]
