"""`driftrec dead-letters` on the real broker with a running worker: the listing counts what the worker
dead-lettered, a replay once the cause is fixed is applied, and a replay of events already applied changes nothing."""

import re
import time

import orjson
import pytest

from streams.cli import main
from streams.dead_letter import SourcePosition, dead_letter_record
from streams.dead_letters import read_topic, shown
from streams.events import BehaviorEvent
from streams.kafka_clients import idempotent_producer
from streams.produce import publish_lines
from streams.settings import settings_env
from streams.windowing import WindowedEvent, encode_window
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB_PORT = 6174
NEW_ITEM = {"item_id": "item-published-late", "title": "A late item", "ts": 1_700_000_000_000}


def command(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """Runs `driftrec dead-letters ARGS` in this process; its output lines."""
    assert main(["dead-letters", *args]) == 0
    return capsys.readouterr().out.splitlines()


def wait_for_records(run: PipelineRun, topic: str, count: int, timeout_s: float = 120.0) -> list:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while len(records := read_topic(run.settings, topic)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return records


def test_dead_letters_are_listed_and_replayed_once(kafka_bootstrap, unique_name, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    run = PipelineRun.create(kafka_bootstrap, unique_name("deadletters"), tmp_path, web_port=WEB_PORT)
    for variable, value in settings_env(run.settings).items():
        monkeypatch.setenv(variable, value)
    events_topic, dead_topic = run.settings.behaviour_topics[0], run.settings.dead_letter_topic
    now = int(time.time() * 1000)
    applied = [BehaviorEvent(f"a-{n}", "user-a", "view", now - 1000 + n, run.items[n].item_id) for n in range(3)]
    too_early = BehaviorEvent("b-0", "user-b", "view", now, NEW_ITEM["item_id"])
    malformed = (b"user-c", b"{this is not json")
    run.start()
    try:
        run.produce(applied, [malformed, (b"user-b", orjson.dumps(too_early.to_dict()))])
        assert run.applied_counts(timeout_s=300) == {"user-a": 3}, run.log_tail()
        assert len(wait_for_records(run, dead_topic, 2)) == 2, run.log_tail()

        listed = command(capsys)
        assert listed[0] == f"2 of 2 dead letters in {dead_topic} selected"
        assert "      1  malformed JSON" in listed and "      1  unknown item" in listed
        sample, value = listed[listed.index("      1  unknown item") + 1:][:2]
        assert re.fullmatch(rf" +{events_topic}\[\d\]@\d+  unknown item '{NEW_ITEM['item_id']}'", sample), listed
        assert value.strip() == f"value: {shown(orjson.dumps(too_early.to_dict()))}"

        # The cause is fixed: the item is published. Only the selected dead letter goes back, as it was.
        producer = idempotent_producer(run.settings)
        publish_lines(producer, run.settings.items_topic, [orjson.dumps(NEW_ITEM)], items=True)
        producer.close()
        assert run.wait_for_metric("driftrec_catalogue_items", len(run.items) + 1, 60) == len(run.items) + 1
        assert command(capsys, "--reason", "unknown item", "--dry-run")[-1] == \
            f"would send 1 records of 1 dead letters: 1 to {events_topic}"
        assert command(capsys, "--reason", "unknown item", "--replay")[-1] == \
            f"sent 1 records of 1 dead letters: 1 to {events_topic}"
        run.produced["user-b"] = 1
        assert run.applied_counts(timeout_s=120) == {"user-a": 3, "user-b": 1}, run.log_tail()

        # A window of user-a's, dead-lettered although its events were applied, is replayed as its three events.
        read = [r for r in read_topic(run.settings, events_topic) if r.key == b"user-a"]
        window = [WindowedEvent.read_at(event, SourcePosition(r.topic, r.partition, r.offset), now)
                  for event, r in zip(applied, read, strict=True)]
        producer = idempotent_producer(run.settings)
        producer.send(dead_topic, key=b"user-a", value=dead_letter_record(
            encode_window(window), b"user-a", "internal error: RuntimeError: scorer down", window[-1].position, now))
        producer.flush()
        producer.close()
        assert command(capsys, "--reason", "internal error", "--replay")[-1] == \
            f"sent 3 records of 1 dead letters: 3 to {events_topic}"
        assert run.wait_for_metric("driftrec_events_duplicate_total", 3.0, 120) == 3.0, run.log_tail()
        assert run.wait_for_metric("driftrec_events_applied_total", 4.0, 5) == 4.0
        assert run.applied_counts(timeout_s=30) == {"user-a": 3, "user-b": 1}
        on_events = read_topic(run.settings, events_topic)
        dead_letters = read_topic(run.settings, dead_topic)
    finally:
        run.stop()
    sent = [(r.key, r.value) for r in on_events]
    assert sent.count(malformed) == 1, "the malformed record was not selected, so not replayed"
    assert sent.count((b"user-b", orjson.dumps(too_early.to_dict()))) == 2
    assert [value for key, value in sent if key == b"user-a"] == [orjson.dumps(e.to_dict()) for e in applied] * 2
    assert len(sent) == 3 + 2 + 1 + 3
    assert len(dead_letters) == 3, "a replayed record that passes is not dead-lettered again"
