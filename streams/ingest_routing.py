"""The ingest decision for one raw record: a valid event to window, or a dead-letter record with its reason."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from streams.dead_letter import SourcePosition, dead_letter_record
from streams.events import BehaviorEvent, InvalidRecordError, Limits, parse_event


@dataclass(frozen=True)
class Accepted:
    event: BehaviorEvent


@dataclass(frozen=True)
class Rejected:
    reason: str
    record: bytes


def route_event(
    value: bytes | None,
    key: bytes | None,
    source: SourcePosition,
    now_ms: int,
    *,
    limits: Limits,
    catalogue: Container[str] | None,
) -> Accepted | Rejected:
    """Validates a behaviour record; `catalogue` (when known) rejects events naming unknown items."""
    try:
        event = parse_event(value, now_ms, limits)
        if key != event.user_id.encode():
            raise InvalidRecordError("message key must be the event's user_id")
        if catalogue is not None and event.item_id is not None and event.item_id not in catalogue:
            raise InvalidRecordError(f"unknown item {event.item_id!r}")
    except InvalidRecordError as error:
        reason = str(error)
        return Rejected(reason, dead_letter_record(value, key, reason, source, now_ms))
    return Accepted(event)
