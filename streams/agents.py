"""The agents: thin adapters that move records between topics and call the pure libraries.

ingest (behaviour topics) -> windows -> encode -> encoded -> weigh -> weights -> rank -> recommendations.
Stateful agents (ingest, weigh) handle one message at a time so every table write happens in the context of
the message's own partition; stateless agents (encode, rank) take batches.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import replace

import numpy as np
import orjson
from aiokafka import ConsumerRecord

from encoders.cached_encoding import encode_queries
from streams.app import (
    app,
    dead_letter_topic,
    encoded_topic,
    ingest_topic,
    open_windows,
    recommendations_topic,
    runtime,
    settings,
    ticks_topic,
    user_states,
    weights_topic,
    windows_topic,
)
from streams.catalogue_follower import follow_catalogue
from streams.dead_letter import SourcePosition, dead_letter_record
from streams.ingest_routing import Rejected, route_event
from streams.windowing import WindowedEvent, decode_window, encode_window
from weighting.user_state import UserState
from weighting.weight_update import WeightUpdate

log = logging.getLogger(__name__)


def now_ms() -> float:
    return time.time() * 1000.0


async def send_dead_letter(reason: str, record: bytes, key: bytes | None, source: SourcePosition) -> None:
    """Writes the record to the dead-letter topic and waits for the broker's ack before the source is acked."""
    runtime.metrics.dead_lettered(reason)
    log.warning("dead-lettered %s[%s]@%s: %s", source.topic, source.partition, source.offset, reason)
    delivery = await dead_letter_topic.send(key=key, value=record)
    await delivery


async def dead_letter_internal(raw: bytes, key: bytes | None, error: Exception, topic: str) -> None:
    """A message a stage failed on goes to the dead-letter topic (never silently dropped) and is counted."""
    log.exception("stage failed on a message from %s", topic)
    source = SourcePosition(topic, -1, -1)
    reason = f"internal error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    await send_dead_letter(reason, dead_letter_record(raw, key, reason, source, int(now_ms())), key, source)


async def dead_letter_item(record: ConsumerRecord, reason: str) -> None:
    source = SourcePosition(record.topic, record.partition, record.offset)
    await send_dead_letter(reason, dead_letter_record(record.value, record.key, reason, source, int(now_ms())),
                           record.key, source)


@app.task
async def catalogue() -> None:
    await follow_catalogue(runtime, dead_letter_item)


async def flush_window(user_id: str, window: list[WindowedEvent]) -> None:
    await windows_topic.send(key=user_id.encode(), value=encode_window(window))
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


def f16_text(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype(np.float16).tobytes()).decode()


def f16_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)


def timed_query_encoding(queries: list[str]) -> np.ndarray:
    started = time.perf_counter()
    vectors = encode_queries(queries, runtime.encoder)
    runtime.metrics.encoded(len(queries), time.perf_counter() - started)
    return vectors


@app.agent(windows_topic)
async def encode(stream):  # type: ignore[no-untyped-def]
    """Encodes the search queries of a batch of windows in one encoder call."""
    await runtime.catalogue_ready.wait()
    async for batch in stream.take(settings.batch_size, within=settings.batch_within_s):
        windows = [orjson.loads(raw) for raw in batch]
        searches = [(e["event_id"], e["query"]) for w in windows for e in w if e["kind"] == "search"]
        try:
            vectors = await runtime.in_encoder_thread(timed_query_encoding, [q for _, q in searches])
        except Exception as error:
            for raw in batch:
                await dead_letter_internal(raw, None, error, settings.windows_topic)
            continue
        by_event = {event_id: f16_text(v) for (event_id, _), v in zip(searches, vectors, strict=True)}
        for window in windows:
            queries = {e["event_id"]: by_event[e["event_id"]] for e in window if e["event_id"] in by_event}
            payload = orjson.dumps({"events": window, "queries": queries})
            await encoded_topic.send(key=window[0]["user_id"].encode(), value=payload)


def apply_window(user_id: str, raw_state: bytes | None, payload: dict) -> tuple[UserState, WeightUpdate, int]:  # type: ignore[type-arg]
    """Runs the model over one window (in the encoder thread); returns the state, its update, events applied."""
    model = runtime.model
    state = UserState.from_bytes(raw_state) if raw_state else model.new_state()
    applied = 0
    windowed = [WindowedEvent.from_dict(e) for e in payload["events"]]
    for item in windowed:
        event = item.event
        query = payload["queries"].get(event.event_id)
        new_state = model.learn(
            user_id, state, event.profile_event(),
            f16_vector(query) if query else None,
        )
        applied += new_state is not state
        state = new_state
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
