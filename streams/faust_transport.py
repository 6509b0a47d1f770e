"""Faust's Kafka transport with fixes to what a commit covers (at-least-once delivery) and to flow control.

* A fetch that skips records is fetched again, never committed over. Faust drops fetched records in some paths
  (a partition briefly neither active nor buffered, a fetch cut short), and when the next fetch for that
  partition starts further on, it records the missing offsets as a "gap" (meant for compacted topics and
  transaction markers) and commits over it: the dropped records were lost. The consumer seeks back to the first
  missing offset instead; a hole that is still there after one refetch is a real gap and is left to Faust.
  The consumer keeps its own next expected offset per partition: Faust's read offset means "last read" after a
  fetch but "next to read" after a seek, so a fetch after a seek that began one record late went unseen.
* A commit never passes a record that was passed on but not acked: Faust's own check of the head of the acked
  offsets misses a partition never committed and a hole of one offset (`CommitSafeConsumer._new_offset`); an
  offset that holds no record holds no commit.
* After a rebalance, a partition without a committed offset is sought to its start. aiokafka's seek to committed
  leaves it where the fetcher was, past records fetched before the rebalance and never processed.
* A message from an earlier consumer generation, or one acked while flow control is suspended (a rebalance or a
  stop under way), is never acked. Faust's stream iterator skips messages fetched in an earlier generation and,
  while flow is suspended, every message it takes (they are fetched again from the committed offset), but acks
  them as it acks filtered messages, so their offsets could be committed although no agent processed them. A
  message an agent finished during a rebalance is therefore not committed either: it is fetched and applied
  again after the seek to the committed offset (states ignore events they already applied).
* A partition paused for queue pressure whose every read record was processed is put back into the fetch set
  (`resume_drained_partitions`, run on a timer). Faust pauses a partition whose records fill an agent's queue
  and resumes it from a callback as the queue drains; in throughput runs that callback sometimes never came
  (stall report: read and committed to the end, active False, buffered True) and the partition stalled until
  the watchdog restarted the worker.
* A raw topic's send hands the record to the producer at once (`RawTopic`).
* A table's change-log sends can be awaited and fail loudly (`AckedTable`).
* Before offsets are committed, the producer's buffer is drained completely. Table writes (changelog records)
  wait in that buffer, and Faust's flush gives up when a message takes longer than 0.1 s, so a commit could
  cover inputs whose state changes were still unsent — lost if the worker then dies.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faust
import faust.streams
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, EventT, Message, RecordMetadata, TransportT
from faust.types.tuples import ack_lock

log = logging.getLogger(__name__)


class CommitSafeConsumer(faust_aiokafka.Consumer):
    """Fetches skipped records again, and acks only messages of the current generation while flow is active."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_offset: dict[TP, int] = {}
        self._refetched_from: dict[TP, int] = {}
        self._passed: dict[TP, list[int]] = {}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        refetching: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if tp in refetching:
                continue
            first_missing = self.first_skipped_offset(tp, message.offset)
            if first_missing is not None:
                refetching.add(tp)
                self._refetched_from[tp] = first_missing
                log.warning("%s[%d]: fetched offset %d but %d was next; fetching the skipped records again",
                            tp.topic, tp.partition, message.offset, first_missing)
                await self.seek(tp, first_missing)
                continue
            self.passed_on(tp, message.offset)
            yield tp, message

    def first_skipped_offset(self, tp: TP, offset: int) -> int | None:
        """The first offset a fetch skipped before `offset` on `tp` (a stage input, not a compacted changelog),
        or None when nothing was skipped or the same hole was already fetched again once."""
        expected = self._next_offset.get(tp)
        if expected is None or offset <= expected or tp.topic in self.app.tables.changelog_topics:
            return None
        if self._refetched_from.get(tp) == expected:
            return None
        return expected

    def passed_on(self, tp: TP, offset: int) -> None:
        """Records that the message at `offset` went on to Faust: the next fetch of `tp` must follow it."""
        if tp.topic not in self.app.tables.changelog_topics:
            self._passed.setdefault(tp, []).append(offset)
        if offset == self._next_offset.get(tp):
            self._refetched_from.pop(tp, None)
        self._next_offset[tp] = max(offset + 1, self._next_offset.get(tp, 0))

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._next_offset[partition] = offset
        self._passed.pop(partition, None)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's offset to commit, or None while the first record passed on at or after the committed offset is
        not acked. Faust checks the head of the acked offsets only against a committed offset above 0, and lets a
        hole of one offset through (for an offset that holds no record), so the first record of a partition never
        committed, or the record at the committed offset, could be committed over while it was skipped (fetched
        while the flow was suspended) and never processed. An offset that holds no record (retention, a
        transaction marker) is never passed on, so it holds nothing."""
        passed = self._passed.get(tp)
        if passed:
            del passed[: bisect_left(passed, self._committed_offset.get(tp) or 0)]
            if passed and passed[0] not in self._acked_index[tp]:
                return None
        return super()._new_offset(tp)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seeks every assigned partition to its committed offset, and one that has none to its start.

        aiokafka leaves a partition without a committed offset where it is, so records fetched there before a
        rebalance, and not processed, would never be fetched again (the app's offset reset is "earliest").
        Changelog partitions keep the positions table recovery gives them."""
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            if tp.topic in self.app.tables.changelog_topics:
                continue
            start = offset if offset is not None and offset > 0 else 0
            if start == 0:
                await self._seek(tp, 0)
            self._next_offset[TP(tp.topic, tp.partition)] = start
            self._passed.pop(TP(tp.topic, tp.partition), None)
        return committed

    def resume_drained_partitions(self) -> list[TP]:
        """Resumes fetching every partition paused for queue pressure that has nothing in flight: no message taken
        and not acked, and every record read acked (none left in an agent's queue). Returns them."""
        in_flight = {message.tp for message in self._unacked_messages}
        drained = [
            tp for tp in self._buffered_partitions
            if tp not in in_flight and (read := self._read_offset.get(tp)) is not None
            and max([*self._acked.get(tp, ()), (self._committed_offset.get(tp) or 0) - 1]) >= read
        ]
        for tp in drained:
            self.on_buffer_drop(tp)
        return drained

    def ack(self, message: Message) -> bool:
        with ack_lock:
            if not of_current_generation(self.app, message):
                message.acked = True
                self._unacked_messages.discard(message)
                return False
            return super().ack(message)


