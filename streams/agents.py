"""The core agents: thin adapters that move records between topics and call the pure libraries.

A worker that runs every stage (`CHAINS_STAGES`) has one path for a window: ingest windows a batch of events per
user and, in the same step, encodes the queries of the windows it flushes, applies them to the users' states and
ranks those users, the windows held in memory as records and arrays. Topics carry windows only across a role
boundary: a `core` worker sends its flushed windows to the encoder pool and weighs what comes back
(`streams.weigh_agent`). Every table write happens in the context of a message of the key's own partition: each
user's window or state is written in the context of the last message of that user's partition in the batch (a
user's messages all share one partition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import orjson
from aiokafka import ConsumerRecord
from faust.types import EventT

from sinks.online_model import UserEvent
from sinks.recommendation import UserRecommendation
from sinks.shared_increments import SharedIncrement
from streams.agent_support import (
    dead_letter_internal,
    in_batch_or_one_by_one,
    now_ms,
    send_dead_letter,
    stopped_before_ack_on_failure,
)
from streams.app import (
    app,
    ingest_topic,
    recommendations_topic,
    runtime,
    settings,
    shared_topic,
    ticks_topic,
    weights_topic,
    windows_topic,
)
from streams.catalogue_follower import follow_catalogue
from streams.dead_letter import SourcePosition, dead_letter_record
from streams.events import EXPOSURE_KINDS
from streams.faust_transport import AckedTable, RawTopic, in_event_context, of_current_generation
from streams.ingest_routing import Rejected, route_event
from streams.liveness import exit_if_failed
from streams.query_encoding import encoded_windows
from streams.shared_log import follow_shared_log
from streams.windowing import (
    EncodedWindow,
    WindowBatch,
    WindowedEvent,
    decode_window,
    encode_window,
    source_partition,
)
from weighting.user_state import UserState
from weighting.weight_update import WeightUpdate

log = logging.getLogger(__name__)
CHAINS_STAGES = settings.role == "all"
"""A worker that runs every stage chains them, as a stream processor chains the operators of one key: ingest encodes
the queries of the windows it flushes, applies them to the users' states and ranks those users in its own step."""
open_windows = cast(AckedTable, app.Table("open-windows", key_type=str, value_type=bytes,
                                          partitions=settings.partitions))
user_states = cast(AckedTable, app.Table("user-states", key_type=str, value_type=bytes,
                                         partitions=settings.partitions))


async def dead_letter_item(record: ConsumerRecord, reason: str) -> None:
    source = SourcePosition.of(record)
    await send_dead_letter(reason, dead_letter_record(record.value, record.key, reason, source, int(now_ms())),
                           record.key, source)


@app.task
async def catalogue() -> None:
    await exit_if_failed("catalogue follower", follow_catalogue(runtime, dead_letter_item))


@app.task
async def shared_signals() -> None:
    await exit_if_failed("shared log follower", follow_shared_log(runtime))


@app.agent(ingest_topic)
async def ingest(stream):  # type: ignore[no-untyped-def]
    """Validates events, dead-letters the bad ones, and windows the good ones per user, a batch at a time; each
    batch also flushes the windows of its partitions that waited long enough. A batch that fails is windowed one
    message at a time; a message that still fails is dead-lettered. Messages buffered before a rebalance are left
    to be fetched again (`each_current_batch`)."""
    await runtime.model_ready.wait()
    await each_current_batch(stream, "ingest", ingest_batch)


async def each_current_batch(stream: Any, stage: str,
                             step: Callable[[Sequence[EventT]], Awaitable[None]]) -> None:  # type: ignore[type-arg]
    """Runs `step` on each batch the stream takes, without the messages of an earlier consumer generation (they
    are fetched again: Faust's rebalance empties the agents' queues but not what `take_events` already buffered):
    on the whole batch, else one message at a time, a message that still fails dead-lettered.
    An error that escapes (a failure to dead-letter) stops the worker before the batch's ack."""
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        current = [event for event in events if of_current_generation(app, event.message)]
        if current:
            with stopped_before_ack_on_failure(stage):
                await in_batch_or_one_by_one(step, current, dead_letter_event)


async def dead_letter_event(event: EventT, error: Exception) -> None:  # type: ignore[type-arg]
    await dead_letter_internal(event.value, event.key, error, SourcePosition.of(event.message))


