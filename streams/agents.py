"""The core agents: thin adapters that move records between topics and call the pure libraries.

ingest (behaviour topics) -> windows -> [encode, streams.encode_agent] -> encoded -> weigh -> weights -> rank
-> recommendations. Stateful agents (ingest, weigh) handle one message at a time so every table write happens in
the context of the message's own partition; stateless agents (encode, rank) take batches.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
from aiokafka import ConsumerRecord

from sinks.online_model import UserEvent
from streams.agent_support import dead_letter_internal, f16_vector, now_ms, send_dead_letter
from streams.app import (
    app,
    encoded_topic,
    ingest_topic,
    recommendations_topic,
    runtime,
    settings,
    ticks_topic,
    weights_topic,
    windows_topic,
)
from streams.catalogue_follower import follow_catalogue
from streams.dead_letter import SourcePosition, dead_letter_record
from streams.ingest_routing import Rejected, route_event
from streams.windowing import WindowedEvent, decode_window, encode_window
from weighting.user_state import UserState
from weighting.weight_update import WeightUpdate

open_windows = app.Table("open-windows", key_type=str, value_type=bytes, partitions=settings.partitions)
user_states = app.Table("user-states", key_type=str, value_type=bytes, partitions=settings.partitions)


async def dead_letter_item(record: ConsumerRecord, reason: str) -> None:
    source = SourcePosition(record.topic, record.partition, record.offset)
    await send_dead_letter(reason, dead_letter_record(record.value, record.key, reason, source, int(now_ms())),
                           record.key, source)


@app.task
async def catalogue() -> None:
    await follow_catalogue(runtime, dead_letter_item)


async def flush_window(user_id: str, window: list[WindowedEvent]) -> None:
    """Sends the window and forgets it only once the broker acked it. The table delete is durable at once (local
    RocksDB, and its changelog tombstone may reach the broker first), so forgetting before the ack would lose the
    window's earlier events, whose offsets are already committed, if the worker died in between; a window sent
    twice is harmless (each user state ignores events it already applied)."""
    delivery = await windows_topic.send(key=user_id.encode(), value=encode_window(window))
    await delivery
    if user_id in open_windows:
        del open_windows[user_id]
    runtime.pending_windows.pop(user_id, None)
    runtime.metrics.window_flushes.inc()


@app.agent(ingest_topic)
async def ingest(stream):  # type: ignore[no-untyped-def]
    """Validates events, dead-letters the bad ones, and windows the good ones per user."""
    await runtime.catalogue_ready.wait()
    policy = runtime.window_policy
    async for event in stream.events():
        message = event.message
        arrived = now_ms()
        if message.topic == settings.ticks_topic:
            user_id = event.key.decode()
            window = decode_window(open_windows.get(user_id))
            if policy.is_due(window, arrived):
                await flush_window(user_id, window)
            continue
        source = SourcePosition(message.topic, message.partition, message.offset)
        routed = route_event(event.value, event.key, source, int(arrived), limits=runtime.limits,
                             catalogue=runtime.model.catalogue)
        if isinstance(routed, Rejected):
            await send_dead_letter(routed.reason, routed.record, event.key, source)
            continue
        parsed = routed.event
        runtime.metrics.events_in.labels(parsed.kind).inc()
        window = decode_window(open_windows.get(parsed.user_id))
        window.append(WindowedEvent(parsed, f"{source.topic}:{source.partition}:{source.offset}", arrived))
        if policy.is_due(window, arrived):
            await flush_window(parsed.user_id, window)
        else:
            open_windows[parsed.user_id] = encode_window(window)
            runtime.pending_windows.setdefault(parsed.user_id, window[0].arrived_ms)


@open_windows.on_recover
async def register_recovered_windows() -> None:
    """After recovery, windows left open by a previous run get their age-based flush again."""
    for user_id, raw in open_windows.items():
        window = decode_window(raw)
        if window:
            runtime.pending_windows.setdefault(user_id, window[0].arrived_ms)


@app.timer(interval=max(settings.window_max_wait_ms / 2000.0, 0.02))
async def tick_open_windows() -> None:
    """Asks ingest (through the partition that owns the window) to flush windows that waited too long."""
    now = now_ms()
    due = [user for user, first in runtime.pending_windows.items() if now - first >= settings.window_max_wait_ms]
    for user_id in due:
        runtime.pending_windows.pop(user_id, None)
        await ticks_topic.send(key=user_id.encode(), value=b"")


def apply_window(user_id: str, raw_state: bytes | None, payload: dict) -> tuple[UserState, WeightUpdate, int]:  # type: ignore[type-arg]
    """Runs the model over one window (in the encoder thread); returns the state, its update, events applied."""
    model = runtime.model
    state = UserState.from_bytes(raw_state) if raw_state else model.new_state()
    windowed = [WindowedEvent.from_dict(e) for e in payload["events"]]
    queries = payload["queries"]
    changed, applied = model.learn_batch({user_id: state}, [
        UserEvent(user_id, item.event.profile_event(),
                  f16_vector(queries[item.event.event_id]) if item.event.event_id in queries else None)
        for item in windowed
    ])
    state = changed.get(user_id, state)
    last = windowed[-1]
    update = replace(
        model.weight_update(user_id, state, max(item.event.ts for item in windowed)),
        trigger_event_id=last.event.event_id, arrived_ms=last.arrived_ms,
    )
    return state, update, applied


@app.agent(encoded_topic)
async def weigh(stream):  # type: ignore[no-untyped-def]
    """Updates each user's state from an encoded window and emits the user's WeightUpdate."""
    await runtime.catalogue_ready.wait()
    async for raw in stream:
        payload = orjson.loads(raw)
        user_id = payload["events"][0]["user_id"]
        try:
            state, update, applied = await runtime.in_encoder_thread(apply_window, user_id,
                                                                     user_states.get(user_id), payload)
        except Exception as error:
            await dead_letter_internal(raw, user_id.encode(), error, settings.encoded_topic)
            continue
        user_states[user_id] = state.to_bytes()
        runtime.metrics.events_applied.inc(applied)
        runtime.metrics.events_duplicate.inc(len(payload["events"]) - applied)
        await weights_topic.send(key=user_id.encode(), value=update.to_json())


@app.agent(weights_topic)
async def rank(stream):  # type: ignore[no-untyped-def]
    """Scores the catalogue for a batch of users at once and writes their top-k lists."""
    await runtime.catalogue_ready.wait()
    async for batch in stream.take(settings.batch_size, within=settings.batch_within_s):
        latest: dict[str, WeightUpdate] = {}
        for raw in batch:
            update = WeightUpdate.from_json(raw)
            if update.user_id not in latest or latest[update.user_id].version <= update.version:
                latest[update.user_id] = update
        try:
            recommendations = await runtime.in_encoder_thread(runtime.model.recommend, list(latest.values()),
                                                              settings.top_k)
        except Exception as error:
            for raw in batch:
                await dead_letter_internal(raw, None, error, settings.weights_topic)
            continue
        for recommendation, update in zip(recommendations, latest.values(), strict=True):
            record = replace(recommendation, latency_ms=round(now_ms() - update.arrived_ms, 3)).to_dict()
            await recommendations_topic.send(key=update.user_id.encode(), value=orjson.dumps(record))
            runtime.metrics.recommended([record["latency_ms"]])
            runtime.live_view.record(record)
