"""Property test: bad input never crashes ingest, each bad record gives one dead letter, each good one passes."""

import base64

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.dead_letter import SourcePosition
from streams.events import EVENT_KINDS, Limits
from streams.ingest_routing import Accepted, Rejected, route_event

NOW = 1_700_000_000_000
LIMITS = Limits(max_payload_bytes=2048, max_text_chars=100)
CATALOGUE = frozenset({"i1", "i2", "i3"})


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[bytes, bytes]:
    kind = draw(st.sampled_from(sorted(EVENT_KINDS)))
    user = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
                .filter(str.strip))
    event = {"event_id": draw(st.uuids()).hex, "user_id": user, "kind": kind,
             "ts": draw(st.integers(NOW - 10**10, NOW + 10**6))}
    if kind == "search":
        event["query"] = draw(st.text(min_size=1, max_size=50).filter(str.strip))
    elif kind == "impression":
        event["list_id"] = f"{user}/{draw(st.uuids()).hex}"
        event["item_ids"] = draw(st.lists(st.sampled_from(sorted(CATALOGUE)), min_size=1, max_size=10))
    else:
        event["item_id"] = draw(st.sampled_from(sorted(CATALOGUE)))
    if kind == "rating" or draw(st.booleans()):
        event["value"] = draw(st.floats(-10, 10, allow_nan=False))
    return user.encode(), orjson.dumps(event)


RAW_CORRUPTIONS = {
    "bytes": lambda draw, key, payload: (key, draw(st.binary(max_size=64))),
    "truncate": lambda draw, key, payload: (key, payload[: draw(st.integers(0, max(len(payload) - 2, 0)))]),
    "key": lambda draw, key, payload: (key + b"-other", payload),
    "null": lambda draw, key, payload: (key, None),
    "nan": lambda draw, key, payload: (key, payload[:-1] + b',"value":NaN}'),
    "list": lambda draw, key, payload: (key, b"[" + payload + b"]"),
}


def corrupt_fields(draw: st.DrawFn, event: dict) -> None:  # type: ignore[type-arg]
    how = draw(st.sampled_from(["drop", "retype", "kind", "item", "future", "huge"]))
    if how == "drop":
        event.pop(draw(st.sampled_from(["event_id", "user_id", "kind", "ts"])))
    elif how == "retype":
        event[draw(st.sampled_from(["event_id", "user_id", "ts", "kind"]))] = draw(st.sampled_from([None, 3.5, [], {}]))
    elif how == "kind":
        event["kind"] = draw(st.text(max_size=8).filter(lambda k: k not in EVENT_KINDS))
    elif how == "item":
        event["kind"], event["item_id"] = "view", "not-in-catalogue"
    elif how == "future":
        event["ts"] = NOW + 10**12
    else:
        event["event_id"] = "x" * 5000


def corrupt(draw: st.DrawFn, key: bytes, payload: bytes) -> tuple[bytes | None, bytes | None]:
    """One way of breaking a valid record: its bytes, its key, or one of its fields."""
    raw_way = draw(st.sampled_from([None, *RAW_CORRUPTIONS]))
    if raw_way is not None:
        return RAW_CORRUPTIONS[raw_way](draw, key, payload)
    event = orjson.loads(payload)
    corrupt_fields(draw, event)
    return key, orjson.dumps(event)


@st.composite
def mixed_records(draw: st.DrawFn) -> list[tuple[bytes | None, bytes | None, bool]]:
    records = []
    for _ in range(draw(st.integers(1, 40))):
        key, payload = draw(valid_events())
        if draw(st.booleans()):
            records.append((key, payload, True))
        else:
            bad_key, bad_payload = corrupt(draw, key, payload)
            records.append((bad_key, bad_payload, False))
    return records


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mixed_records())
def test_every_record_is_either_processed_or_dead_lettered_once(records) -> None:  # type: ignore[no-untyped-def]
    for offset, (key, value, valid) in enumerate(records):
        source = SourcePosition("events", 0, offset)
        routed = route_event(value, key, source, NOW, limits=LIMITS, catalogue=CATALOGUE)
        if valid:
            assert isinstance(routed, Accepted), routed
            assert routed.event.user_id.encode() == key
        else:
            assert isinstance(routed, Rejected)
            dead = orjson.loads(routed.record)
            assert dead["reason"] == routed.reason and "\n" not in routed.reason and routed.reason
            assert dead["offset"] == offset
            original = None if dead["value"] is None else (
                base64.b64decode(dead["value"]) if dead["value_encoding"] == "base64" else dead["value"].encode())
            assert original == value
