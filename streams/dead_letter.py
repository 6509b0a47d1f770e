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


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter record read back: the reason, where the original came from, and its original bytes."""

    reason: str
    source: SourcePosition
    value: bytes | None
    key: bytes | None

    @property
    def category(self) -> str:
        return reason_category(self.reason)


def dead_letter_record(
    value: bytes | None, key: bytes | None, reason: str, source: SourcePosition, now_ms: int
) -> bytes:
    """The JSON record written to the dead-letter topic; non-UTF-8 bytes travel as base64."""
    text, encoding = _carried(value)
    key_text, key_encoding = _carried(key)
    record: dict[str, Any] = {
        "reason": reason, "topic": source.topic, "partition": source.partition, "offset": source.offset, "ts": now_ms,
        "value": text, "value_encoding": encoding, "key": key_text, "key_encoding": key_encoding,
    }
    return orjson.dumps(record)


def parse_dead_letter(raw: bytes) -> DeadLetter:
    """The inverse of `dead_letter_record`; ValueError when `raw` is not a dead-letter record."""
    try:
        data = orjson.loads(raw)
        return DeadLetter(
            reason=data["reason"], source=SourcePosition(data["topic"], data["partition"], data["offset"]),
            value=_original(data["value"], data["value_encoding"]),
            key=_original(data["key"], data["key_encoding"]),
        )
    except (KeyError, TypeError, ValueError) as error:  # a bad base64 or JSON text is a ValueError
        raise ValueError(f"not a dead-letter record: {type(error).__name__}: {error}") from None


def _carried(raw: bytes | None) -> tuple[str | None, str]:
    """Bytes as JSON text and its encoding: UTF-8 text, base64 for other bytes, or null."""
    if raw is None:
        return None, "null"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


def _original(text: str | None, encoding: str) -> bytes | None:
    """The bytes `_carried` turned into `text`."""
    if encoding == "null":
        return None
    if not isinstance(text, str):
        raise TypeError(f"a {encoding} value must be a string")
    if encoding == "base64":
        return base64.b64decode(text, validate=True)
    if encoding == "utf-8":
        return text.encode()
    raise ValueError(f"unknown encoding {encoding!r}")


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
