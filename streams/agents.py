"""The core agents: thin adapters that move records between topics and call the pure libraries.

ingest (behaviour topics) -> windows -> [encode, streams.encode_agent] -> encoded -> weigh -> weights -> rank
-> recommendations. Every stage takes batches. Every table write happens in the context of a message of the key's
own partition: ingest and weigh write each user's window or state in the context of that user's last message in
the batch (a user's messages all share one partition).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import orjson
from aiokafka import ConsumerRecord
from faust.types import EventT

from sinks.online_model import UserEvent
from streams.agent_support import (
    dead_letter_internal,
    f16_vector,
    in_batch_or_one_by_one,
    now_ms,
    send_dead_letter,
)
from streams.app import (
    app,
    encoded_topic,
    ingest_topic,
    owned_stage_partitions,
    recommendations_topic,
    runtime,
    settings,
    ticks_topic,
    weights_topic,
    windows_topic,
)
from streams.catalogue_follower import follow_catalogue
from streams.dead_letter import SourcePosition, dead_letter_record
from streams.faust_transport import in_event_context, of_current_generation
from streams.ingest_routing import Rejected, route_event
from streams.windowing import WindowBatch, WindowedEvent, decode_window, encode_window, source_partition
from weighting.user_state import UserState
from weighting.weight_update import WeightUpdate

log = logging.getLogger(__name__)
open_windows = app.Table("open-windows", key_type=str, value_type=bytes, partitions=settings.partitions)
user_states = app.Table("user-states", key_type=str, value_type=bytes, partitions=settings.partitions)


async def dead_letter_item(record: ConsumerRecord, reason: str) -> None:
    source = SourcePosition.of(record)
    await send_dead_letter(reason, dead_letter_record(record.value, record.key, reason, source, int(now_ms())),
                           record.key, source)


@app.task
async def catalogue() -> None:
    await follow_catalogue(runtime, dead_letter_item)


async def ingest_batch(events: Sequence[EventT]) -> None:
    """Windows a batch of events per user and flushes, in the context of a message of their partition, the
    windows that are due: by size or a strong event, by age (any open window of a partition in the batch), or on a
    tick. Sends them and waits for the broker's acks, then stores each window it looked at in the context of that
    user's last message here (or of a message of its partition).

    A stored window is replaced only once its flush is acked: the store is durable at once (local RocksDB, and its
    changelog record may reach the broker first), so replacing it before the ack would lose the window's earlier
    events, whose offsets are already committed, if the worker died in between. A window sent twice is harmless
    (each user state ignores events it already applied)."""
    batch = WindowBatch(runtime.window_policy, lambda user_id: decode_window(open_windows.get(user_id)))
    context: dict[str, EventT] = {}  # the message in whose context each user's window is read and written
    for event in events:
        message = event.message
        arrived = now_ms()
        if message.topic == settings.ticks_topic:
            user_id = event.key.decode()
            with in_event_context(event):
                batch.flush_if_due(user_id, arrived)
            context[user_id] = event
            continue
        source = SourcePosition.of(message)
        routed = route_event(event.value, event.key, source, int(arrived), limits=runtime.limits,
                             catalogue=runtime.model.catalogue)
        if isinstance(routed, Rejected):
            await send_dead_letter(routed.reason, routed.record, event.key, source)
            continue
        parsed = routed.event
        runtime.metrics.events_in.labels(parsed.kind).inc()
        with in_event_context(event):
            batch.add(WindowedEvent(parsed, f"{source.topic}:{source.partition}:{source.offset}", arrived))
        context[parsed.user_id] = event
    flush_aged_windows(batch, {event.message.partition: event for event in events}, context)
    deliveries = [await windows_topic.send(key=user_id.encode(), value=encode_window(window))
                  for user_id, window in batch.flushed]
    await asyncio.gather(*deliveries)
    runtime.metrics.window_flushes.inc(len(deliveries))
    if not all(of_current_generation(app, event.message) for event in context.values()):
        log.info("a rebalance began while %d events were windowed; they will be fetched again", len(events))
        return
    for user_id, window in batch.windows.items():
        partition = context[user_id].message.partition
        if user_id in batch.changed:
            with in_event_context(context[user_id]):
                if window:
                    open_windows[user_id] = encode_window(window)
                elif user_id in open_windows:
                    del open_windows[user_id]
        if window:
            runtime.pending_windows.opened(partition, user_id, window[0].arrived_ms + settings.window_max_wait_ms)
        else:
            runtime.pending_windows.closed(partition, user_id)


def flush_aged_windows(batch: WindowBatch, by_partition: Mapping[int, EventT], context: dict[str, EventT]) -> None:
    """Flushes the windows that waited long enough on each partition the batch has a message of, in the context
    of that message (a window's table partition is its input partition)."""
    now = now_ms()
    for partition, event in by_partition.items():
        for user_id in runtime.pending_windows.due(partition, now):
            if user_id not in context:
                context[user_id] = event
                with in_event_context(event):
                    batch.flush_if_due(user_id, now)


async def dead_letter_ingest(event: EventT, error: Exception) -> None:
    await dead_letter_internal(event.value, event.key, error, SourcePosition.of(event.message))


@app.agent(ingest_topic)
async def ingest(stream):  # type: ignore[no-untyped-def]
    """Validates events, dead-letters the bad ones, and windows the good ones per user, a batch at a time.
    Messages buffered before a rebalance are left to be fetched again (see `weigh`)."""
    await runtime.catalogue_ready.wait()
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        current = [event for event in events if of_current_generation(app, event.message)]
        if current:
            await in_batch_or_one_by_one(ingest_batch, current, dead_letter_ingest)


@open_windows.on_recover
async def register_recovered_windows() -> None:
    """After recovery, windows left open by a previous run get their age-based flush again."""
    for user_id, raw in open_windows.items():
        window = decode_window(raw)
        if window:
            runtime.pending_windows.opened(source_partition(window), user_id,
                                           window[0].arrived_ms + settings.window_max_wait_ms)


@app.timer(interval=max(settings.window_max_wait_ms / 4000.0, 0.02))
async def tick_open_windows() -> None:
    """Asks ingest, through the partition that owns the window, to flush windows that waited too long on a
    partition with no message to flush them on; asks again until ingest stores the window flushed."""
    owned = {tp.partition for tp in owned_stage_partitions() if tp.topic == settings.ticks_topic}
    grace_ms = max(settings.window_max_wait_ms / 4.0, 20.0)
    for user_id in runtime.pending_windows.to_tick(now_ms(), grace_ms, owned):
        await ticks_topic.send(key=user_id.encode(), value=b"")


def apply_windows(
    raw_states: Mapping[str, bytes | None], windows: Sequence[tuple[str, dict]]  # type: ignore[type-arg]
) -> tuple[dict[str, UserState], dict[str, WeightUpdate], int]:
    """Runs the model over windows in order, several users at once (in the encoder thread); returns each user's
    state and one WeightUpdate per user (as of the user's last event in the batch), and how many events applied."""
    model = runtime.model
    states = {user_id: UserState.from_bytes(raw) if raw else model.new_state() for user_id, raw in raw_states.items()}
    events: list[UserEvent] = []
    last: dict[str, WindowedEvent] = {}
    latest_ts: dict[str, int] = {}
    for user_id, payload in windows:
        queries = payload["queries"]
        for item in map(WindowedEvent.from_dict, payload["events"]):
            event_id = item.event.event_id
            events.append(UserEvent(user_id, item.event.profile_event(),
                                    f16_vector(queries[event_id]) if event_id in queries else None))
            last[user_id] = item
            latest_ts[user_id] = max(latest_ts.get(user_id, item.event.ts), item.event.ts)
    changed, applied = model.learn_batch(states, events)
    states.update(changed)
    updates = {
        user_id: replace(model.weight_update(user_id, states[user_id], latest_ts[user_id]),
                         trigger_event_id=item.event.event_id, arrived_ms=item.arrived_ms)
        for user_id, item in last.items()
    }
    return states, updates, applied


async def weigh_batch(windows: Sequence[tuple[EventT, str, dict]]) -> None:  # type: ignore[type-arg]
    """Applies a batch of windows in one hop to the encoder thread, then writes each user's state in the context
    of that user's last message (its partition's store and changelog) and sends one WeightUpdate per user."""
    last_message = {user_id: event for event, user_id, _ in windows}
    raw_states = {}
    for user_id, event in last_message.items():
        with in_event_context(event):
            raw_states[user_id] = user_states.get(user_id)
    states, updates, applied = await runtime.in_encoder_thread(
        apply_windows, raw_states, [(user_id, payload) for _, user_id, payload in windows])
    if not all(of_current_generation(app, event.message) for event in last_message.values()):
        log.info("a rebalance began while %d windows were applied; they will be fetched again", len(windows))
        return
    for user_id, update in updates.items():
        with in_event_context(last_message[user_id]):
            user_states[user_id] = states[user_id].to_bytes()
        await weights_topic.send(key=user_id.encode(), value=update.to_json())
    runtime.metrics.events_applied.inc(applied)
    runtime.metrics.events_duplicate.inc(sum(len(payload["events"]) for *_, payload in windows) - applied)


@app.agent(encoded_topic)
async def weigh(stream):  # type: ignore[no-untyped-def]
    """Updates users' states from batches of encoded windows and emits their WeightUpdates. Faust acks a batch's
    messages only after this step returns, so a crash mid-batch redelivers them (state ignores applied events).
    A batch that fails is applied one window at a time; a window that still fails is dead-lettered.

    Faust's rebalance empties the agents' queues but not what `take_events` already buffered, so a batch may hold
    messages of an earlier generation: those are left to be fetched again, as Faust's own iterator leaves them,
    and a batch during which a rebalance began writes nothing (its acks would be refused anyway)."""
    await runtime.catalogue_ready.wait()
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        windows = []
        for event in events:
            if not of_current_generation(app, event.message):
                continue  # buffered before a rebalance: fetched again from the committed offset
            try:
                payload = orjson.loads(event.value)
                windows.append((event, payload["events"][0]["user_id"], payload))
            except Exception as error:
                await dead_letter_internal(event.value, event.key, error, SourcePosition.of(event.message))
        if not windows:
            continue
        await in_batch_or_one_by_one(weigh_batch, windows, dead_letter_window)


async def dead_letter_window(window: tuple[EventT, str, dict], error: Exception) -> None:  # type: ignore[type-arg]
    await dead_letter_internal(window[0].value, window[0].key, error, SourcePosition.of(window[0].message))


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
                await dead_letter_internal(raw, None, error, SourcePosition.unknown(settings.weights_topic))
            continue
        for recommendation, update in zip(recommendations, latest.values(), strict=True):
            record = replace(recommendation, latency_ms=round(now_ms() - update.arrived_ms, 3)).to_dict()
            await recommendations_topic.send(key=update.user_id.encode(), value=orjson.dumps(record))
            runtime.metrics.recommended([record["latency_ms"]])
            runtime.live_view.record(record)
