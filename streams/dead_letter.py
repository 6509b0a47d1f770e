"""Dead-letter records: the original bytes, where they came from, and a one-line reason."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class SourcePosition:
    """Where a record was read."""

    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, message: Any) -> SourcePosition:
        """The position of a consumed message (a Faust `Message` or an aiokafka `ConsumerRecord`)."""
        return cls(message.topic, message.partition, message.offset)

    @classmethod
    def unknown(cls, topic: str) -> SourcePosition:
        """A record of `topic` whose partition and offset a batch no longer carries (partition and offset −1)."""
        return cls(topic, -1, -1)


def dead_letter_record(
    value: bytes | None, key: bytes | None, reason: str, source: SourcePosition, now_ms: int
) -> bytes:
    """The JSON record written to the dead-letter topic; non-UTF-8 bytes travel as base64."""

    def carried(raw: bytes | None) -> tuple[str | None, str]:
        if raw is None:
            return None, "null"
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode(), "base64"

    text, encoding = carried(value)
    key_text, key_encoding = carried(key)
    record: dict[str, Any] = {
        "reason": reason, "topic": source.topic, "partition": source.partition, "offset": source.offset, "ts": now_ms,
        "value": text, "value_encoding": encoding, "key": key_text, "key_encoding": key_encoding,
    }
    return orjson.dumps(record)


def reason_category(reason: str) -> str:
    """A short label for counting reasons: the words before any quote, number or colon."""
    words = []
    for word in reason.split():
        if word.endswith(":"):
            words.append(word[:-1])
            break
        if any(ch in word for ch in "'\"0123456789"):
            break
        words.append(word)
    return " ".join(words) or reason[:40]
