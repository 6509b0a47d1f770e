"""Creates driftrec's topics with the configured partition count (the items topic compacted)."""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.kafka_clients import client_config
from streams.settings import Settings

TABLES = ("open-windows", "user-states")


def changelog_topics(settings: Settings) -> list[str]:
    """The changelog topics Faust uses for the app's tables (compacted, same partition count as the sources)."""
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


def all_topics(settings: Settings) -> list[str]:
    return [
        *settings.behaviour_topics, settings.items_topic, settings.windows_topic, settings.encoded_topic,
        settings.weights_topic, settings.recommendations_topic, settings.dead_letter_topic, settings.ticks_topic,
        settings.shared_topic, *changelog_topics(settings),
    ]


def partition_count(settings: Settings, topic: str) -> int:
    """The shared log has one partition (one order for every worker); every other topic `partitions`."""
    return 1 if topic == settings.shared_topic else settings.partitions


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """The catalogue and the changelogs are compacted; the shared log is kept forever."""
    if topic in (settings.items_topic, *changelog_topics(settings)):
        return {"cleanup.policy": "compact"}
    if topic == settings.shared_topic:
        return {"retention.ms": "-1", "retention.bytes": "-1"}
    return {}


def topic_partitions(settings: Settings, topic: str) -> set[int]:
    """The partition ids of an existing topic (an empty set when it does not exist)."""
    consumer = KafkaConsumer(**client_config(settings))
    try:
        return consumer.partitions_for_topic(topic) or set()
    finally:
        consumer.close()


def _wait_for_partitions(settings: Settings, topics: list[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(topics)
    while pending and time.monotonic() < deadline:
        pending = [t for t in pending if len(topic_partitions(settings, t)) != partition_count(settings, t)]
        if pending:
            time.sleep(0.2)
    if pending:
        raise RuntimeError(f"topics not ready after {timeout_s:.0f}s: {', '.join(pending)}")


def ensure_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Creates the missing topics and waits until each has its partitions; returns the names it created.

    The table changelogs are created here too: a changelog Faust creates itself at start-up can still report
    no partitions when the worker subscribes, which stops the stateful agents.
    """
    admin = KafkaAdminClient(**client_config(settings))
    try:
        existing = set(admin.list_topics())
        missing = [name for name in dict.fromkeys(all_topics(settings)) if name not in existing]
        new_topics = [NewTopic(name, partition_count(settings, name), replication_factor,
                               topic_configs=topic_config(settings, name)) for name in missing]
        if new_topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new_topics)
        _wait_for_partitions(settings, missing)
        return missing
    finally:
        admin.close()


def delete_topics_containing(settings: Settings, marker: str) -> list[str]:
    """Deletes every topic whose name contains `marker` (a run's id: its own, its changelogs and Faust's
    internal topics); returns their names."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        doomed = [name for name in admin.list_topics() if marker in name]
        if doomed:
            admin.delete_topics(doomed)
        return doomed
    finally:
        admin.close()
