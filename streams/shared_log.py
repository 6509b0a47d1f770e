"""The shared signals as one log on Kafka that every worker folds: every worker ranks with the same counts.

A worker that applies events to its users' states sends each event's `SharedIncrement` to the shared-signals
topic; every worker (itself included) reads that whole topic, like the catalogue, and folds the increments into its
model in the topic's order (`OnlineModel.fold`). The topic has one partition, so the order is one for all: every
worker's counts, prior and context map are the same once it has folded the same offsets. The topic is kept
forever; a worker's snapshot (`sinks.shared_snapshot`) records the offset it had folded, so a restart resumes from
there and folds the rest. An increment sent twice (by a worker that died after its acks and before its states were
written) counts once while it is within the last `FED_EVENTS_REMEMBERED` increments of all workers (`FedEvents`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from sinks.shared_increments import SharedIncrement
from streams.kafka_clients import aiokafka_config
from streams.topics_admin import topic_partitions

if TYPE_CHECKING:
    from streams.runtime import WorkerRuntime

log = logging.getLogger(__name__)
FETCH_WAIT_MS = 200
"""How long a fetch of the shared log waits for records: a weigh step waits for its own increments to come back."""
CATALOGUE_WAIT_S = 30.0
"""How long the fold waits for the catalogue to hold an item an increment names (it trails the items topic)."""


class SharedLog:
    """Where this worker's fold of the shared log stands, and a way to wait until it passed an offset."""

    def __init__(self) -> None:
        self.folded = 0
        """The next offset to fold."""
        self._advanced = asyncio.Condition()

    async def advanced_to(self, next_offset: int) -> None:
        async with self._advanced:
            self.folded = next_offset
            self._advanced.notify_all()

    async def wait_folded(self, offset: int, timeout_s: float) -> bool:
        """Waits until `offset` is folded (True), or `timeout_s` passed (False)."""
        def done() -> bool:
            return self.folded > offset

        if done():
            return True
        async with self._advanced:
            try:
                await asyncio.wait_for(self._advanced.wait_for(done), timeout_s)
            except TimeoutError:
                return False
        return True


class SharedLogError(RuntimeError):
    """The shared-signals topic cannot be folded as it is (missing, or not one partition)."""


async def follow_shared_log(runtime: WorkerRuntime) -> None:
    """Resumes the last snapshot, folds the log from the offset it records (from the start without one), marks
    the model ready once it reached the log's end as of its start, and folds every new increment from then on."""
    settings, shared = runtime.settings, runtime.shared_log
    await runtime.catalogue_caught_up.wait()
    resumed = await resume_shared_signals(runtime)
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), enable_auto_commit=False, group_id=None,
                                fetch_max_wait_ms=FETCH_WAIT_MS, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = await asyncio.to_thread(topic_partitions, settings, settings.shared_topic)
        if len(partitions) != 1:
            raise SharedLogError(f"the shared-signals topic {settings.shared_topic} must have exactly one partition "
                                 f"(one order for every worker); it has {len(partitions)}")
        tp = TopicPartition(settings.shared_topic, next(iter(partitions)))
        consumer.assign([tp])
        first, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        start = await start_offset(runtime, resumed, first, end)
        consumer.seek(tp, start)
        await shared.advanced_to(start)
        log.info("shared signals: folding %s from offset %d (end %d)", settings.shared_topic, start, end)
        while True:
            records = (await consumer.getmany(tp, timeout_ms=100, max_records=5000)).get(tp, [])
            if records:
                await fold_records(runtime, tp, records)
            if not runtime.model_ready.is_set() and shared.folded >= end:
                runtime.model_ready.set()
                log.info("shared signals: caught up at offset %d (%d events)", shared.folded,
                         runtime.model.fed.total)
    finally:
        await consumer.stop()


async def start_offset(runtime: WorkerRuntime, resumed: int | None, first: int, end: int) -> int:
    """Where to fold from: the snapshot's offset, or the log's start. A snapshot ahead of the log (the topic was
    made anew) is dropped; a log that no longer holds the snapshot's next offset, or its own start, is reported."""
    if resumed is not None and resumed > end:
        log.error("shared signals: the snapshot was folded to offset %d but the shared log ends at %d (a new topic?); "
                  "dropping it and folding the log from its start", resumed, end)
        await runtime.in_model_thread(runtime.drop_shared_signals)
        resumed = None
    start = first if resumed is None else resumed
    if start < first or (resumed is None and first > 0):
        log.error("shared signals: the shared log starts at offset %d, so the increments before it are missing "
                  "from this worker's signals (the topic must keep its records forever)", first)
    return max(start, first)


async def fold_records(runtime: WorkerRuntime, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
    """Folds a fetch of the log once the catalogue has every item it names (waiting for the catalogue follower,
    which may trail the worker that sent them, up to CATALOGUE_WAIT_S); records that are no increment this model
    can fold are counted and skipped."""
    increments = []
    for record in records:
        try:
            increment = SharedIncrement.from_json(record.value)
            runtime.model.check_increment(increment)
            increments.append(increment)
        except (ValueError, KeyError, TypeError) as error:
            runtime.metrics.shared_malformed.inc()
            log.error("shared signals: %s[%d]@%d is no increment (%s); skipped", tp.topic, tp.partition,
                      record.offset, error)
    await items_known(runtime, increments)
    next_offset = records[-1].offset + 1
    await runtime.in_model_thread(runtime.fold_shared, increments, next_offset)
    runtime.metrics.shared_staleness.observe(max(time.time() - records[-1].timestamp / 1000, 0.0))
    await runtime.shared_log.advanced_to(next_offset)


async def items_known(runtime: WorkerRuntime, increments: list[SharedIncrement]) -> None:
    """Waits until the catalogue holds every item the increments name, or CATALOGUE_WAIT_S passed (not for an
    item removed: a removal can outlive the item's own records in the compacted items topic)."""
    deadline = time.monotonic() + CATALOGUE_WAIT_S
    catalogue = runtime.model.catalogue

    def unknown(item: str) -> bool:
        return item not in catalogue.index and item not in catalogue.removed

    missing = set(filter(unknown, (item for increment in increments for item in (increment.item_id,
                                                                               *increment.previous))))
    while missing and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        missing = set(filter(unknown, missing))
    if missing:
        log.error("shared signals: %d items named by the shared log are not in the catalogue after %.0fs (e.g. %s); "
                  "their counts are left out", len(missing), CATALOGUE_WAIT_S, sorted(missing)[0])


async def resume_shared_signals(runtime: WorkerRuntime) -> int | None:
    """Before any agent touches the model: the shared signals of this worker's last snapshot, if it has one;
    returns the shared log's offset it had folded to (None: fold from the start)."""
    if runtime.settings.shared_snapshot_s <= 0:
        return None
    try:
        resumed = await runtime.in_model_thread(runtime.restore_shared_signals)
    except Exception as error:  # e.g. written by an incompatible version: the worker folds the whole log
        log.error("shared signals: the last snapshot could not be read (%s: %s); folding the shared log from its "
                  "start", type(error).__name__, error)
        return None
    if resumed is None:
        return None
    pairs, offset = resumed
    log.info("shared signals: resumed from the last snapshot (%d co-visitation pairs, shared log offset %d)",
             pairs, offset)
    return offset
