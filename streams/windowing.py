"""Per-user windows of events: what a window holds, when it is flushed, and its wire form."""

from __future__ import annotations

from dataclasses import dataclass
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


def encode_window(window: list[WindowedEvent]) -> bytes:
    return orjson.dumps([item.to_dict() for item in window])


def decode_window(raw: bytes | None) -> list[WindowedEvent]:
    if not raw:
        return []
    return [WindowedEvent.from_dict(data) for data in orjson.loads(raw)]
