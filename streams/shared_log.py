"""The shared signals as one log on Kafka that every worker folds: every worker ranks with the same counts.

A worker that applies events to its users' states sends each event's `SharedIncrement` to the shared-signals
topic; every worker (itself included) reads that whole topic, like the catalogue, and folds the increments into its
model in the topic's order (`OnlineModel.fold`). The topic has one partition, so the order is one for all: every
worker's counts, prior and context map are the same once it has folded the same offsets. The topic is kept
forever; a worker's snapshot (`sinks.shared_snapshot`) records the offset it had folded, so a restart resumes from
there and folds the rest, with nothing lost and nothing folded twice (an increment sent twice, by a worker that
died before its states were written, counts once: `FedEvents`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition

from sinks.shared_increments import SharedIncrement
from streams.kafka_clients import aiokafka_config
from streams.topics_admin import topic_partitions

if TYPE_CHECKING:
    from streams.runtime import WorkerRuntime

log = logging.getLogger(__name__)
FETCH_WAIT_MS = 5
"""How long a fetch of the shared log waits for records: a weigh step waits for its own increments to come back."""


class SharedLog:
    """Where this worker's fold of the shared log stands, and a way to wait until it passed given offsets."""

    def __init__(self) -> None:
        self.folded: dict[int, int] = {}
        """Per partition, the next offset to fold."""
        self._advanced = asyncio.Condition()

    async def advanced_to(self, positions: Mapping[int, int]) -> None:
        async with self._advanced:
            self.folded.update(positions)
            self._advanced.notify_all()

    async def wait_folded(self, offsets: Mapping[int, int], timeout_s: float) -> bool:
        """Waits until every given offset is folded (True), or `timeout_s` passed (False)."""
        def done() -> bool:
            return all(self.folded.get(partition, 0) > offset for partition, offset in offsets.items())

        async with self._advanced:
            try:
                await asyncio.wait_for(self._advanced.wait_for(done), timeout_s)
            except TimeoutError:
                return False
        return True


async def follow_shared_log(runtime: WorkerRuntime) -> None:
    """Resumes the last snapshot, folds the log from the offsets it records (from the start without one), marks
    the model ready once it reached the log's end as of its start, and folds every new increment from then on."""
    settings, shared = runtime.settings, runtime.shared_log
    await runtime.catalogue_caught_up.wait()
    start = await resume_shared_signals(runtime)
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), enable_auto_commit=False, group_id=None,
                                fetch_max_wait_ms=FETCH_WAIT_MS)
    await consumer.start()
    try:
        partitions = await asyncio.to_thread(topic_partitions, settings, settings.shared_topic)
        assigned = [TopicPartition(settings.shared_topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, start.get(tp.partition, 0))
        await shared.advanced_to({tp.partition: await consumer.position(tp) for tp in assigned})
        end_offsets = await consumer.end_offsets(assigned)
        log.info("shared signals: folding %s from offsets %s (end %s)", settings.shared_topic,
                 dict(shared.folded), {tp.partition: end for tp, end in end_offsets.items()})
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batches.items():
                increments = []
                for record in records:
                    try:
                        increments.append(SharedIncrement.from_json(record.value))
                    except (ValueError, KeyError, TypeError) as error:
                        runtime.metrics.shared_malformed.inc()
                        log.error("shared signals: %s[%d]@%d is no increment (%s); skipped", tp.topic, tp.partition,
                                  record.offset, error)
                if records:
                    position = {tp.partition: records[-1].offset + 1}
                    await runtime.in_model_thread(runtime.fold_shared, increments, position)
                    runtime.metrics.shared_staleness.observe(max(time.time() - records[-1].timestamp / 1000, 0.0))
                    await shared.advanced_to(position)
            if not runtime.model_ready.is_set() and all(
                    shared.folded.get(tp.partition, 0) >= end for tp, end in end_offsets.items()):
                runtime.model_ready.set()
                log.info("shared signals: caught up at offsets %s (%d events)", dict(shared.folded),
                         runtime.model.fed.total)
    finally:
        await consumer.stop()


async def resume_shared_signals(runtime: WorkerRuntime) -> dict[int, int]:
    """Before any agent touches the model: the shared signals of this worker's last snapshot, if it has one;
    returns the shared log's offsets it had folded (none: fold from the start)."""
    if runtime.settings.shared_snapshot_s <= 0:
        return {}
    try:
        resumed = await runtime.in_model_thread(runtime.restore_shared_signals)
    except Exception as error:  # e.g. written by an incompatible version: the worker folds the whole log
        log.error("shared signals: the last snapshot could not be read (%s: %s); folding the shared log from its "
                  "start", type(error).__name__, error)
        return {}
    if resumed is None:
        return {}
    pairs, offsets = resumed
    log.info("shared signals: resumed from the last snapshot (%d co-visitation pairs, shared log offsets %s)",
             pairs, offsets)
    return offsets
