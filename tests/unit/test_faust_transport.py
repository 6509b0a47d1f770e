"""The consumer fix: a message of an earlier consumer generation is never acked (its offset stays uncommitted)."""

from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP, Message

from streams.faust_transport import DrainingProducer, GenerationCheckedConsumer

PARTITION = TP("events", 0)


def message(offset: int, generation: int) -> Message:
    return Message("events", 0, offset, 0.0, 0, [], b"k", b"v", None, tp=PARTITION, generation_id=generation)


def consumer_at_generation(generation: int) -> GenerationCheckedConsumer:
    """The consumer's ack bookkeeping alone, without a broker."""
    consumer = object.__new__(GenerationCheckedConsumer)
    consumer.__dict__.update(
        app=SimpleNamespace(consumer_generation_id=generation, topics=SimpleNamespace(acks_enabled_for=lambda t: True)),
        _unacked_messages=set(), _committed_offset={PARTITION: 4}, _acked_index=defaultdict(set),
        _acked=defaultdict(list), _n_acked=0, _waiting_for_ack=None,
    )
    return consumer


def test_a_message_of_an_earlier_generation_is_not_acked() -> None:
    consumer = consumer_at_generation(2)
    stale, current = message(5, generation=1), message(6, generation=2)
    consumer._unacked_messages.update({stale, current})
    assert consumer.ack(stale) is False
    assert stale.acked and stale not in consumer._unacked_messages and consumer._acked[PARTITION] == []
    assert consumer.ack(current) is True
    assert consumer._acked[PARTITION] == [6] and current not in consumer._unacked_messages


class SlowBuffer:
    """A producer buffer whose flush, like Faust's, gives up after sending one of its pending messages."""

    def __init__(self, pending: int) -> None:
        self.size = pending
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        self.size = max(self.size - 1, 0)


def test_the_producer_flush_drains_the_whole_buffer_before_a_commit() -> None:
    import asyncio

    producer = object.__new__(DrainingProducer)
    buffer = SlowBuffer(pending=3)
    producer.__dict__.update(buffer=buffer, _producer=None, _transaction_producers={})
    asyncio.run(producer.flush())
    assert buffer.size == 0  # Faust's own flush would have returned with 2 messages still pending
