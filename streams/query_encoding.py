"""The encode stage's work: a batch of windows' search queries encoded in one hop to the model thread. Ingest runs
it on the windows it flushes when its worker runs every stage (`streams.agents.CHAINS_STAGES`); the encode agent of
the encoder pool on the windows a `core` worker wrote."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np

from streams.app import runtime
from streams.windowing import EncodedWindow, WindowedEvent

log = logging.getLogger(__name__)
Result = TypeVar("Result")


def timed_query_encoding(queries: list[str]) -> np.ndarray:
    started, hits = time.perf_counter(), runtime.recent_queries.hits
    vectors = runtime.recent_queries.encode(queries, runtime.encoder)
    runtime.metrics.encoded(len(queries), time.perf_counter() - started)
    runtime.metrics.query_cache_hits.inc(runtime.recent_queries.hits - hits)
    return vectors


@dataclass(frozen=True)
class EncodedWindows:
    """Each window encoded, or None for a window with a search when the encoder failed on every try (`error` says
    how)."""

    windows: list[EncodedWindow | None]
    error: Exception | None = None


async def encoded_windows(flushes: Sequence[tuple[str, list[WindowedEvent]]]) -> EncodedWindows:
    """The (user, window) flushes encoded, their queries in one call (a batch without a search makes no hop). A
    failed call is tried again `settings.encoder_attempts` times in all, waiting `settings.encoder_backoff_s` and
    doubling; if every try fails, only the windows with a search go without (a window without one never waits on
    it)."""
    searches = [(item.event.event_id, cast(str, item.event.query)) for _, window in flushes for item in window
                if item.event.kind == "search"]
    by_event: dict[str, np.ndarray] = {}
    error = None
    if searches:
        try:
            vectors = await with_retries(lambda: runtime.in_model_thread(timed_query_encoding,
                                                                         [q for _, q in searches]))
            by_event = dict(zip((event_id for event_id, _ in searches), vectors, strict=True))
        except Exception as failure:
            error = failure
    searched = {event_id for event_id, _ in searches}
    return EncodedWindows([
        None if error is not None and any(item.event.event_id in searched for item in window)
        else EncodedWindow.of(user_id, window, {item.event.event_id: by_event[item.event.event_id]
                                                for item in window if item.event.event_id in by_event})
        for user_id, window in flushes
    ], error)


async def with_retries(call: Callable[[], Awaitable[Result]]) -> Result:
    """`call()`, tried again after a failure up to `settings.encoder_attempts` tries in all, with a doubling wait
    from `settings.encoder_backoff_s`; raises the last try's error."""
    attempts, wait = runtime.settings.encoder_attempts, runtime.settings.encoder_backoff_s
    for attempt in range(1, attempts):
        try:
            return await call()
        except Exception:
            log.warning("query encoding failed (try %d of %d); trying again in %.2fs", attempt, attempts, wait,
                        exc_info=True)
            await asyncio.sleep(wait)
            wait *= 2
    return await call()
