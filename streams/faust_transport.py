"""Faust's Kafka transport with one fix: a message from an earlier consumer generation is never acked.

After a rebalance, Faust's stream iterator skips messages that were fetched in the previous generation (they
are fetched again from the committed offset) but acks them as it acks filtered messages, so their offsets
could be committed although no agent processed them. This consumer drops such an ack instead: the offset
stays uncommitted and the message is processed when it is delivered again.
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


class GenerationCheckedTransport(faust_aiokafka.Transport):
    Consumer = GenerationCheckedConsumer


class App(faust.App):
    """A Faust app whose consumer is `GenerationCheckedConsumer`."""

    def _new_transport(self) -> TransportT:
        return GenerationCheckedTransport(self.conf.broker_consumer, self)
