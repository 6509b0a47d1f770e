"""The encode stage's work: a batch of windows' search queries encoded in one hop to the model thread, and each
window's encoded form (the encoded topic's record). The encode agent runs it on the windows topic; ingest runs it on
the windows it flushes when the worker runs every stage (`streams.agents.CHAINS_STAGES`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from streams.agent_support import f16_text
from streams.app import runtime

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
    """Each window's encoded form (its events and the float16 vector of each of its search queries), or None for a
    window with a search when the encoder failed on every try (`error` says how)."""

    payloads: list[dict[str, Any] | None]
    error: Exception | None = None


async def encoded_windows(windows: Sequence[list[dict[str, Any]]]) -> EncodedWindows:
    """The windows' encoded forms, their queries encoded in one call (a batch without a search makes no hop). A failed
    call is tried again `settings.encoder_attempts` times in all, waiting `settings.encoder_backoff_s` and doubling;
    if every try fails, only the windows with a search go without (a window without one never waits on it)."""
    searches = [(e["event_id"], e["query"]) for w in windows for e in w if e["kind"] == "search"]
    by_event: dict[str, str] = {}
    error = None
    if searches:
        try:
            vectors = await with_retries(lambda: runtime.in_model_thread(timed_query_encoding,
                                                                         [q for _, q in searches]))
            by_event = {event_id: f16_text(v) for (event_id, _), v in zip(searches, vectors, strict=True)}
        except Exception as failure:
            error = failure
    searched = {event_id for event_id, _ in searches}
    return EncodedWindows([
        None if error is not None and any(e["event_id"] in searched for e in window)
        else {"events": window, "queries": {e["event_id"]: by_event[e["event_id"]]
                                            for e in window if e["event_id"] in by_event}}
        for window in windows
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
