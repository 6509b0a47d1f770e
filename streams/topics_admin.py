"""Creates driftrec's topics with the configured partition count (the items topic compacted)."""

from __future__ import annotations

import contextlib

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.kafka_clients import client_config
from streams.settings import Settings


def all_topics(settings: Settings) -> list[str]:
    return [
        *settings.behaviour_topics, settings.items_topic, settings.windows_topic, settings.encoded_topic,
        settings.weights_topic, settings.recommendations_topic, settings.dead_letter_topic, settings.ticks_topic,
    ]


def topic_partitions(settings: Settings, topic: str) -> set[int]:
    """The partition ids of an existing topic (an empty set when it does not exist)."""
    consumer = KafkaConsumer(**client_config(settings))
    try:
        return consumer.partitions_for_topic(topic) or set()
    finally:
        consumer.close()


def ensure_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Creates the missing topics; returns the names it created."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        existing = set(admin.list_topics())
        missing = [name for name in dict.fromkeys(all_topics(settings)) if name not in existing]
        new_topics = [
            NewTopic(
                name, settings.partitions, replication_factor,
                topic_configs={"cleanup.policy": "compact"} if name == settings.items_topic else {},
            )
            for name in missing
        ]
        if new_topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new_topics)
        return missing
    finally:
        admin.close()
