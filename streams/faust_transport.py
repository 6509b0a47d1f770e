"""Faust's Kafka transport with two fixes to what a commit covers (at-least-once delivery).

* A message from an earlier consumer generation is never acked. After a rebalance Faust's stream iterator skips
  messages fetched in the previous generation (they are fetched again from the committed offset) but acks them
  as it acks filtered messages, so their offsets could be committed although no agent processed them.
* Before offsets are committed, the producer's buffer is drained completely. Table writes (changelog records)
  wait in that buffer, and Faust's flush gives up when a message takes longer than 0.1 s, so a commit could
  cover inputs whose state changes were still unsent — lost if the worker then dies.
"""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message, TransportT
from faust.types.tuples import ack_lock


class GenerationCheckedConsumer(faust_aiokafka.Consumer):
    """Acks only messages of the current generation."""

    def ack(self, message: Message) -> bool:
        with ack_lock:
            if message.generation_id != self.app.consumer_generation_id:
                message.acked = True
                self._unacked_messages.discard(message)
                return False
            return super().ack(message)


class DrainingProducer(faust_aiokafka.Producer):
    """`flush` returns only when the buffer of pending sends is empty and the Kafka producer has flushed."""

    async def flush(self) -> None:
        while self.buffer.size:
            await self.buffer.flush()
        await super().flush()


class CommitSafeTransport(faust_aiokafka.Transport):
    Consumer = GenerationCheckedConsumer
    Producer = DrainingProducer


class App(faust.App):
    """A Faust app on `CommitSafeTransport`."""

    def _new_transport(self) -> TransportT:
        return CommitSafeTransport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> TransportT:
        return CommitSafeTransport(self.conf.broker_producer, self)
