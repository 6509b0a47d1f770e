"""Every worker reads the whole compacted items topic, so each holds the full catalogue it ranks over.

A consumer-group agent would give each worker only its share of the items; this reader is assigned every
partition and never commits (it replays the compacted topic at start; the vector cache makes that cheap). A
record with a value publishes (or updates) its item; a tombstone (a null value) removes the item keyed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.events import InvalidRecordError, Item, Limits, parse_item
from streams.kafka_clients import aiokafka_config
from streams.runtime import WorkerRuntime
from streams.topics_admin import topic_partitions

log = logging.getLogger(__name__)

DeadLetter = Callable[[ConsumerRecord, str], Awaitable[None]]


class CatalogueError(RuntimeError):
    """The items topic cannot be followed as it is (missing)."""


async def follow_catalogue(runtime: WorkerRuntime, dead_letter: DeadLetter) -> None:
    settings = runtime.settings
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await asyncio.to_thread(topic_partitions, settings, settings.items_topic)
        if not partitions:
            raise CatalogueError(f"the items topic {settings.items_topic} does not exist (`driftrec topics` "
                                 "creates the configured topics)")
        assigned = [TopicPartition(settings.items_topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end_offsets = await consumer.end_offsets(assigned)
        log.info("catalogue: reading %s partitions of %s", len(assigned), settings.items_topic)
        while True:
            batches = await consumer.getmany(timeout_ms=300, max_records=2000)
            changes: dict[str, Item | None] = {}
            for records in batches.values():
                for record in records:
                    try:
                        item_id, item = item_change(record.key, record.value, int(time.time() * 1000),
                                                    runtime.limits)
                    except InvalidRecordError as error:
                        await dead_letter(record, str(error))
                        continue
                    changes[item_id] = item
            if changes:
                await apply_changes(runtime, changes)
            if not runtime.catalogue_caught_up.is_set():
                positions = {tp: await consumer.position(tp) for tp in assigned}
                if all(positions[tp] >= end_offsets[tp] for tp in assigned):
                    runtime.catalogue_caught_up.set()
                    log.info("catalogue: caught up with %d items", runtime.model.catalogue.listed())
    finally:
        await consumer.stop()


def item_change(key: bytes | None, value: bytes | None, now_ms: int, limits: Limits) -> tuple[str, Item | None]:
    """The item id a record of the items topic changes and the item's new version, None for a tombstone (the
    item keyed is removed); raises InvalidRecordError with the reason for a record that is neither."""
    if value is not None:
        item = parse_item(value, now_ms, limits)
        return item.item_id, item
    try:
        item_id = (key or b"").decode()
    except UnicodeDecodeError:
        raise InvalidRecordError("tombstone whose key is not UTF-8") from None
    if not item_id:
        raise InvalidRecordError("tombstone without a key")
    return item_id, None


async def apply_changes(runtime: WorkerRuntime, changes: dict[str, Item | None]) -> None:
    """Upserts the items of a fetch and removes those whose last record in it was a tombstone."""
    items = [item for item in changes.values() if item is not None]
    removed = [item_id for item_id, item in changes.items() if item is None]
    encoded = await runtime.in_model_thread(runtime.update_catalogue, items, removed)
    log.info("catalogue: %d items (%d newly encoded, %d removed)", runtime.model.catalogue.listed(), encoded,
             len(removed))
