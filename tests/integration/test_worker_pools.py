"""The deployment's two pools on the real broker: a `core` worker (ingest, weigh, rank) and an `encoder` worker
(the query encoder, in a consumer group of its own) together serve every user, and the queries are encoded by the
encoder pool alone."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.demo import start_worker, stop_worker
from streams.synthetic import behaviour_stream, make_users
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORE_PORT, ENCODER_PORT = 6172, 6173
MIX = (("view", 0.5), ("click", 0.2), ("search", 0.3))


def encoded_texts(port: int) -> float:
    """How many texts the worker on `port` passed to its encoder (catalogue items and queries)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return next(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                if sample.name == "driftrec_encoder_batch_size_sum")


def test_core_and_encoder_pools_serve_every_user(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = PipelineRun.create(kafka_bootstrap, unique_name("pools"), tmp_path, web_port=CORE_PORT, role="core")
    encoder_settings = replace(run.settings, role="encoder", web_port=ENCODER_PORT,
                               data_dir=str(tmp_path / "encoder-pool"))
    users = make_users(8, sorted({item.tags[0] for item in run.items}), seed=5)
    events = list(behaviour_stream(users, run.items, 12, int(time.time() * 1000) - 600_000, seed=5, kind_mix=MIX))
    searches = sum(event.kind == "search" for event in events)
    assert searches > 0
    run.start()
    encoder = start_worker(encoder_settings, tmp_path / "encoder.log")
    try:
        run.produce(events)
        latest = run.final_recommendations(timeout_s=240)
        core_texts, encoder_texts = encoded_texts(CORE_PORT), encoded_texts(ENCODER_PORT)
    finally:
        stop_worker(encoder)
        run.stop()
    assert set(latest) == {user.user_id for user in users}, run.log_tail()
    assert all(len(rec["items"]) == 10 for rec in latest.values())
    assert encoder_texts == searches
    assert core_texts == len(run.items)
