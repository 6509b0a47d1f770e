"""Publishing JSONL events or items with kafka-python; bad lines are rejected locally and reported."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from streams.events import InvalidRecordError, Item, parse_event, parse_item


@dataclass
class ProduceReport:
    sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def lines(self, what: str, topic: str) -> list[str]:
        out = [f"sent {self.sent} {what} to {topic}"]
        out += [f"rejected {count} locally: {reason}" for reason, count in self.rejected.most_common()]
        return out


def publish_lines(
    producer: KafkaProducer, topic: str, lines: Iterable[bytes], *, items: bool, progress: bool = False
) -> ProduceReport:
    """Validates each line as an Item or a BehaviorEvent and sends it keyed by item or user id."""
    report = ProduceReport()
    now = int(time.time() * 1000)
    futures = []
    for line in tqdm(lines, disable=not progress, unit=" records"):
        if not line.strip():
            continue
        try:
            record = parse_item(line, now) if items else parse_event(line, now)
        except InvalidRecordError as error:
            report.rejected[str(error)] += 1
            continue
        key = record.item_id if isinstance(record, Item) else record.user_id
        futures.append(producer.send(topic, key=key.encode(), value=orjson.dumps(record.to_dict())))
        report.sent += 1
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    return report
