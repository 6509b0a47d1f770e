"""The live pipeline and the offline replay run the same code: same recommendations, same order."""

import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from encoders.vector_cache import VectorCache
from replay.prequential import build_catalogue, query_vectors, recommendation_trace
from streams.synthetic import behaviour_stream, make_users
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIX = (("view", 0.5), ("click", 0.2), ("cart", 0.1), ("purchase", 0.05), ("search", 0.1), ("skip", 0.05))


def test_live_recommendations_equal_the_replay(kafka_bootstrap, unique_name, tmp_path, encoder) -> None:  # type: ignore[no-untyped-def]
    # one partition and one-event windows: the live order of updates is the log's order, as in the replay
    run = PipelineRun.create(kafka_bootstrap, unique_name("equiv"), tmp_path, web_port=6170, partitions=1,
                             window_max_events=1)
    users = make_users(6, sorted({t for item in run.items for t in item.tags}), seed=5, drift_share=0.5,
                       switch_at=6)
    events = list(behaviour_stream(users, run.items, 12, int(time.time() * 1000) - 600_000, seed=5, kind_mix=MIX))
    live: list[tuple[str, list[str]]] = []
    consumer = KafkaConsumer(run.settings.recommendations_topic, bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest")
    run.start()
    try:
        for event in events:
            run.produce([event])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (not live or live[-1][0] != event.event_id):
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        rec = orjson.loads(record.value)
                        live.append((rec["trigger_event_id"], [item["item_id"] for item in rec["items"]]))
            assert live and live[-1][0] == event.event_id, run.log_tail()
    finally:
        consumer.close()
        run.stop()
    cache = VectorCache(Path(run.settings.data_dir) / "item-vectors", encoder.model_name)
    catalogue = build_catalogue(run.items, encoder, cache)
    replayed = recommendation_trace(catalogue, events, run.settings.top_k, queries=query_vectors(events, encoder))
    assert sum(event.kind == "search" for event in events) >= 3  # the query factor is in both
    assert len(live) == len(events)
    assert live == replayed
