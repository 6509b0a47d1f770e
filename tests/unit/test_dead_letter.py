import base64

import orjson
import pytest

from streams.dead_letter import SourcePosition, dead_letter_record, parse_dead_letter, reason_category


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


def test_a_record_reads_back_into_its_original_bytes() -> None:
    source = SourcePosition("events", 3, 17)
    for value, key in [(b"\xff\xfe not utf-8", b"\x00\x9f"), (b'{"kind": "view"}', b"u1"), (None, None)]:
        letter = parse_dead_letter(dead_letter_record(value, key, "malformed JSON: x", source, 5))
        assert (letter.value, letter.key) == (value, key)
        assert (letter.reason, letter.category, letter.source) == ("malformed JSON: x", "malformed JSON", source)


@pytest.mark.parametrize("raw", [
    b"not json", b"[1, 2]", b'{"reason": "r"}',
    dead_letter_record(b"v", None, "r", SourcePosition("t", 0, 0), 0).replace(b'"utf-8"', b'"rot13"'),
    dead_letter_record(b"\xff", None, "r", SourcePosition("t", 0, 0), 0).replace(b'"/w=="', b'"/w"'),
])
def test_other_records_are_not_dead_letters(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a dead-letter record"):
        parse_dead_letter(raw)
