"""kafka-python client configuration and the idempotent producer used by the CLI, demo and tools."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

from streams.settings import Settings


def client_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.bootstrap.split(",")}


def idempotent_producer(settings: Settings) -> KafkaProducer:
    """acks=all, idempotent, batched: a retried send never duplicates a record."""
    return KafkaProducer(
        **client_config(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
    )
