"""The transport fixes: skipped records are fetched again, stale-generation messages are never acked, and a commit
waits for the whole producer buffer."""

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from intervaltree import IntervalTree
from mode.utils.queues import FlowControlEvent

from streams.faust_transport import CommitSafeConsumer, DrainingProducer

PARTITION = TP("events", 0)


def message(offset: int, generation: int) -> Message:
    return Message("events", 0, offset, 0.0, 0, [], b"k", b"v", None, tp=PARTITION, generation_id=generation)


def consumer_at_generation(generation: int) -> CommitSafeConsumer:
    """The consumer's ack bookkeeping alone, without a broker."""
    consumer = object.__new__(CommitSafeConsumer)
    consumer.__dict__.update(
        app=SimpleNamespace(consumer_generation_id=generation, topics=SimpleNamespace(acks_enabled_for=lambda t: True),
                            flow_control=FlowControlEvent(initially_suspended=False)),
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


def test_a_message_acked_while_flow_control_is_suspended_is_not_committed() -> None:
    consumer = consumer_at_generation(2)
    skipped = message(5, generation=2)
    consumer._unacked_messages.add(skipped)
    consumer.app.flow_control.suspend()
    assert consumer.ack(skipped) is False
    assert skipped.acked and skipped not in consumer._unacked_messages and consumer._acked[PARTITION] == []


class SlowBuffer:
    """A producer buffer whose flush, like Faust's, gives up after sending one of its pending messages."""

    def __init__(self, pending: int) -> None:
        self.size = pending
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1
        self.size = max(self.size - 1, 0)


def test_the_producer_flush_drains_the_whole_buffer_before_a_commit() -> None:
    producer = object.__new__(DrainingProducer)
    buffer = SlowBuffer(pending=3)
    producer.__dict__.update(buffer=buffer, _producer=None, _transaction_producers={})
    asyncio.run(producer.flush())
    assert buffer.size == 0  # Faust's own flush would have returned with 2 messages still pending


OTHER = TP("events", 1)


def consumer_expecting(next_offsets: dict[TP, int]) -> tuple[CommitSafeConsumer, list[tuple[TP, int]]]:
    """A consumer whose next fetch of each partition should start at `next_offsets`; returns it and the list its
    seeks go to."""
    consumer = object.__new__(CommitSafeConsumer)
    seeks: list[tuple[TP, int]] = []

    async def driver_seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    consumer.__dict__.update(
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics={"app-states-changelog"})),
        log=SimpleNamespace(dev=lambda *args: None), _read_offset=defaultdict(lambda: None),
        _next_offset=dict(next_offsets), _refetched_from={}, _passed={}, _seek=driver_seek,
        _acked=defaultdict(list), _acked_index=defaultdict(set), _committed_offset=defaultdict(lambda: None),
        _gap=defaultdict(IntervalTree),
    )
    return consumer, seeks


def fetched(consumer: CommitSafeConsumer, batch: list[tuple[TP, int]], monkeypatch) -> list[tuple[TP, int]]:  # type: ignore[no-untyped-def]
    """What the consumer passes on to Faust from a fetch returning `batch`."""

    async def parent_getmany(self, timeout):  # type: ignore[no-untyped-def]
        for tp, offset in batch:
            yield tp, Message(tp.topic, tp.partition, offset, 0.0, 0, [], b"k", b"v", None, tp=tp, generation_id=1)

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", parent_getmany)

    async def drain() -> list[tuple[TP, int]]:
        return [(tp, msg.offset) async for tp, msg in consumer.getmany(1.0)]

    return asyncio.run(drain())