async def ingest_batch(events: Sequence[EventT]) -> None:  # type: ignore[type-arg]
    """Windows a batch of events (and tick messages) per user, flushes the due windows (sends them, or weighs and
    ranks them: `CHAINS_STAGES`) and waits for the broker's acks at once, then stores each changed window in the
    context of the last message of its partition.

    A stored window is replaced only once its flush is acked: the store is durable at once (local RocksDB, and its
    changelog record may reach the broker first), so replacing it before the ack would lose the window's earlier
    events, whose offsets are already committed, if the worker died in between. A flush that is not acked goes
    back into the stored window, due at once. A window sent twice is harmless (each user state ignores events it
    already applied)."""
    batch = await IngestBatch.of(events)
    fence = Fence.of(batch.last_of_partition.values())
    now = now_ms()
    due = {user_id: partition for partition in batch.last_of_partition
           for user_id in runtime.pending_windows.take_due(partition, now, settings.window_max_wait_ms)}
    try:
        for user_id, partition in [*batch.ticked, *due.items()]:
            batch.partition_of.setdefault(user_id, partition)
            batch.windows.flush_if_due(user_id, now)
        for _, window in batch.windows.flushed:
            runtime.metrics.window_wait.observe(max(now - window[0].arrived_ms, 0.0) / 1000.0)
        acked = await (weigh_flushed(batch) if CHAINS_STAGES else send_windows(batch.windows.flushed, fence))
        batch.windows.keep_unsent([flush for flush, ok in zip(batch.windows.flushed, acked, strict=True) if not ok])
        current = fence.holds()
        if current:
            batch.store()
            await open_windows.changelog_acked()
    except Exception:  # the batch is tried again one message at a time: the windows taken off stay due
        arm_due_at_once(due, now)
        raise
    if not current:
        log.info("a rebalance began while %d messages were windowed; they will be fetched again", len(events))
        arm_due_at_once(due, now)
        return
    runtime.metrics.window_flushes.inc(sum(acked))


def arm_due_at_once(due: Mapping[str, int], now: float) -> None:
    """Arms again the windows a batch took off to flush and did not store (a window still armed keeps its age)."""
    for user_id, partition in due.items():
        runtime.pending_windows.opened(partition, user_id, now - settings.window_max_wait_ms)


@dataclass
class IngestBatch:
    """A batch's windows, with the partition of each user and the last message of each partition (the context
    of that partition's table reads and writes)."""

    windows: WindowBatch = field(init=False)
    last_of_partition: dict[int, EventT] = field(default_factory=dict)  # type: ignore[type-arg]
    partition_of: dict[str, int] = field(default_factory=dict)
    ticked: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.windows = WindowBatch(runtime.window_policy, self._load)

    @classmethod
    async def of(cls, events: Sequence[EventT]) -> IngestBatch:  # type: ignore[type-arg]
        """Each valid event into its user's window (bad ones dead-lettered); ticks noted."""
        batch = cls()
        for event in events:
            message = event.message
            batch.last_of_partition[message.partition] = event
            if message.topic == settings.ticks_topic:
                batch.ticked.append((cast(bytes, event.key).decode(), message.partition))
                continue
            try:
                item = await windowed_event(event)
            except Exception as error:
                await dead_letter_event(event, error)
                continue
            if item is not None:
                batch.partition_of[item.event.user_id] = message.partition
                batch.windows.add(item)
        return batch

    def _load(self, user_id: str) -> list[WindowedEvent]:
        with in_event_context(self.last_of_partition[self.partition_of[user_id]]):
            return decode_window(open_windows.get(user_id))

    def store(self) -> None:
        """Writes each changed window (or deletes an emptied one) and arms or disarms each age-based flush."""
        for user_id in self.windows.changed:
            window = self.windows.windows[user_id]
            with in_event_context(self.last_of_partition[self.partition_of[user_id]]):
                if window:
                    open_windows[user_id] = encode_window(window)
                elif user_id in open_windows:
                    del open_windows[user_id]
        flushed = {user_id for user_id, _ in self.windows.flushed}
        for user_id, window in self.windows.windows.items():
            partition = self.partition_of[user_id]
            if user_id in flushed or not window:  # a window opened after a flush is armed with its own age
                runtime.pending_windows.closed(partition, user_id)
            if window:
                runtime.pending_windows.opened(partition, user_id, window[0].arrived_ms)


async def windowed_event(event: EventT) -> WindowedEvent | None:  # type: ignore[type-arg]
    """The event with its source and arrival, or None when it is invalid (then it is dead-lettered) or an
    exposure (`EXPOSURE_KINDS`, counted by the attribution stage)."""
    message = event.message
    source = SourcePosition.of(message)
    arrived = now_ms()
    routed = route_event(event.value, event.key, source, int(arrived), limits=runtime.limits,
                         catalogue=runtime.model.catalogue)
    if isinstance(routed, Rejected):
        await send_dead_letter(routed.reason, routed.record, event.key, source)
        return None
    runtime.metrics.events_in.labels(routed.event.kind).inc()
    if routed.event.kind in EXPOSURE_KINDS:  # what the user was shown: the attribution stage's, not the model's
        return None
    return WindowedEvent.read_at(routed.event.no_later_than(int(arrived)), source, arrived)


