"""The weigh agent of a `core` worker: the windows the encoder pool encoded, applied to the users' states and
ranked (`streams.agents.weigh_batch`, the step a worker that runs every stage takes on the windows it flushes)."""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT

from streams.agent_support import dead_letter_internal, in_batch_or_one_by_one, stopped_before_ack_on_failure
from streams.agents import dead_letter_event, weigh_batch
from streams.app import app, encoded_topic, runtime, settings
from streams.dead_letter import SourcePosition
from streams.faust_transport import of_current_generation
from streams.windowing import EncodedWindow


@app.agent(encoded_topic)
async def weigh(stream):  # type: ignore[no-untyped-def]
    """Updates users' states from batches of encoded windows, emits their WeightUpdates and ranks them. Faust
    acks a batch's messages only after this step returns, so a crash mid-batch redelivers them (state ignores
    applied events).
    A batch that fails is retried one window at a time; a window that still fails is dead-lettered.

    Faust's rebalance empties the agents' queues but not what `take_events` already buffered, so a batch may hold
    messages of an earlier generation: those are left to be fetched again, as Faust's own iterator leaves them,
    and a batch during which a rebalance began writes nothing (its acks would be refused anyway)."""
    await runtime.model_ready.wait()
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        with stopped_before_ack_on_failure("weigh"):
            await weigh_events(events)


async def weigh_events(events: Sequence[EventT]) -> None:  # type: ignore[type-arg]
    """One batch of the weigh agent: the encoded windows of the current generation, a record that is not one
    dead-lettered."""
    windows = []
    for event in events:
        if not of_current_generation(app, event.message):
            continue  # buffered before a rebalance: fetched again from the committed offset
        try:
            windows.append((event, EncodedWindow.from_bytes(event.value)))
        except Exception as error:
            await dead_letter_internal(event.value, event.key, error, SourcePosition.of(event.message))
    if windows:
        await in_batch_or_one_by_one(weigh_batch, windows, dead_letter_window)


async def dead_letter_window(window: tuple[EventT, EncodedWindow], error: Exception) -> None:  # type: ignore[type-arg]
    await dead_letter_event(window[0], error)