def test_a_fetch_that_skipped_records_seeks_back_instead_of_passing_the_hole(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    consumer, seeks = consumer_expecting({PARTITION: 11, OTHER: 4})
    passed = fetched(consumer, [(PARTITION, 11), (PARTITION, 15), (OTHER, 4), (PARTITION, 16)], monkeypatch)
    assert passed == [(PARTITION, 11), (OTHER, 4)]
    assert seeks == [(PARTITION, 12)]
    assert fetched(consumer, [(PARTITION, 12), (PARTITION, 13)], monkeypatch) == [(PARTITION, 12), (PARTITION, 13)]


def test_a_hole_still_there_after_one_refetch_is_a_real_gap(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    consumer, seeks = consumer_expecting({PARTITION: 11})
    assert fetched(consumer, [(PARTITION, 13)], monkeypatch) == []
    assert fetched(consumer, [(PARTITION, 13), (PARTITION, 14)], monkeypatch) == [(PARTITION, 13), (PARTITION, 14)]
    assert seeks == [(PARTITION, 11)]


def test_a_new_hole_at_the_same_offset_is_fetched_again_once_the_first_was_filled(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    consumer, seeks = consumer_expecting({PARTITION: 11})
    assert fetched(consumer, [(PARTITION, 12)], monkeypatch) == []
    assert fetched(consumer, [(PARTITION, 11), (PARTITION, 12)], monkeypatch) == [(PARTITION, 11), (PARTITION, 12)]
    asyncio.run(consumer.seek(PARTITION, 11))  # a rebalance goes back to the committed offset
    assert fetched(consumer, [(PARTITION, 12)], monkeypatch) == []
    assert seeks == [(PARTITION, 11), (PARTITION, 11), (PARTITION, 11)]


def test_the_first_fetch_after_a_seek_to_the_committed_offset_must_start_there(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The CI failure of a SIGKILL run: committed 117, the first fetch after the restart began at 118, and 117 was
    never processed (Faust's read offset after a seek is the next offset, which it takes as the last one read)."""
    consumer, seeks = consumer_expecting({})

    async def committed_offsets(self):  # type: ignore[no-untyped-def]
        return {PARTITION: 117, OTHER: None}

    monkeypatch.setattr(faust_aiokafka.Consumer, "seek_to_committed", committed_offsets)
    asyncio.run(consumer.seek_to_committed())
    assert seeks == [(OTHER, 0)]  # aiokafka leaves a partition without a committed offset where it was
    assert fetched(consumer, [(PARTITION, 118), (OTHER, 3)], monkeypatch) == []
    assert seeks == [(OTHER, 0), (PARTITION, 117), (OTHER, 0)]


def test_the_first_record_of_a_partition_never_committed_is_not_committed_over_unprocessed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Faust checks the head of the acked offsets only against a committed offset above 0: with none, records 1 and
    2 acked while record 0 was skipped committed offset 3, and record 0 was never processed."""
    consumer, _ = consumer_expecting({PARTITION: 0})
    assert fetched(consumer, [(PARTITION, 0), (PARTITION, 1), (PARTITION, 2)], monkeypatch) == [
        (PARTITION, 0), (PARTITION, 1), (PARTITION, 2)]
    acked(consumer, 1, 2)  # record 0 skipped: fetched while the flow was suspended
    assert consumer._new_offset(PARTITION) is None
    acked(consumer, 0)
    assert consumer._new_offset(PARTITION) == 3


def acked(consumer: CommitSafeConsumer, *offsets: int) -> None:
    """What Faust's ack records of each message at `offsets`."""
    for offset in offsets:
        consumer._acked[PARTITION].append(offset)
        consumer._acked_index[PARTITION].add(offset)


def test_the_record_at_the_committed_offset_is_not_committed_over_unprocessed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Faust lets a hole of one offset at the head through (`min(acked) - committed > 1`)."""
    consumer, _ = consumer_expecting({PARTITION: 5})
    consumer._committed_offset[PARTITION] = 5
    fetched(consumer, [(PARTITION, 5), (PARTITION, 6), (PARTITION, 7)], monkeypatch)
    acked(consumer, 6, 7)
    assert consumer._new_offset(PARTITION) is None
    acked(consumer, 5)
    assert consumer._new_offset(PARTITION) == 8


def test_an_offset_that_holds_no_record_holds_no_commit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Records gone with retention before the committed offset, or a transaction marker at it: the first record
    passed on is further on, and once it is acked the commit moves past the hole."""
    consumer, _ = consumer_expecting({PARTITION: 5})
    consumer._committed_offset[PARTITION] = 5
    assert fetched(consumer, [(PARTITION, 9), (PARTITION, 10)], monkeypatch) == []  # a hole: fetched again once
    assert fetched(consumer, [(PARTITION, 9), (PARTITION, 10)], monkeypatch) == [(PARTITION, 9), (PARTITION, 10)]
    consumer._gap[PARTITION].addi(5, 9)  # as Faust records a hole it is left with
    acked(consumer, 9, 10)
    assert consumer._new_offset(PARTITION) == 11


def test_changelog_topics_keep_their_compaction_gaps(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    changelog = TP("app-states-changelog", 0)
    consumer, seeks = consumer_expecting({changelog: 11})
    assert fetched(consumer, [(changelog, 20)], monkeypatch) == [(changelog, 20)]
    assert seeks == []


def test_a_partition_paused_for_queue_pressure_is_resumed_once_everything_read_was_processed() -> None:
    """The stalled partition of a throughput run: read to 1213, committed 1214, nothing unacked."""
    drained, queued, in_flight = TP("encoded", 0), TP("encoded", 1), TP("encoded", 2)
    consumer = object.__new__(CommitSafeConsumer)
    consumer.__dict__.update(
        _buffered_partitions={drained, queued, in_flight}, _active_partitions=set(), _paused_partitions=set(),
        _read_offset={drained: 1213, queued: 40, in_flight: 7},
        _committed_offset={drained: 1214, queued: 31, in_flight: 5},
        _acked=defaultdict(list, {queued: [31, 32], in_flight: [5, 7]}),
        _unacked_messages={Message("encoded", 2, 6, 0.0, 0, [], b"k", b"v", None, tp=in_flight)},
    )
    assert consumer.resume_drained_partitions() == [drained]
    assert consumer._active_partitions == {drained} and consumer._buffered_partitions == {queued, in_flight}
