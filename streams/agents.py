"""The core agents: thin adapters that move records between topics and call the pure libraries.

ingest (behaviour topics) -> windows -> [encode, streams.encode_agent] -> encoded -> weigh -> weights and
recommendations. Every stage takes batches; a table write is made in the context of a message from the key's own
partition, so that its changelog record goes to that partition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson
from aiokafka import ConsumerRecord
from faust.types import EventT

from sinks.online_model import UserEvent
from sinks.recommendation import UserRecommendation
from streams.agent_support import dead_letter_internal, f16_vector, in_partition_of, now_ms, send_dead_letter
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
    await windows_topic.send(key=user_id.encode(), value=encode_window(window))
    runtime.pending_windows.pop(user_id, None)
    runtime.metrics.window_flushes.inc()


class BatchWindows:
    """The open windows one ingest batch touches: each read from the table once and written back once, in the
    partition of the user's last message in the batch."""

    def __init__(self) -> None:
        self.windows: dict[str, list[WindowedEvent]] = {}
        self.last_event: dict[str, EventT] = {}

    def of(self, user_id: str, event: EventT) -> list[WindowedEvent]:
        self.last_event[user_id] = event
        if user_id not in self.windows:
            with in_partition_of(event):
                self.windows[user_id] = decode_window(open_windows.get(user_id))
        return self.windows[user_id]

    def flushed(self, user_id: str) -> None:
        self.windows[user_id] = []

    def write_back(self) -> None:
        for user_id, window in self.windows.items():
            with in_partition_of(self.last_event[user_id]):
                if window:
                    open_windows[user_id] = encode_window(window)
                    runtime.pending_windows.setdefault(user_id, window[0].arrived_ms)
                elif user_id in open_windows:
                    del open_windows[user_id]


@app.agent(ingest_topic)
async def ingest(stream):  # type: ignore[no-untyped-def]
    """Validates events, dead-letters the bad ones, and windows the good ones per user, a batch at a time; a
    window that is due is sent on at once."""
    await runtime.catalogue_ready.wait()
    policy = runtime.window_policy
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        batch = BatchWindows()
        for event in events:
            message = event.message
            arrived = now_ms()
            if message.topic == settings.ticks_topic:
                user_id = event.key.decode()
                window = batch.of(user_id, event)
            else:
                source = SourcePosition(message.topic, message.partition, message.offset)
                routed = route_event(event.value, event.key, source, int(arrived), limits=runtime.limits,
                                     catalogue=runtime.model.catalogue)
                if isinstance(routed, Rejected):
                    await send_dead_letter(routed.reason, routed.record, event.key, source)
                    continue
                parsed = routed.event
                user_id = parsed.user_id
                runtime.metrics.events_in.labels(parsed.kind).inc()
                window = batch.of(user_id, event)
                window.append(WindowedEvent(parsed, f"{source.topic}:{source.partition}:{source.offset}", arrived))
            if policy.is_due(window, arrived):
                await flush_window(user_id, window)
                batch.flushed(user_id)
        batch.write_back()


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


@dataclass(frozen=True)
class UserOutput:
    """What one batch produced for one user: the new state (None when unchanged), its update and top-k list."""

    user_id: str
    state: UserState | None
    update: WeightUpdate
    recommendation: UserRecommendation


def weigh_windows(raw_states: dict[str, bytes | None], windows: list[dict]) -> tuple[list[UserOutput], int]:  # type: ignore[type-arg]
    """Runs the model over a batch of encoded windows (in the encoder thread): learns every event in order,
    then ranks once for every user the batch touched. Returns the outputs and how many events were applied."""
    model = runtime.model
    states = {user_id: UserState.from_bytes(raw) for user_id, raw in raw_states.items() if raw}
    events, last = [], {}
    for payload in windows:
        windowed = [WindowedEvent.from_dict(e) for e in payload["events"]]
        for item in windowed:
            query = payload["queries"].get(item.event.event_id)
            events.append(UserEvent(item.event.user_id, item.event.profile_event(),
                                    f16_vector(query) if query else None))
        last[windowed[-1].event.user_id] = windowed
    changed, applied = model.learn_batch(states, events)
    states.update(changed)
    updates = [
        replace(model.weight_update(user_id, states.get(user_id) or model.new_state(),
                                    max(item.event.ts for item in windowed)),
                trigger_event_id=windowed[-1].event.event_id, arrived_ms=windowed[-1].arrived_ms)
        for user_id, windowed in last.items()
    ]
    recommendations = model.recommend(updates, settings.top_k)
    return [
        UserOutput(update.user_id, changed.get(update.user_id), update, recommendation)
        for update, recommendation in zip(updates, recommendations, strict=True)
    ], applied


@app.agent(encoded_topic)
async def weigh(stream):  # type: ignore[no-untyped-def]
    """Learns from a batch of encoded windows, then writes each touched user's weights and top-k list."""
    await runtime.catalogue_ready.wait()
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        windows, last_event = [], {}
        for event in events:
            try:
                payload = orjson.loads(event.value)
                user_id = payload["events"][0]["user_id"]
            except Exception as error:
                await dead_letter_internal(event.value, event.key, error, settings.encoded_topic)
                continue
            windows.append(payload)
            last_event[user_id] = event
        raw_states = {}
        for user_id, event in last_event.items():
            with in_partition_of(event):
                raw_states[user_id] = user_states.get(user_id)
        try:
            outputs, applied = await runtime.in_encoder_thread(weigh_windows, raw_states, windows)
        except Exception as error:
            for event in events:
                await dead_letter_internal(event.value, event.key, error, settings.encoded_topic)
            continue
        runtime.metrics.events_applied.inc(applied)
        runtime.metrics.events_duplicate.inc(sum(len(w["events"]) for w in windows) - applied)
        for output in outputs:
            if output.state is not None:
                with in_partition_of(last_event[output.user_id]):
                    user_states[output.user_id] = output.state.to_bytes()
            key = output.user_id.encode()
            await weights_topic.send(key=key, value=output.update.to_json())
            record = replace(output.recommendation, latency_ms=round(now_ms() - output.update.arrived_ms, 3)).to_dict()
            await recommendations_topic.send(key=key, value=orjson.dumps(record))
            runtime.metrics.recommended([record["latency_ms"]])
            runtime.live_view.record(record)
