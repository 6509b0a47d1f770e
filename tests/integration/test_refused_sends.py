"""A record the broker refuses is not committed over: its window is dead-lettered with the broker's reason."""

import time

import orjson
import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.synthetic import behaviour_stream, make_users
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_states_too_large_for_their_change_log_are_dead_lettered_not_lost(kafka_bootstrap, unique_name,  # type: ignore[no-untyped-def]
                                                                         tmp_path) -> None:
    run = PipelineRun.create(kafka_bootstrap, unique_name("refused"), tmp_path, web_port=6171)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:  # the state table's change log made too small for any user's state
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, f"{run.settings.app_id}-user-states-changelog",
                                            configs={"max.message.bytes": "2000"})])
    finally:
        admin.close()
    users = make_users(3, sorted({t for item in run.items for t in item.tags}), seed=4)
    events = list(behaviour_stream(users, run.items, 4, int(time.time() * 1000) - 60_000, seed=4,
                                   kind_mix=(("view", 1.0),)))
    run.start()
    try:
        run.produce(events)
        deadline, dead = time.monotonic() + 180, []
        while time.monotonic() < deadline and len({e["event_id"] for d in dead for e in events_of(d)}) < len(events):
            time.sleep(2)
            dead = run.read_all(run.settings.dead_letter_topic)
        weights = run.read_all(run.settings.weights_topic)
    finally:
        run.stop()
    assert {e["event_id"] for d in dead for e in events_of(d)} == {e.event_id for e in events}, run.log_tail()
    assert all("MessageSizeTooLarge" in d["reason"] for d in dead), sorted({d["reason"] for d in dead})
    assert weights == []  # nothing emitted for a state that never reached its change log


def events_of(dead_letter: dict) -> list[dict]:  # type: ignore[type-arg]
    """The events a dead-lettered flushed window carries."""
    value = orjson.loads(dead_letter["value"])
    return value if isinstance(value, list) else value.get("events", [])
