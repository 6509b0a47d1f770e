"""The whole pipeline on the real broker with a real worker and the real encoder."""

import json
import time
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from streams.synthetic import behaviour_stream, make_users
from tests.integration.harness import PipelineRun

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


def test_every_user_gets_fresh_unseen_on_topic_recommendations(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = PipelineRun.create(kafka_bootstrap, unique_name("e2e"), tmp_path, web_port=6167)
    topic_of = {item.item_id: item.tags[0] for item in run.items}
    assert len(run.items) >= 200
    users = make_users(60, sorted(set(topic_of.values())), seed=3)
    events = list(behaviour_stream(users, run.items, 40, int(time.time() * 1000) - 3_600_000, seed=3,
                                   kind_mix=FOCUSED_MIX))
    assert len(events) >= 2000
    run.start()
    try:
        run.produce(events, BAD_RECORDS)
        latest = run.final_recommendations(timeout_s=300)
        dead_letters = run.read_all(run.settings.dead_letter_topic)
    finally:
        run.stop()
    assert set(latest) == set(run.last_event), f"users without a final list\n{run.log_tail()}"
    validator = Draft202012Validator(json.loads((SCHEMAS / "recommendation.schema.json").read_text()))
    on_topic_counts = []
    for user in users:
        rec = latest[user.user_id]
        validator.validate(rec)
        ids = [item["item_id"] for item in rec["items"]]
        assert len(ids) == 10 == len(set(ids))
        assert all(i in topic_of for i in ids)
        assert not set(ids) & run.acted[user.user_id]
        assert all(item["reason"] for item in rec["items"])
        on_topic = sum(topic_of[i] == user.topics[0] for i in ids)
        on_topic_counts.append(on_topic)
        assert on_topic >= 7, f"{user.user_id} likes {user.topics[0]} but got {[topic_of[i] for i in ids]}"
    reasons = sorted(d["reason"] for d in dead_letters)
    assert len(dead_letters) == 3, reasons
    assert reasons[0].startswith("malformed JSON") and "unknown event kind" in reasons[1]
    assert reasons[2] == "unknown item 'no-such-item'"
    print(f"on-topic items per list: min {min(on_topic_counts)}, mean {sum(on_topic_counts) / len(users):.2f}")
