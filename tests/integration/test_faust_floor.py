"""The framework-floor benchmark's agent does the plumbing it is timed for, on the real broker."""

from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from bench import faust_floor
from bench.live_pipeline import scaled_catalogue, send_events
from bench.pipeline import backlog_events
from streams.demo import run_settings
from streams.settings import Settings
from streams.topics_admin import ensure_topics

pytestmark = pytest.mark.integration


def records_in(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_the_stage_floor_writes_the_table_and_sends_once_per_event(kafka_bootstrap, unique_name, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    ) -> None:
    settings = run_settings(Settings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path)), unique_name("floor"))
    ensure_topics(settings)
    events = backlog_events(40, 3, scaled_catalogue(60))
    send_events(settings, events)
    assert faust_floor.events_per_s(settings, len(events), "stage") > 0
    floor = faust_floor.floor_settings(settings, "stage")
    assert records_in(kafka_bootstrap, floor.weights_topic) == len(events) == 120
    assert records_in(kafka_bootstrap, f"{floor.app_id}-floor-states-changelog") == len(events)
