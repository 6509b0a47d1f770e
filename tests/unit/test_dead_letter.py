import base64

import orjson

from streams.dead_letter import SourcePosition, dead_letter_record, reason_category


def test_record_keeps_original_bytes_and_source() -> None:
    raw = b"\xff\xfe not utf-8"
    record = orjson.loads(dead_letter_record(raw, b"u1", "malformed JSON: x", SourcePosition("events", 2, 41), 7))
    assert record["value_encoding"] == "base64"
    assert base64.b64decode(record["value"]) == raw
    assert (record["topic"], record["partition"], record["offset"], record["key"]) == ("events", 2, 41, "u1")
    assert record["reason"] == "malformed JSON: x"


def test_tombstone_and_text_values() -> None:
    assert orjson.loads(dead_letter_record(None, None, "tombstone", SourcePosition("t", 0, 0), 0))["value"] is None
    assert orjson.loads(dead_letter_record(b"{}", None, "r", SourcePosition("t", 0, 0), 0))["value"] == "{}"


def test_reason_categories_are_short_and_bounded() -> None:
    assert reason_category("unknown item 'a'") == reason_category("unknown item 'b'") == "unknown item"
    assert reason_category("malformed JSON: unexpected character") == "malformed JSON"
    assert reason_category("timestamp 99 is too far in the future") == "timestamp"
