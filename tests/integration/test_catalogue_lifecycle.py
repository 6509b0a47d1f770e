"""The items topic's compaction on the real broker: a tombstone removes its item (on a running worker and after a
restart that replays the topic) and is no dead letter; an item whose text changed is encoded again."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace

import orjson
import pytest
from aiokafka import ConsumerRecord

from encoders.item_text import item_text
from streams.catalogue_follower import CatalogueError, follow_catalogue
from streams.demo import run_settings
from streams.events import BehaviorEvent, Item
from streams.kafka_clients import idempotent_producer
from streams.metrics import scrape
from streams.runtime import WorkerRuntime
from streams.settings import Settings
from streams.synthetic import SyntheticUser, behaviour_stream, make_users
from streams.topics_admin import ensure_topics
from tests.integration.harness import PipelineRun
from tests.unit.test_encoders import LetterEncoder
from weighting.user_update import ProfileEvent

pytestmark = pytest.mark.integration
WEB_PORT = 6176


def publish(settings: Settings, records: list[tuple[str, Item | None]]) -> None:
    """Sends items and tombstones (None) to the items topic, keyed by item id, in order."""
    producer = idempotent_producer(settings)
    for item_id, item in records:
        value = None if item is None else orjson.dumps(item.to_dict())
        producer.send(settings.items_topic, key=item_id.encode(), value=value)
    producer.flush()
    producer.close()


def worker_runtime(settings: Settings) -> tuple[WorkerRuntime, LetterEncoder]:
    runtime, letters = WorkerRuntime(settings), LetterEncoder()
    runtime.__dict__["encoder"] = letters
    return runtime, letters


async def follow_until(runtime: WorkerRuntime, done: Callable[[], bool], dead_letters: list[str],
                       timeout_s: float = 60) -> None:
    """Runs the catalogue follower until it caught up and `done()` holds; its dead letters' reasons are kept."""
    async def dead_letter(record: ConsumerRecord, reason: str) -> None:
        dead_letters.append(reason)

    follower = asyncio.ensure_future(follow_catalogue(runtime, dead_letter))
    deadline = time.monotonic() + timeout_s
    try:
        while not (runtime.catalogue_caught_up.is_set() and done()):
            if follower.done():
                follower.result()
            assert time.monotonic() < deadline, f"catalogue {sorted(runtime.model.catalogue.index)}, {dead_letters}"
            await asyncio.sleep(0.1)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower


def recommended(runtime: WorkerRuntime, seen: str) -> list[str]:
    """What a user who viewed `seen` is recommended from this worker's catalogue."""
    model = runtime.model
    state = model.learn("u", model.new_state(), ProfileEvent("u-1", "view", 10_000, seen))
    return [item.item_id for item in model.recommend([model.weight_update("u", state, 10_000)], 10)[0].items]


@pytest.mark.asyncio
async def test_tombstones_remove_items_and_changed_texts_are_encoded_again(kafka_bootstrap, unique_name, tmp_path,  # type: ignore[no-untyped-def]
                                                                           ) -> None:
    settings = run_settings(Settings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path), partitions=2),
                            unique_name("catalogue"))
    ensure_topics(settings)
    now = int(time.time() * 1000)
    jazz, bread, boots = Item("jazz", "a cab", now), Item("bread", "dd", now), Item("boots", "abcd", now)
    publish(settings, [("jazz", jazz), ("bread", bread), ("boots", boots), ("gone", None)])
    dead_letters: list[str] = []
    runtime, letters = worker_runtime(settings)
    await follow_until(runtime, lambda: runtime.model.catalogue.listed() == 3, dead_letters)
    catalogue = runtime.model.catalogue
    assert "gone" in catalogue.removed and "gone" not in catalogue
    assert sorted(recommended(runtime, "jazz")) == ["boots", "bread"]

    edited = replace(boots, text="a bad cab")
    publish(settings, [("bread", None), ("boots", edited)])
    await follow_until(runtime, lambda: "bread" not in runtime.model.catalogue, dead_letters)
    assert catalogue.listed() == 2 and "bread" in catalogue.index  # the row stays, out of the catalogue
    assert letters.calls[-1] == [item_text(edited.title, edited.text)]
    assert catalogue.vector("boots").tolist() == letters.encode([item_text(edited.title, edited.text)])[0].tolist()
    assert recommended(runtime, "jazz") == ["boots"]
    runtime.vector_cache.close()

    restarted, letters_after = worker_runtime(settings)
    await follow_until(restarted, lambda: restarted.model.catalogue.listed() == 2, dead_letters)
    catalogue = restarted.model.catalogue
    assert "bread" not in catalogue and "gone" not in catalogue and catalogue.listed() == 2
    assert catalogue.vector("boots").tolist() == letters.encode([item_text(edited.title, edited.text)])[0].tolist()
    assert letters_after.calls == []  # every text the replay met was cached
    assert recommended(restarted, "jazz") == ["boots"]

    publish(settings, [("bread", bread)])
    await follow_until(restarted, lambda: "bread" in restarted.model.catalogue, dead_letters)
    assert sorted(recommended(restarted, "jazz")) == ["boots", "bread"]
    restarted.vector_cache.close()
    assert dead_letters == []


