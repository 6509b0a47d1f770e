"""Following the recommendations topic and printing readable lists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
from kafka import KafkaConsumer

from streams.kafka_clients import client_config
from streams.settings import Settings


def format_recommendation(rec: dict[str, Any], titles: dict[str, str], top: int = 5) -> str:
    weights = " ".join(f"{name}={value:.2f}" for name, value in rec["weights"].items())
    lines = [f"{rec['user_id']}  latency {rec['latency_ms']:.0f} ms  weights {weights}"]
    for rank, item in enumerate(rec["items"][:top], start=1):
        lines.append(f"  {rank:2d}. {titles.get(item['item_id'], item['item_id'])}  ({item['reason']})")
    return "\n".join(lines)


def follow(
    settings: Settings, user: str | None = None, from_beginning: bool = False, until: float = float("inf")
) -> Iterator[dict[str, Any]]:
    """Yields recommendations (of one user, or all) until the monotonic clock passes `until`."""
    consumer = KafkaConsumer(
        settings.recommendations_topic, **client_config(settings),
        auto_offset_reset="earliest" if from_beginning else "latest", enable_auto_commit=False,
    )
    try:
        while time.monotonic() < until:
            for records in consumer.poll(timeout_ms=500).values():
                for message in records:
                    rec = orjson.loads(message.value)
                    if user is None or rec["user_id"] == user:
                        yield rec
    finally:
        consumer.close()