async def send_windows(flushes: Sequence[tuple[str, list[WindowedEvent]]], fence: Fence) -> list[bool]:
    """Sends the windows in order while `fence` holds and waits for all their acks at once; which ones the broker
    acked."""
    acked = await sent_and_acked(windows_topic, [(user_id.encode(), encode_window(window))
                                                 for user_id, window in flushes], fence)
    if not all(acked):
        log.warning("%d of %d windows were not acked; they stay in the table", acked.count(False), len(acked))
    return acked


async def sent_and_acked(topic: RawTopic, records: Sequence[tuple[bytes, bytes]],
                         fence: Fence | None = None) -> list[bool]:
    """Sends (key, value) records in order and waits for all their acks at once; which ones the broker acked (a
    record whose send raised, or whose delivery failed, or that was not sent because `fence` no longer held, was
    not)."""
    deliveries: list[Awaitable[object] | None] = []
    for key, value in records:
        if fence is not None and not fence.holds():
            deliveries.append(None)
            continue
        try:
            deliveries.append(await topic.send(key=key, value=value))
        except Exception:
            log.warning("a record for %s could not be sent to %s", key, topic.get_topic_name(), exc_info=True)
            deliveries.append(None)
    outcomes = iter(await asyncio.gather(*(d for d in deliveries if d is not None), return_exceptions=True))
    return [delivery is not None and not isinstance(next(outcomes), BaseException) for delivery in deliveries]


async def weigh_flushed(batch: IngestBatch) -> list[bool]:
    """Encodes, weighs and ranks the batch's flushed windows in this step (`CHAINS_STAGES`), each user's state read
    and written in the context of the last message of its partition; `weigh_batch` waits until the broker acked the
    new states: a window is forgotten only once the state that holds its events is safe. Every window counts as
    delivered; one the model fails on, or whose search the encoder failed on after every try, is dead-lettered, as
    the encoder pool and the weigh agent do."""
    flushes = batch.windows.flushed
    if not flushes:
        return []
    encoded = await encoded_windows(flushes)
    sources = []
    for (user_id, events), window in zip(flushes, encoded.windows, strict=True):
        if window is None:  # its search could not be encoded, after every try
            assert encoded.error is not None
            await dead_letter_flushed_events(events, encoded.error)
        else:
            sources.append((batch.last_of_partition[batch.partition_of[user_id]], window))
    if sources:
        await in_batch_or_one_by_one(weigh_batch, sources, dead_letter_flushed_window)
    return [True] * len(flushes)


async def dead_letter_flushed_window(source: tuple[EventT, EncodedWindow], error: Exception) -> None:  # type: ignore[type-arg]
    await dead_letter_flushed_events(source[1].events, error)


async def dead_letter_flushed_events(events: list[WindowedEvent], error: Exception) -> None:
    """A flushed window's events (their windows-topic form), sourced at the last one's position."""
    await dead_letter_internal(encode_window(events), events[-1].event.user_id.encode(), error, events[-1].position)


@open_windows.on_recover
async def register_recovered_windows() -> None:
    """After recovery, windows left open by a previous run get their age-based flush again."""
    for user_id, raw in open_windows.items():
        window = decode_window(raw)
        if window:
            runtime.pending_windows.opened(source_partition(window), user_id, window[0].arrived_ms)


@app.timer(interval=max(settings.window_max_wait_ms / 2000.0, 0.02))
async def tick_open_windows() -> None:
    await tick_quiet_windows()


async def tick_quiet_windows() -> None:
    """Asks ingest, through the partition that owns the window, to flush windows that waited too long in a
    partition with no message to flush them on. All are taken before the first send: a send yields, and ingest may
    open a new window meanwhile (its tick then finds it not due and arms it again). A tick the broker does not ack
    is armed again with its window's first arrival."""
    quiet_ms = max(settings.window_max_wait_ms / 4.0, 20.0)
    due = runtime.pending_windows.take_quiet_due(now_ms(), settings.window_max_wait_ms, quiet_ms)
    acked = await sent_and_acked(ticks_topic, [(user_id.encode(), b"") for _, user_id, _ in due])
    for (partition, user_id, first_arrived), ok in zip(due, acked, strict=True):
        if not ok:  # armed again: the next tick (or a message of its partition) asks for the flush
            runtime.pending_windows.opened(partition, user_id, first_arrived)
    if not all(acked):
        log.warning("%d of %d ticks were not delivered; their windows stay armed", acked.count(False), len(acked))


