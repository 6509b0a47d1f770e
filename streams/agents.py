"""The core agents: thin adapters that move records between topics and call the pure libraries.

ingest (behaviour topics) -> windows -> [encode, streams.encode_agent] -> encoded -> weigh -> weights and
recommendations. Every table write happens in the context of a message of the key's own partition: ingest
handles one message at a time; weigh takes batches and writes each user's state in the context of that user's
last message in the batch (a user's messages all share one partition). encode takes batches too. weigh ranks
the users it updated in the same step (the sink's batched scorer), so a window costs no hop through the weights
topic, which is an output like the recommendations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import orjson
from aiokafka import ConsumerRecord
from faust.types import EventT

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
from streams.faust_transport import in_event_context, of_current_generation
from streams.ingest_routing import Rejected, route_event
from streams.windowing import WindowedEvent, decode_window, encode_window, source_partition
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


async def flush_window(partition: int, user_id: str, window: list[WindowedEvent]) -> None:
    """Sends the window and forgets it only once the broker acked it. The table delete is durable at once (local
    RocksDB, and its changelog tombstone may reach the broker first), so forgetting before the ack would lose the
    window's earlier events, whose offsets are already committed, if the worker died in between; a window sent
    twice is harmless (each user state ignores events it already applied). A send that fails leaves what the
    table holds of the window armed for another age-based flush (it was taken off to be flushed)."""
    try:
        delivery = await windows_topic.send(key=user_id.encode(), value=encode_window(window))
        await delivery
    except Exception:
        runtime.pending_windows.opened(partition, user_id, window[0].arrived_ms)
        raise
    if user_id in open_windows:
        del open_windows[user_id]
    runtime.pending_windows.closed(partition, user_id)
    runtime.metrics.window_flushes.inc()


@app.agent(ingest_topic)
async def ingest(stream):  # type: ignore[no-untyped-def]
    """Validates events, dead-letters the bad ones, and windows the good ones per user; after each message, flushes
    the windows of its partition that waited long enough. An event the stage fails on is dead-lettered with the
    error, and the stream goes on."""
    await runtime.catalogue_ready.wait()
    async for event in stream.events():
        message, arrived = event.message, now_ms()
        ticked = [event.key.decode()] if message.topic == settings.ticks_topic else []
        if not ticked:
            try:
                await ingest_one(event, arrived)
            except Exception as error:
                await dead_letter_internal(event.value, event.key, error, SourcePosition.of(message))
        due = runtime.pending_windows.take_due(message.partition, arrived, settings.window_max_wait_ms)
        await flush_due(message.partition, list(dict.fromkeys(ticked + due)), arrived)


async def flush_due(partition: int, users: list[str], now: float) -> None:
    """Flushes the windows of `users` (of `partition`, taken off the pending ones) that are due; a window not due
    yet (a newer one than its tick was for) is armed again. A failure leaves the rest armed, due at once: the
    message being handled is fine, and the windows' events are kept in the table."""
    for n, user_id in enumerate(users):
        try:
            window = decode_window(open_windows.get(user_id))
            if runtime.window_policy.is_due(window, now):
                await flush_window(partition, user_id, window)
            elif window:
                runtime.pending_windows.opened(partition, user_id, window[0].arrived_ms)
        except Exception:
            log.warning("flushing %d due windows of partition %d failed; they stay armed", len(users) - n, partition,
                        exc_info=True)
            for later in users[n + 1:]:
                runtime.pending_windows.opened(partition, later, now - settings.window_max_wait_ms)
            return


async def ingest_one(event: EventT, arrived: float) -> None:
    """One behaviour event into its user's window (flushed at once when that makes it due)."""
    policy = runtime.window_policy
    message = event.message
    source = SourcePosition.of(message)
    routed = route_event(event.value, event.key, source, int(arrived), limits=runtime.limits,
                         catalogue=runtime.model.catalogue)
    if isinstance(routed, Rejected):
        await send_dead_letter(routed.reason, routed.record, event.key, source)
        return
    parsed = routed.event
    runtime.metrics.events_in.labels(parsed.kind).inc()
    window = decode_window(open_windows.get(parsed.user_id))
    window.append(WindowedEvent(parsed, f"{source.topic}:{source.partition}:{source.offset}", arrived))
    if policy.is_due(window, arrived):
        await flush_window(message.partition, parsed.user_id, window)
    else:
        open_windows[parsed.user_id] = encode_window(window)
        runtime.pending_windows.opened(message.partition, parsed.user_id, window[0].arrived_ms)


