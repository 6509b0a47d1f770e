"""Every worker reads the whole compacted items topic, so each holds the full catalogue it ranks over.

A consumer-group agent would give each worker only its share of the items; this reader is assigned every
partition and never commits (it replays the compacted topic at start; the vector cache makes that cheap).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.events import InvalidRecordError, Item, parse_item
from streams.kafka_clients import aiokafka_config
from streams.runtime import WorkerRuntime
from streams.topics_admin import topic_partitions

log = logging.getLogger(__name__)

DeadLetter = Callable[[ConsumerRecord, str], Awaitable[None]]


async def follow_catalogue(runtime: WorkerRuntime, dead_letter: DeadLetter) -> None:
    settings = runtime.settings
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await asyncio.to_thread(topic_partitions, settings, settings.items_topic)
        assigned = [TopicPartition(settings.items_topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end_offsets = await consumer.end_offsets(assigned)
        log.info("catalogue: reading %s partitions of %s", len(assigned), settings.items_topic)
        while True:
            batches = await consumer.getmany(timeout_ms=300, max_records=2000)
            items: list[Item] = []
            for records in batches.values():
                for record in records:
                    try:
                        items.append(parse_item(record.value, int(time.time() * 1000), runtime.limits))
                    except InvalidRecordError as error:
                        await dead_letter(record, str(error))
            if items:
                encoded = await runtime.in_model_thread(runtime.add_items, items)
                log.info("catalogue: %d items (%d newly encoded)", len(runtime.model.catalogue), encoded)
            if not runtime.catalogue_caught_up.is_set():
                positions = {tp: await consumer.position(tp) for tp in assigned}
                if all(positions[tp] >= end_offsets[tp] for tp in assigned):
                    runtime.catalogue_caught_up.set()
                    log.info("catalogue: caught up with %d items", len(runtime.model.catalogue))
    finally:
        await consumer.stop()