if settings.shared_snapshot_s > 0:

    @app.timer(interval=settings.shared_snapshot_s)
    async def snapshot_shared_signals() -> None:
        """Keeps the model's shared signals across restarts (`sinks.shared_snapshot`)."""
        if runtime.model_ready.is_set():
            size = await runtime.in_model_thread(runtime.save_shared_signals)
            log.debug("shared signals: snapshot of %d bytes written", size)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode's stubs accept no receiver as written
    async def snapshot_shared_signals_at_stop(sender: Any, *args: Any, **kwargs: Any) -> None:
        """A worker that stops cleanly resumes with everything it learned (the consumer has stopped by now)."""
        if runtime.model_ready.is_set():
            await runtime.in_model_thread(runtime.save_shared_signals)
            log.info("shared signals: snapshot written at stop")


@dataclass(frozen=True)
class AppliedWindows:
    """A batch of windows run through the model: each user's state and last event in the batch, how many events
    applied and their increments to the shared signals."""

    states: dict[str, UserState]
    last: dict[str, WindowedEvent]
    latest_ts: dict[str, int]
    applied: int
    increments: list[SharedIncrement]


def apply_windows(raw_states: Mapping[str, bytes | None], windows: Sequence[EncodedWindow]) -> AppliedWindows:
    """Runs the model over windows in order, several users at once (in the model thread). The shared signals are
    not changed: the increments go to the shared log, which every worker folds."""
    model = runtime.model
    states = {user_id: UserState.from_bytes(raw) if raw else model.new_state() for user_id, raw in raw_states.items()}
    events: list[UserEvent] = []
    last: dict[str, WindowedEvent] = {}
    latest_ts: dict[str, int] = {}
    for window in windows:
        user_id = window.user_id
        for item in window.events:
            events.append(UserEvent(user_id, item.event.profile_event(), window.query_vector(item.event.event_id)))
            last[user_id] = item
            latest_ts[user_id] = max(latest_ts.get(user_id, item.event.ts), item.event.ts)
    learned = model.learn_batch(states, events)
    states.update(learned.states)
    return AppliedWindows(states, last, latest_ts, learned.applied, learned.increments)


def weight_updates(applied: AppliedWindows) -> dict[str, WeightUpdate]:
    """One WeightUpdate per user of the batch, as of the user's last event (in the model thread, once the
    batch's increments are folded)."""
    fresh = runtime.model.weight_updates({user_id: (applied.states[user_id], applied.latest_ts[user_id])
                                          for user_id in applied.last})
    return {user_id: replace(fresh[user_id], trigger_event_id=item.event.event_id, arrived_ms=item.arrived_ms)
            for user_id, item in applied.last.items()}


@dataclass(frozen=True)
class RankedUsers:
    """A batch's WeightUpdates and their users' lists (none, and the scorer's `error`, when ranking failed)."""

    updates: dict[str, WeightUpdate]
    lists: list[UserRecommendation]
    error: Exception | None = None


def rank_applied(applied: AppliedWindows) -> RankedUsers:
    """The batch's WeightUpdates and their top-k lists, in one call in the model thread."""
    updates = weight_updates(applied)
    try:
        return RankedUsers(updates, runtime.model.recommend(list(updates.values()), settings.top_k))
    except Exception as error:
        return RankedUsers(updates, [], error)


