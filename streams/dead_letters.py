"""The `driftrec dead-letters` command: read the dead-letter topic, count and sample it by reason, and replay chosen
records to the topics they came from (`replay_records`).

Replaying is safe for events applied before: a user state skips an event id it applied, and the shared signals fold
each (user, event) once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from streams.dead_letter import DeadLetter, parse_dead_letter
from streams.kafka_clients import client_config
from streams.settings import Settings
from streams.windowing import WindowedEvent

WINDOWED_EVENT_KEYS = frozenset({"event_id", "user_id", "kind", "ts", "source", "arrived_ms"})
WEIGHT_UPDATE_KEYS = frozenset({"user_id", "version", "weights", "trigger_event_id"})
VALUE_SHOWN_CHARS = 100


@dataclass(frozen=True)
class Outgoing:
    """One record a replay sends."""

    topic: str
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on: a reason (a part of it or its category, any case) and a source topic;
    None selects all."""

    reason: str | None = None
    source_topic: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        wanted = (self.reason or "").lower()
        return ((wanted in letter.reason.lower() or wanted == letter.category.lower())
                and self.source_topic in (None, letter.source.topic))


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay of some dead letters sends, in their order; how many of the dead letters it comes from, and how
    many send nothing (`replay_records`)."""

    records: list[Outgoing]
    letters: int
    not_replayable: int

    @classmethod
    def of(cls, letters: Sequence[DeadLetter]) -> ReplayPlan:
        records, not_replayable = [], 0
        for letter in letters:
            outgoing = replay_records(letter)
            records += outgoing
            not_replayable += not outgoing
        return cls(records, len(letters) - not_replayable, not_replayable)

    def lines(self, sent: bool) -> list[str]:
        per_topic = Counter(record.topic for record in self.records)
        where = ", ".join(f"{count} to {topic}" for topic, count in per_topic.items())
        lines = [f"{'sent' if sent else 'would send'} {len(self.records)} records of {self.letters} dead letters"
                 + (f": {where}" if where else "")]
        if self.not_replayable:
            lines.append(f"not replayed: {self.not_replayable} WeightUpdates of a scoring failure (their events are "
                         "applied; the user's next event ranks again)")
        return lines


def replay_records(letter: DeadLetter) -> list[Outgoing]:
    """What replaying `letter` sends: a flushed window's events (the encode or weigh stage's `internal error`), each
    on its own as a behaviour event keyed by its user, to the topic it was read from; nothing for a WeightUpdate (a
    scoring failure: the state holds its events, the user's next event ranks again); any other record byte for byte,
    with its key, to its source topic."""
    data = _json(letter.value)
    if isinstance(data, dict) and data.keys() >= WEIGHT_UPDATE_KEYS:
        return []
    events = window_events(data)
    if events is None:
        return [Outgoing(letter.source.topic, letter.key, letter.value)]
    return [Outgoing(topic, item.event.user_id.encode(), orjson.dumps(item.event.to_dict()))
            for item, topic in events]


def window_events(data: Any) -> list[tuple[WindowedEvent, str]] | None:
    """The events of a flushed window (a list of windowed events, or a dict holding it under `events`), each with
    the topic it was read from; None when `data` is not a window."""
    events = data.get("events") if isinstance(data, dict) else data
    if not (isinstance(events, list) and events
            and all(isinstance(event, dict) and event.keys() >= WINDOWED_EVENT_KEYS for event in events)):
        return None
    try:
        items = [WindowedEvent.from_dict(event) for event in events]
        return [(item, item.position.topic) for item in items]
    except (AttributeError, ValueError):  # a source that is not `topic:partition:offset`
        return None


def _json(raw: bytes | None) -> Any:
    """The JSON value of `raw`; None when it is not JSON."""
    try:
        return orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None


def by_category(letters: Iterable[DeadLetter]) -> dict[str, list[DeadLetter]]:
    """The dead letters per reason category, the most frequent first (ties in order of first appearance)."""
    groups: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        groups.setdefault(letter.category, []).append(letter)
    return dict(sorted(groups.items(), key=lambda group: -len(group[1])))


def listing(letters: Sequence[DeadLetter], samples: int) -> list[str]:
    """Counts per reason category, each with its first `samples` dead letters: source position, reason, value."""
    lines = []
    for category, group in by_category(letters).items():
        lines.append(f"{len(group):7d}  {category}")
        for letter in group[:samples]:
            source = letter.source
            lines.append(f"           {source.topic}[{source.partition}]@{source.offset}  {letter.reason}")
            lines.append(f"             value: {shown(letter.value)}")
    return lines


def shown(raw: bytes | None, chars: int = VALUE_SHOWN_CHARS) -> str:
    """A value as one line of at most `chars` characters (bytes that are not UTF-8 escaped).

    >>> shown(b'{"kind": "view"}'), shown(None), shown(b"\\xff" + b"a" * 200, 10)
    ('{"kind": "view"}', 'null (a tombstone)', '\\\\xffaaaaa…')
    """
    if raw is None:
        return "null (a tombstone)"
    text = raw.decode("utf-8", errors="backslashreplace").replace("\n", "\\n")
    return text if len(text) <= chars else text[: chars - 1] + "…"


def parse_all(raws: Iterable[bytes | None]) -> tuple[list[DeadLetter], int]:
    """The dead letters among records of the dead-letter topic, and how many records were not dead letters."""
    letters, unreadable = [], 0
    for raw in raws:
        try:
            letters.append(parse_dead_letter(raw or b""))
        except ValueError:
            unreadable += 1
    return letters, unreadable


def read_topic(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every partition of `topic` from its start to its end offsets at the call, in each partition's order, read
    without a consumer group (nothing committed); nothing when the topic does not exist."""
    consumer = KafkaConsumer(**client_config(settings), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        read: list[ConsumerRecord] = []
        pending = [tp for tp in partitions if consumer.position(tp) < ends[tp]]
        while pending:
            for tp, records in consumer.poll(timeout_ms=500).items():
                read += [record for record in records if record.offset < ends[tp]]
            pending = [tp for tp in pending if consumer.position(tp) < ends[tp]]
        return read
    finally:
        consumer.close()


def send(producer: KafkaProducer, records: Sequence[Outgoing]) -> None:
    """Sends the records in order and waits until the broker acked every one."""
    futures = [producer.send(record.topic, key=record.key, value=record.value) for record in records]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
