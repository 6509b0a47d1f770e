"""The encode stage's work: a batch of windows' search queries encoded in one hop to the model thread, and each
window's encoded form (the encoded topic's record). The encode agent runs it on the windows topic; ingest runs it on
the windows it flushes when the worker runs every stage (`streams.agents.CHAINS_STAGES`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from streams.agent_support import f16_text
from streams.app import runtime


def timed_query_encoding(queries: list[str]) -> np.ndarray:
    started, hits = time.perf_counter(), runtime.recent_queries.hits
    vectors = runtime.recent_queries.encode(queries, runtime.encoder)
    runtime.metrics.encoded(len(queries), time.perf_counter() - started)
    runtime.metrics.query_cache_hits.inc(runtime.recent_queries.hits - hits)
    return vectors


async def encoded_windows(windows: Sequence[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each window's encoded form: its events and the float16 vector of each of its search queries (a batch without
    a search makes no hop). Raises what the encoder raises."""
    searches = [(e["event_id"], e["query"]) for w in windows for e in w if e["kind"] == "search"]
    vectors = await runtime.in_model_thread(timed_query_encoding, [q for _, q in searches]) if searches else []
    by_event = {event_id: f16_text(v) for (event_id, _), v in zip(searches, vectors, strict=True)}
    return [{"events": window, "queries": {e["event_id"]: by_event[e["event_id"]]
                                           for e in window if e["event_id"] in by_event}}
            for window in windows]
