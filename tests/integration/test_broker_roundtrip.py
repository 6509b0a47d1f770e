"""kafka-python in, aiokafka consumer group out, against the real broker."""

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


def test_keyed_messages_arrive_in_partition_order(kafka_bootstrap, unique_name) -> None:  # type: ignore[no-untyped-def]
    topic, group = unique_name("roundtrip"), unique_name("group")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    sent = [(f"key-{i % 37}".encode(), f"{i}".encode()) for i in range(1000)]
    for key, value in sent:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()

    async def consume() -> list[tuple[int, int, bytes, bytes]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        received: list[tuple[int, int, bytes, bytes]] = []
        try:
            while len(received) < len(sent):
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for tp, records in batches.items():
                    received += [(tp.partition, r.offset, r.key, r.value) for r in records]
            await consumer.commit()
        finally:
            await consumer.stop()
        return received

    received = asyncio.run(consume())
    assert sorted((k, v) for _, _, k, v in received) == sorted(sent)
    per_key: dict[bytes, list[int]] = defaultdict(list)
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for partition, _, key, value in received:
        per_key[key].append(int(value))
        partitions_of_key[key].add(partition)
    assert all(values == sorted(values) for values in per_key.values())
    assert all(len(parts) == 1 for parts in partitions_of_key.values())
    assert len({p for p, _, _, _ in received}) == 4