async def weigh_batch(windows: Sequence[tuple[EventT, EncodedWindow]]) -> None:  # type: ignore[type-arg]
    """Applies a batch of windows in one hop to the model thread, sends the batch's increments to the shared log
    and waits for the broker's acks, then writes each user's state in the context of that user's last message (its
    partition's store and changelog): a state that holds an event is never written before the event's increment is
    safe, so a batch that fails is applied and its increments sent again (they count once). It then waits until
    the increments are folded (`settings.shared_wait_s` at most), so that the WeightUpdates and lists it emits count
    the users' own events, as the replay does."""
    started = time.perf_counter()
    last_message = {window.user_id: event for event, window in windows}
    fence = Fence.of(last_message.values())
    raw_states = {}
    for user_id, event in last_message.items():
        with in_event_context(event):
            raw_states[user_id] = user_states.get(user_id)
    applied = await runtime.in_model_thread(apply_windows, raw_states, [window for _, window in windows])
    if fence.broken(f"{len(windows)} windows were applied"):
        return
    sent = await increments_acked(applied.increments)
    if fence.broken(f"{len(windows)} windows' increments were sent"):
        return
    for user_id in applied.last:
        with in_event_context(last_message[user_id]):
            user_states[user_id] = applied.states[user_id].to_bytes()
    await user_states.changelog_acked()  # a state record the broker refused fails the step, before any ack
    runtime.metrics.events_applied.inc(applied.applied)
    runtime.metrics.events_duplicate.inc(sum(len(window.events) for _, window in windows) - applied.applied)
    if sent is not None and not await runtime.shared_log.wait_folded(sent, settings.shared_wait_s):
        runtime.metrics.shared_wait_timeouts.inc()
        log.warning("shared signals: this step's increments were not folded within %.1fs; ranking without them",
                    settings.shared_wait_s)
    ranked = await runtime.in_model_thread(rank_applied, applied)
    lists = await list_records(ranked, last_message)
    outputs = [(weights_topic, user_id.encode(), update.to_json()) for user_id, update in ranked.updates.items()]
    outputs += [(recommendations_topic, user_id.encode(), orjson.dumps(record)) for user_id, record in lists.items()]
    deliveries = await sent_while(fence, outputs)
    if deliveries is None:
        fence.broken(f"{len(windows)} windows were ranked")
        return
    for record in lists.values():
        runtime.metrics.recommended([record["latency_ms"]])
        runtime.live_view.record(record)
    await asyncio.gather(*deliveries)  # an output the broker refused fails the step: tried again, then dead-lettered
    runtime.metrics.weigh_step.observe(time.perf_counter() - started)


@dataclass(frozen=True)
class Fence:
    """Whether a batch's partitions are still this worker's: its messages are of the consumer's current generation
    and flow is active. Every state, window and output write of the batch is made only while it holds, checked
    right before the write (nothing yields between the check and the record's append to the producer unless its
    buffer is full). Faust suspends the flow as soon as a revocation begins and flushes the producer before the
    worker rejoins the group, and another worker is given the partitions only after that: a worker that is giving
    partitions up writes nothing more for them. (A worker stalled past the session timeout learns of its eviction
    only at its next poll; only transactions fence that.)"""

    messages: tuple[EventT, ...]  # type: ignore[type-arg]

    @classmethod
    def of(cls, messages: Iterable[EventT]) -> Fence:  # type: ignore[type-arg]
        return cls(tuple(messages))

    def holds(self) -> bool:
        return all(of_current_generation(app, event.message) for event in self.messages)

    def broken(self, meanwhile: str) -> bool:
        """Whether the fence no longer holds (then the batch writes nothing more, and its messages are fetched
        again by the partitions' owner), logged with what was done `meanwhile`."""
        if self.holds():
            return False
        log.info("a rebalance began while %s; they will be fetched again", meanwhile)
        return True


async def sent_while(fence: Fence, outputs: Sequence[tuple[RawTopic, bytes, bytes]]) -> list[Awaitable[object]] | None:
    """Sends (topic, key, value) records in order while `fence` holds; their deliveries, or None when the fence
    broke first (the rest are not sent)."""
    deliveries: list[Awaitable[object]] = []
    for topic, key, value in outputs:
        if not fence.holds():
            await asyncio.gather(*deliveries, return_exceptions=True)  # what was sent is sent; its outcome is moot
            return None
        deliveries.append(await topic.send(key=key, value=value))
    return deliveries


async def increments_acked(increments: Sequence[SharedIncrement]) -> int | None:
    """Sends increments to the shared log and waits for the broker's acks (raises when one is refused); returns the
    last offset written (None: no increment)."""
    deliveries = [await shared_topic.send(key=increment.item_id.encode(), value=increment.to_json())
                  for increment in increments]
    return max((metadata.offset for metadata in await asyncio.gather(*deliveries)), default=None)


async def list_records(ranked: RankedUsers, sources: Mapping[str, EventT]) -> dict[str, dict]:  # type: ignore[type-arg]
    """Each ranked user's list as a Recommendation record, its latency measured now. A batch the scorer failed on
    dead-letters each user's WeightUpdate (the state is already written), sourced at the user's last window."""
    if ranked.error is not None:
        for user_id, update in ranked.updates.items():
            await dead_letter_internal(update.to_json(), user_id.encode(), ranked.error,
                                       SourcePosition.of(sources[user_id].message))
        return {}
    now = now_ms()
    return {update.user_id: replace(recommendation, latency_ms=round(now - update.arrived_ms, 3)).to_dict()
            for recommendation, update in zip(ranked.lists, ranked.updates.values(), strict=True)}