def of_current_generation(app: AppT, message: Message) -> bool:
    """Whether `message` was fetched in the consumer's current generation and flow is active (no rebalance or
    stop under way): what an agent may still process and ack. Other messages are fetched again."""
    return message.generation_id == app.consumer_generation_id and app.flow_control.is_active()


@contextmanager
def in_event_context(event: EventT[Any]) -> Iterator[None]:
    """Table reads and writes inside go to `event`'s partition (its local store and its changelog partition), as
    they do in the agent step of that event; for stages that take events in batches (`Stream.take_events`)."""
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


class DrainingProducer(faust_aiokafka.Producer):
    """`flush` returns only when the buffer of pending sends is empty and the Kafka producer has flushed."""

    async def flush(self) -> None:
        while self.buffer.size:
            await self.buffer.flush()
        await super().flush()


class RawTopic(faust.Topic):
    """A topic of bytes keys and values whose `send` hands each record straight to the app's producer, which is
    what Faust's own send does in the end (attachments are off). On the way, Faust builds a future message, an
    event and sensor state per record: on `bench.faust_floor` that took about 0.1 ms a record, ten times the
    producer's own send. The producer's flush before each commit covers these records as it covers Faust's."""

    @classmethod
    def of(cls, app: AppT, *names: str) -> RawTopic:
        return cls(app, topics=names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def send(self, *, key: bytes | None = None, value: bytes | None = None,  # type: ignore[override]
                   partition: int | None = None) -> Awaitable[RecordMetadata]:
        """Queues the record in the producer; returns its delivery (the broker's ack)."""
        return await self.app.producer.send(self.get_topic_name(), key, value, partition, None, None)


class AckedTable(faust.Table):  # type: ignore[type-arg]
    """A table whose change-log records a step can wait for: `changelog_acked` raises what a send failed with (a
    record too large for the change-log topic, a batch expired in an outage). Faust's flush before a commit waits for
    the pending sends but does not raise when one failed, so without this the offsets were committed over a state
    that never reached its change log."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent: list[Awaitable[RecordMetadata]] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        sent = super().send_changelog(*args, **kwargs)
        self._sent.append(sent)
        return sent

    async def changelog_acked(self) -> None:
        """Waits until the broker acked every change-log record sent since the last call; raises the first
        failure."""
        sent, self._sent = self._sent, []
        await asyncio.gather(*sent)


class CommitSafeTransport(faust_aiokafka.Transport):
    Consumer = CommitSafeConsumer
    Producer = DrainingProducer


class App(faust.App):
    """A Faust app on `CommitSafeTransport`."""

    def _new_transport(self) -> TransportT:
        return CommitSafeTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return CommitSafeTransport(self.conf.broker_producer, self)