@open_windows.on_recover
async def register_recovered_windows() -> None:
    """After recovery, windows left open by a previous run get their age-based flush again."""
    for user_id, raw in open_windows.items():
        window = decode_window(raw)
        if window:
            runtime.pending_windows.opened(source_partition(window), user_id, window[0].arrived_ms)


@app.timer(interval=max(settings.window_max_wait_ms / 2000.0, 0.02))
async def tick_open_windows() -> None:
    """Asks ingest, through the partition that owns the window, to flush windows that waited too long in a
    partition with no message to flush them on. All are taken before the first send: a send yields, and ingest may
    open a new window meanwhile (its tick then finds it not due and arms it again)."""
    quiet_ms = max(settings.window_max_wait_ms / 4.0, 20.0)
    for user_id in runtime.pending_windows.take_quiet_due(now_ms(), settings.window_max_wait_ms, quiet_ms):
        await ticks_topic.send(key=user_id.encode(), value=b"")


if settings.shared_snapshot_s > 0:

    @app.timer(interval=settings.shared_snapshot_s)
    async def snapshot_shared_signals() -> None:
        """Keeps the model's shared signals across restarts (`sinks.shared_snapshot`)."""
        if runtime.catalogue_ready.is_set():
            size = await runtime.in_encoder_thread(runtime.save_shared_signals)
            log.debug("shared signals: snapshot of %d bytes written", size)

    @app.on_before_shutdown.connect
    async def snapshot_shared_signals_at_stop(sender: object, **kwargs: object) -> None:
        """A worker that stops cleanly resumes with everything it learned (the consumer has stopped by now)."""
        if runtime.catalogue_ready.is_set():
            await runtime.in_encoder_thread(runtime.save_shared_signals)
            log.info("shared signals: snapshot written at stop")


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
    runtime.metrics.shared_events.set(runtime.model.fed.total)
    runtime.metrics.events_duplicate.inc(sum(len(payload["events"]) for *_, payload in windows) - applied)
    await rank(updates, last_message)


async def rank(updates: Mapping[str, WeightUpdate], sources: Mapping[str, EventT]) -> None:
    """Scores the catalogue for the updated users at once and writes their top-k lists. A batch the scorer fails
    on dead-letters each user's WeightUpdate (the state is already written), sourced at the user's last window."""
    try:
        recommendations = await runtime.in_encoder_thread(runtime.model.recommend, list(updates.values()),
                                                          settings.top_k)
    except Exception as error:
        for user_id, update in updates.items():
            await dead_letter_internal(update.to_json(), user_id.encode(), error,
                                       SourcePosition.of(sources[user_id].message))
        return
    for recommendation, update in zip(recommendations, updates.values(), strict=True):
        record = replace(recommendation, latency_ms=round(now_ms() - update.arrived_ms, 3)).to_dict()
        await recommendations_topic.send(key=update.user_id.encode(), value=orjson.dumps(record))
        runtime.metrics.recommended([record["latency_ms"]])
        runtime.live_view.record(record)


@app.agent(encoded_topic)
async def weigh(stream):  # type: ignore[no-untyped-def]
    """Updates users' states from batches of encoded windows, emits their WeightUpdates and ranks them. Faust
    acks a batch's messages only after this step returns, so a crash mid-batch redelivers them (state ignores
    applied events).
    A batch that fails is retried one window at a time; a window that still fails is dead-lettered.

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
        try:
            await weigh_batch(windows)
        except Exception:
            log.warning("a batch of %d windows failed; applying them one at a time", len(windows))
            for window in windows:
                try:
                    await weigh_batch([window])
                except Exception as error:
                    await dead_letter_internal(window[0].value, window[0].key, error,
                                               SourcePosition.of(window[0].message))
