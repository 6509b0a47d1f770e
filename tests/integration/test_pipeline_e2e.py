"""The whole pipeline on the real broker with a real worker and the real encoder."""

import json
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator
from kafka import KafkaConsumer

from streams.catalogue_data import builtin_catalogue
from streams.demo import run_settings, start_worker, stop_worker
from streams.kafka_clients import idempotent_producer
from streams.produce import publish_lines
from streams.settings import Settings
from streams.synthetic import behaviour_stream, make_users
from streams.topics_admin import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMAS = Path(__file__).resolve().parents[2] / "streams" / "schemas"
FOCUSED_MIX = (("view", 0.6), ("click", 0.2), ("cart", 0.08), ("purchase", 0.05), ("search", 0.07))
BAD_RECORDS = [
    (b"user-0000", b"{this is not json"),
    (b"user-0001", orjson.dumps({"event_id": "bad-1", "user_id": "user-0001", "kind": "teleport", "item_id": "x",
                                 "ts": 1_700_000_000_000})),
    (b"user-0002", orjson.dumps({"event_id": "bad-2", "user_id": "user-0002", "kind": "view",
                                 "item_id": "no-such-item", "ts": int(time.time() * 1000)})),
]


def publish_events(settings: Settings, events: list) -> tuple[dict[str, set[str]], dict[str, str]]:  # type: ignore[type-arg]
    """Sends the events (and the bad records); returns each user's acted items and last event id."""
    producer = idempotent_producer(settings)
    acted: dict[str, set[str]] = defaultdict(set)
    last_event: dict[str, str] = {}
    for event in events:
        producer.send(settings.behaviour_topics[0], key=event.user_id.encode(), value=orjson.dumps(event.to_dict()))
        if event.item_id:
            acted[event.user_id].add(event.item_id)
        last_event[event.user_id] = event.event_id
    for key, value in BAD_RECORDS:
        producer.send(settings.behaviour_topics[0], key=key, value=value)
    producer.flush()
    producer.close()
    return acted, last_event


def final_lists(settings: Settings, last_event: dict[str, str], worker, timeout_s: float) -> dict[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    """Reads recommendations until every user's latest list was triggered by that user's last event."""
    latest: dict[str, dict] = {}  # type: ignore[type-arg]
    consumer = KafkaConsumer(settings.recommendations_topic, bootstrap_servers=settings.bootstrap,
                             auto_offset_reset="earliest")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and worker.poll() is None:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                rec = orjson.loads(record.value)
                latest[rec["user_id"]] = rec
        if all(latest.get(u, {}).get("trigger_event_id") == e for u, e in last_event.items()):
            break
    consumer.close()
    return latest


def read_all(topic: str, bootstrap: str) -> list[dict]:  # type: ignore[type-arg]
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    records = [orjson.loads(r.value) for r in consumer]
    consumer.close()
    return records


def test_every_user_gets_fresh_unseen_on_topic_recommendations(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = Settings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path), window_max_wait_ms=200, web_port=6167)
    settings = run_settings(base, unique_name("e2e"))
    ensure_topics(settings)
    items = builtin_catalogue()
    topic_of = {item.item_id: item.tags[0] for item in items}
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        producer = idempotent_producer(settings)
        report = publish_lines(producer, settings.items_topic, (orjson.dumps(i.to_dict()) for i in items), items=True)
        producer.close()
        assert report.sent == len(items) >= 200 and not report.rejected
        users = make_users(60, sorted(set(topic_of.values())), seed=3)
        events = list(behaviour_stream(users, items, 40, int(time.time() * 1000) - 3_600_000, seed=3,
                                       kind_mix=FOCUSED_MIX))
        assert len(events) >= 2000
        acted, last_event = publish_events(settings, events)
        latest = final_lists(settings, last_event, worker, timeout_s=300)
        dead_letters = read_all(settings.dead_letter_topic, kafka_bootstrap)
    finally:
        stop_worker(worker)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert worker.returncode is not None
    assert set(latest) == set(last_event), f"users without a final list: {set(last_event) - set(latest)}\n{log[-3000:]}"
    validator = Draft202012Validator(json.loads((SCHEMAS / "recommendation.schema.json").read_text()))
    on_topic_shares = []
    for user in users:
        rec = latest[user.user_id]
        validator.validate(rec)
        ids = [item["item_id"] for item in rec["items"]]
        assert len(ids) == 10 == len(set(ids))
        assert all(i in topic_of for i in ids)
        assert not set(ids) & acted[user.user_id]
        assert all(item["reason"] for item in rec["items"])
        on_topic = sum(topic_of[i] == user.topics[0] for i in ids)
        on_topic_shares.append(on_topic)
        assert on_topic >= 7, f"{user.user_id} likes {user.topics[0]} but got {[topic_of[i] for i in ids]}"
    reasons = sorted(d["reason"] for d in dead_letters)
    assert len(dead_letters) == 3, reasons
    assert reasons[0].startswith("malformed JSON") and "unknown event kind" in reasons[1]
    assert reasons[2] == "unknown item 'no-such-item'"
    print(f"on-topic items per list: min {min(on_topic_shares)}, mean {sum(on_topic_shares) / len(users):.2f}")