@pytest.mark.asyncio
async def test_a_follower_whose_items_topic_does_not_exist_fails_naming_it(kafka_bootstrap, unique_name,  # type: ignore[no-untyped-def]
                                                                          tmp_path) -> None:
    settings = run_settings(Settings(bootstrap=kafka_bootstrap, data_dir=str(tmp_path)), unique_name("no-items"))
    runtime, _ = worker_runtime(settings)  # no topic created: the follower would hold an empty catalogue
    with pytest.raises(CatalogueError, match=f"the items topic {settings.items_topic} does not exist"):
        await follow_until(runtime, lambda: True, [], timeout_s=30)
    assert not runtime.catalogue_caught_up.is_set()


def events_after(users: list[SyntheticUser], items: list[Item], start_ts: int, prefix: str) -> list[BehaviorEvent]:
    """Three more events per user on `items`, from `start_ts`, their ids marked by `prefix`."""
    events = behaviour_stream(users, items, 3, start_ts, seed=len(prefix))
    return [replace(event, event_id=prefix + event.event_id) for event in events]


@pytest.mark.slow
def test_a_worker_never_recommends_a_tombstoned_item_again_even_after_a_restart(kafka_bootstrap, unique_name,  # type: ignore[no-untyped-def]
                                                                                tmp_path) -> None:
    run = PipelineRun.create(kafka_bootstrap, unique_name("tombstones"), tmp_path, web_port=WEB_PORT)
    users = make_users(8, sorted({tag for item in run.items for tag in item.tags}), seed=5)
    start = int(time.time() * 1000) - 600_000
    run.start()
    try:
        run.produce(behaviour_stream(users, run.items, 6, start, seed=5))
        first = run.final_recommendations(timeout_s=240)
        assert len(first) == len(users), run.log_tail()
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/ready", timeout=10) as ready:
            assert (ready.status, orjson.loads(ready.read())) == (200, {"ready": True, "waiting_for": []})
        doomed = {item["item_id"] for rec in first.values() for item in rec["items"][:3]}
        edited = next(replace(item, text="now a cookbook of sourdough bread") for item in run.items
                      if item.item_id not in doomed)
        encoded_before = scrape(WEB_PORT)[("driftrec_items_encoded_total", ())]
        publish(run.settings, [*((item_id, None) for item_id in sorted(doomed)), (edited.item_id, edited)])
        listed = len(run.items) - len(doomed)
        assert run.wait_for_metric("driftrec_catalogue_items", listed, timeout_s=60) == listed
        assert run.wait_for_metric("driftrec_items_encoded_total", encoded_before + 1, 30) == encoded_before + 1
        kept = [item for item in run.items if item.item_id not in doomed]
        run.produce(events_after(users, kept, start + 120_000, "after-"))
        assert len(run.final_recommendations(timeout_s=240)) == len(users), run.log_tail()
        run.stop()
        run.start()
        run.produce(events_after(users, kept, start + 240_000, "restarted-"))
        assert len(run.final_recommendations(timeout_s=240)) == len(users), run.log_tail()
        assert run.wait_for_metric("driftrec_catalogue_items", listed, timeout_s=10) == listed
        recommendations = run.read_all(run.settings.recommendations_topic)
        dead_letters = run.read_all(run.settings.dead_letter_topic)
    finally:
        run.stop()
    later = [rec for rec in recommendations if rec["trigger_event_id"].startswith(("after-", "restarted-"))]
    assert {rec["user_id"] for rec in later if rec["trigger_event_id"].startswith("restarted-")} == set(first)
    assert not doomed & {item["item_id"] for rec in later for item in rec["items"]}
    assert dead_letters == []
