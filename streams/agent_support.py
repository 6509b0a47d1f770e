"""What every agent shares: the clock, dead-lettering, and stopping before an ack."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn, TypeVar

from streams.app import dead_letter_topic, runtime
from streams.dead_letter import SourcePosition, dead_letter_record
from streams.stall_watchdog import STALL_EXIT_CODE

log = logging.getLogger(__name__)
Item = TypeVar("Item")


def now_ms() -> float:
    return time.time() * 1000.0


async def send_dead_letter(reason: str, record: bytes, key: bytes | None, source: SourcePosition) -> None:
    """Writes the record to the dead-letter topic and waits for the broker's ack before the source is acked."""
    runtime.metrics.dead_lettered(reason)
    log.warning("dead-lettered %s[%s]@%s: %s", source.topic, source.partition, source.offset, reason)
    delivery = await dead_letter_topic.send(key=key, value=record)
    await delivery


async def dead_letter_internal(raw: bytes, key: bytes | None, error: Exception, source: SourcePosition) -> None:
    """A message a stage failed on goes to the dead-letter topic (never silently dropped) and is counted."""
    log.exception("stage failed on a message from %s[%s]@%s", source.topic, source.partition, source.offset)
    reason = f"internal error: {error_line(error)}"
    await send_dead_letter(reason, dead_letter_record(raw, key, reason, source, int(now_ms())), key, source)


def error_line(error: BaseException) -> str:
    """The error's type and the first line of its message.

    >>> error_line(OSError("no such model\\nsee the docs"))
    'OSError: no such model'
    """
    message = str(error)
    return f"{type(error).__name__}: {message.splitlines()[0] if message else ''}"


async def in_batch_or_one_by_one(
    step: Callable[[Sequence[Item]], Awaitable[None]], items: Sequence[Item],
    dead_letter: Callable[[Item, Exception], Awaitable[None]],
) -> None:
    """Runs `step` on the whole batch; if it fails, on one item at a time, dead-lettering an item that still fails
    (a bad item never takes its batch with it, and is never dropped)."""
    try:
        await step(items)
    except Exception:
        log.warning("a batch of %d failed in %s; trying one at a time", len(items), step.__name__, exc_info=True)
        for item in items:
            try:
                await step([item])
            except Exception as error:
                await dead_letter(item, error)


@contextmanager
def stopped_before_ack_on_failure(stage: str) -> Iterator[None]:
    """Around one step of a stage: an error that escapes it (a bad message is dead-lettered inside, so this is a
    failure to dead-letter, an outage) ends the worker at once (`stop_before_ack`) instead of ending the step."""
    try:
        yield
    except Exception as error:
        stop_before_ack(stage, error)


def stop_before_ack(stage: str, error: Exception) -> NoReturn:
    """Ends the worker at once with the exit code `driftrec worker` restarts it on. Faust acks every message of a
    batch when the batch's step ends (`Stream.take_events`, in a `finally`), whether or not it was processed, so
    letting the error end the step would commit offsets of messages nobody processed or dead-lettered; after the
    restart they are fetched again from the last commit."""
    log.critical("%s: a step failed and could not dead-letter its messages (%s); stopping the worker before they "
                 "are acked (exit code %d, to be restarted)", stage, error_line(error), STALL_EXIT_CODE, exc_info=error)
    exit_now(STALL_EXIT_CODE)


def exit_now(code: int) -> NoReturn:
    """Ends the worker at once, its log flushed: no shutdown that could wait on what is stuck or broken, and no
    commit (it leaves its consumer group without a LeaveGroup, as after a SIGKILL)."""
    logging.shutdown()
    os._exit(code)

