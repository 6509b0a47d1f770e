"""The encode agent: batches of windows in, their search queries encoded in one call, encoded windows out.

Runs in every worker of role `all`, and alone in the GPU encoder pool (role `encoder`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson

from streams.agent_support import dead_letter_internal, f16_text
from streams.app import app, encoded_topic, runtime, settings, windows_topic
from streams.dead_letter import SourcePosition

WINDOW_EVENT_KEYS = frozenset({"event_id", "user_id", "kind"})


def timed_query_encoding(queries: list[str]) -> np.ndarray:
    started, hits = time.perf_counter(), runtime.recent_queries.hits
    vectors = runtime.recent_queries.encode(queries, runtime.encoder)
    runtime.metrics.encoded(len(queries), time.perf_counter() - started)
    runtime.metrics.query_cache_hits.inc(runtime.recent_queries.hits - hits)
    return vectors


def checked_window(raw: bytes) -> list[dict[str, Any]]:
    """The events of a windows-topic record; ValueError when it is not a non-empty list of events.

    >>> checked_window(b'[{"event_id": "e1", "user_id": "u1", "kind": "view"}]')[0]["user_id"]
    'u1'
    >>> checked_window(b'{"events": []}')
    Traceback (most recent call last):
    ...
    ValueError: not a window: expected a non-empty list of events with event_id, user_id and kind
    """
    window = orjson.loads(raw)
    if not (isinstance(window, list) and window
            and all(isinstance(e, dict) and e.keys() >= WINDOW_EVENT_KEYS for e in window)):
        raise ValueError("not a window: expected a non-empty list of events with event_id, user_id and kind")
    return window


@app.agent(windows_topic)
async def encode(stream):  # type: ignore[no-untyped-def]
    """Encodes the search queries of a batch of windows in one encoder call; a record that is not a window is
    dead-lettered, the rest of its batch goes on."""
    async for batch in stream.take(settings.batch_size, within=settings.batch_within_s):
        windows = []
        for raw in batch:
            try:
                windows.append(checked_window(raw))
            except ValueError as error:  # orjson's decode error is a ValueError too
                await dead_letter_internal(raw, None, error, SourcePosition.unknown(settings.windows_topic))
        searches = [(e["event_id"], e["query"]) for w in windows for e in w if e["kind"] == "search"]
        try:
            vectors = await runtime.in_encoder_thread(timed_query_encoding, [q for _, q in searches])
        except Exception as error:
            for raw in batch:
                await dead_letter_internal(raw, None, error, SourcePosition.unknown(settings.windows_topic))
            continue
        by_event = {event_id: f16_text(v) for (event_id, _), v in zip(searches, vectors, strict=True)}
        for window in windows:
            queries = {e["event_id"]: by_event[e["event_id"]] for e in window if e["event_id"] in by_event}
            payload = orjson.dumps({"events": window, "queries": queries})
            await encoded_topic.send(key=window[0]["user_id"].encode(), value=payload)
