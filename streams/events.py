"""The wire records (BehaviorEvent, Item) and their validation: bytes in, a record or a one-line reason out."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import orjson

from weighting.user_update import ProfileEvent

EVENT_KINDS = frozenset({"view", "click", "cart", "purchase", "rating", "search", "skip", "impression"})
EXPOSURE_KINDS = frozenset({"impression"})
"""Kinds that say what the user was shown, not what they did: counted by the attribution stage, not learned from."""
STRONG_KINDS = frozenset({"purchase", "search"})


class InvalidRecordError(ValueError):
    """A record that cannot be processed; the message is the dead-letter reason."""


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int = 65_536
    max_text_chars: int = 2_000
    max_future_ms: int = 86_400_000
    max_age_ms: int = 50 * 365 * 86_400_000
    max_impression_items: int = 200


@dataclass(frozen=True)
class BehaviorEvent:
    event_id: str
    user_id: str
    kind: str
    ts: int
    item_id: str | None = None
    query: str | None = None
    value: float | None = None
    list_id: str | None = None
    item_ids: tuple[str, ...] = ()
    """An impression's list (the Recommendation's `list_id`) and the items displayed, in their positions."""

    def no_later_than(self, arrived_ms: int) -> BehaviorEvent:
        """The event stamped no later than it arrived: a producer's clock running ahead (validation allows up to
        `Limits.max_future_ms`) would otherwise hold its user's profiles undecayed until that time came.

        >>> BehaviorEvent("e", "u", "view", 5_000, "i").no_later_than(4_000).ts
        4000
        """
        return self if self.ts <= arrived_ms else replace(self, ts=arrived_ms)

    def profile_event(self) -> ProfileEvent:
        """The part of the event the weighting stage learns from."""
        return ProfileEvent(self.event_id, self.kind, self.ts, self.item_id, self.value)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event_id": self.event_id, "user_id": self.user_id, "kind": self.kind, "ts": self.ts}
        for name in ("item_id", "query", "value", "list_id"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.item_ids:
            data["item_ids"] = list(self.item_ids)
        return data


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    ts: int
    text: str | None = None
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"item_id": self.item_id, "title": self.title, "ts": self.ts}
        if self.text is not None:
            data["text"] = self.text
        if self.tags:
            data["tags"] = list(self.tags)
        return data


def _load_object(raw: bytes | None, limits: Limits) -> dict[str, Any]:
    if raw is None:
        raise InvalidRecordError("tombstone (null value)")
    if len(raw) > limits.max_payload_bytes:
        raise InvalidRecordError(f"payload of {len(raw)} bytes exceeds the limit of {limits.max_payload_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRecordError(f"malformed JSON: {str(error).splitlines()[0][:120]}") from None
    if not isinstance(data, dict):
        raise InvalidRecordError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _text(data: dict[str, Any], name: str, limits: Limits, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidRecordError(f"missing required field '{name}'")
        return None
    if not isinstance(value, str):
        raise InvalidRecordError(f"field '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidRecordError(f"field '{name}' is empty")
    if len(value) > limits.max_text_chars:
        limit = limits.max_text_chars
        raise InvalidRecordError(f"field '{name}' has {len(value)} characters, over the limit of {limit}")
    return value


def _timestamp(data: dict[str, Any], now_ms: int, limits: Limits) -> int:
    ts = data.get("ts")
    if ts is None:
        raise InvalidRecordError("missing required field 'ts'")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise InvalidRecordError(f"field 'ts' must be an integer (ms since epoch), got {type(ts).__name__}")
    if ts > now_ms + limits.max_future_ms:
        raise InvalidRecordError(f"timestamp {ts} is too far in the future")
    if ts < now_ms - limits.max_age_ms:
        raise InvalidRecordError(f"timestamp {ts} is too far in the past")
    return ts


def parse_event(raw: bytes | None, now_ms: int, limits: Limits | None = None) -> BehaviorEvent:
    """Validates one BehaviorEvent payload; raises InvalidRecordError with the reason."""
    limits = limits or Limits()
    data = _load_object(raw, limits)
    kind = _text(data, "kind", limits, required=True)
    if kind not in EVENT_KINDS:
        raise InvalidRecordError(f"unknown event kind {kind!r}")
    value = data.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRecordError(f"field 'value' must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidRecordError("field 'value' is not finite")
        value = float(value)
    elif kind == "rating":
        raise InvalidRecordError("a rating needs a numeric 'value'")
    exposure = kind in EXPOSURE_KINDS
    return BehaviorEvent(
        event_id=_text(data, "event_id", limits, required=True) or "",
        user_id=_text(data, "user_id", limits, required=True) or "",
        kind=kind,
        ts=_timestamp(data, now_ms, limits),
        item_id=_text(data, "item_id", limits, required=kind != "search" and not exposure),
        query=_text(data, "query", limits, required=kind == "search"),
        value=value,
        list_id=_text(data, "list_id", limits, required=exposure),
        item_ids=_shown_items(data, limits) if exposure else (),
    )


def _shown_items(data: dict[str, Any], limits: Limits) -> tuple[str, ...]:
    """An impression's `item_ids`: the displayed items, a non-empty list of item ids in display order."""
    items = data.get("item_ids")
    if not isinstance(items, list) or not items:
        raise InvalidRecordError("an impression needs 'item_ids', a non-empty list of the items displayed")
    if len(items) > limits.max_impression_items:
        raise InvalidRecordError(f"an impression lists {len(items)} items, over the limit of "
                                 f"{limits.max_impression_items}")
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise InvalidRecordError("field 'item_ids' must hold non-empty strings")
    return tuple(items)


def parse_item(raw: bytes | None, now_ms: int, limits: Limits | None = None) -> Item:
    """Validates one Item payload; raises InvalidRecordError with the reason."""
    limits = limits or Limits()
    data = _load_object(raw, limits)
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidRecordError("field 'tags' must be a list of strings")
    return Item(
        item_id=_text(data, "item_id", limits, required=True) or "",
        title=_text(data, "title", limits, required=True) or "",
        ts=_timestamp(data, now_ms, limits),
        text=_text(data, "text", limits, required=False),
        tags=tuple(tags),
    )
