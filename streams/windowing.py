"""Per-user windows of events: what a window holds, when it is flushed, and its wire form."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from streams.dead_letter import SourcePosition
from streams.events import STRONG_KINDS, BehaviorEvent


@dataclass(frozen=True)
class WindowedEvent:
    """A valid event with where it came from and when it arrived (wall clock, ms)."""

    event: BehaviorEvent
    source: str
    arrived_ms: float

    @classmethod
    def read_at(cls, event: BehaviorEvent, position: SourcePosition, arrived_ms: float) -> WindowedEvent:
        return cls(event, f"{position.topic}:{position.partition}:{position.offset}", arrived_ms)

    @property
    def position(self) -> SourcePosition:
        """Where the event was read (`source` is `topic:partition:offset`)."""
        topic, partition, offset = self.source.rsplit(":", 2)
        return SourcePosition(topic, int(partition), int(offset))

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


def encode_window(window: list[WindowedEvent]) -> bytes:
    return orjson.dumps([item.to_dict() for item in window])


def decode_window(raw: bytes | None) -> list[WindowedEvent]:
    if not raw:
        return []
    return [WindowedEvent.from_dict(data) for data in orjson.loads(raw)]


Float16 = npt.NDArray[np.float16]


@dataclass(frozen=True, eq=False)
class EncodedWindow:
    """A flushed window with the vector of each of its searches' queries, as the weigh step takes it. The vectors
    are rounded to float16, the precision the encoded topic carries, so a window weighs the same whether its worker
    encoded it or the encoder pool did; `to_bytes` and `from_bytes` are its encoded-topic form."""

    user_id: str
    events: list[WindowedEvent]
    queries: dict[str, Float16]

    @classmethod
    def of(cls, user_id: str, events: list[WindowedEvent],
           queries: dict[str, npt.NDArray[np.float32]]) -> EncodedWindow:
        return cls(user_id, events, {event_id: vector.astype(np.float16) for event_id, vector in queries.items()})

    def query_vector(self, event_id: str) -> npt.NDArray[np.float32] | None:
        vector = self.queries.get(event_id)
        return None if vector is None else vector.astype(np.float32)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"events": [item.to_dict() for item in self.events],
                             "queries": {event_id: base64.b64encode(vector.tobytes()).decode()
                                         for event_id, vector in self.queries.items()}})

    @classmethod
    def from_bytes(cls, raw: bytes) -> EncodedWindow:
        """The window of an encoded-topic record; raises (KeyError, ValueError, ...) when it is not one."""
        payload = orjson.loads(raw)
        events = [WindowedEvent.from_dict(data) for data in payload["events"]]
        queries = {event_id: np.frombuffer(base64.b64decode(text), dtype=np.float16)
                   for event_id, text in payload["queries"].items()}
        return cls(events[0].event.user_id, events, queries)


class PendingWindows:
    """Open windows per input partition, oldest first, to find those due for their age-based flush.

    Ingest flushes a partition's due windows whenever it handles a message of that partition (so the flush runs in
    that partition's context, in stream order); only a window whose partition has gone quiet needs a tick message.
    """

    def __init__(self) -> None:
        self._opened: dict[int, dict[str, float]] = {}
        self._last_message_ms: dict[int, float] = {}

    def opened(self, partition: int, user_id: str, first_arrived_ms: float) -> None:
        """Arms a window's age-based flush; a window already armed keeps its first arrival. A window armed again
        (its flush failed, or a tick found it) may be older than the newest: the partition's order is restored."""
        opened = self._opened.setdefault(partition, {})
        if user_id in opened:
            return
        newest = opened[next(reversed(opened))] if opened else first_arrived_ms
        opened[user_id] = first_arrived_ms
        if first_arrived_ms < newest:
            self._opened[partition] = dict(sorted(opened.items(), key=lambda entry: entry[1]))

    def closed(self, partition: int, user_id: str) -> None:
        self._opened.get(partition, {}).pop(user_id, None)

    def first_arrived(self, partition: int, user_id: str) -> float | None:
        return self._opened.get(partition, {}).get(user_id)

    def take_due(self, partition: int, now_ms: float, max_wait_ms: float) -> list[str]:
        """Removes and returns the users whose window on `partition` waited `max_wait_ms` or more, oldest first;
        notes the partition as active at `now_ms`."""
        self._last_message_ms[partition] = now_ms
        return [user_id for user_id, _ in self._take(self._opened.get(partition, {}), now_ms, max_wait_ms)]

    def take_quiet_due(self, now_ms: float, max_wait_ms: float, quiet_ms: float) -> list[tuple[int, str, float]]:
        """Removes and returns the due windows of partitions with no message for `quiet_ms` (they need a tick), each
        as (partition, user, first arrival): what `opened` needs to arm it again if its tick is not delivered."""
        return [(partition, user_id, first) for partition, opened in self._opened.items()
                if now_ms - self._last_message_ms.get(partition, 0.0) >= quiet_ms
                for user_id, first in self._take(opened, now_ms, max_wait_ms)]

    @staticmethod
    def _take(opened: dict[str, float], now_ms: float, max_wait_ms: float) -> list[tuple[str, float]]:
        """Removes and returns the (user, first arrival) of the windows due, oldest first."""
        due = []
        for user_id, first in opened.items():
            if now_ms - first < max_wait_ms:
                break
            due.append((user_id, first))
        for user_id, _ in due:
            del opened[user_id]
        return due


def source_partition(window: list[WindowedEvent]) -> int:
    """The input partition a window's events came from."""
    return window[0].position.partition


class WindowBatch:
    """The windows one batch of ingest touches: each user's loaded once (`load`), changed in memory, and taken off
    to be flushed when due; the caller stores what `changed` names once the flushes are acked."""

    def __init__(self, policy: WindowPolicy, load: Callable[[str], list[WindowedEvent]]) -> None:
        self.policy = policy
        self._load = load
        self.windows: dict[str, list[WindowedEvent]] = {}
        self.flushed: list[tuple[str, list[WindowedEvent]]] = []
        self.changed: set[str] = set()

    def window(self, user_id: str) -> list[WindowedEvent]:
        if user_id not in self.windows:
            self.windows[user_id] = self._load(user_id)
        return self.windows[user_id]

    def add(self, item: WindowedEvent) -> None:
        """Appends an event to its user's window, flushed at once when that makes it due."""
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

    def keep_unsent(self, unsent: list[tuple[str, list[WindowedEvent]]]) -> None:
        """Flushes the broker did not ack: their events go back in front of their users' open windows, in order."""
        for user_id, window in reversed(unsent):
            self.windows[user_id] = window + self.windows[user_id]
