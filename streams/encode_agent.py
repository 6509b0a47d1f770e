"""The encode agent: batches of windows records in, their search queries encoded in one call, encoded windows out.

Runs in every worker of role `all`, and alone in the GPU encoder pool (role `encoder`).
"""

from __future__ import annotations

import time

import numpy as np
import orjson

from encoders.cached_encoding import encode_queries
from streams.agent_support import dead_letter_internal, f16_text
from streams.app import app, encoded_topic, runtime, settings, windows_topic
from streams.windowing import chunks_of_events


def timed_query_encoding(queries: list[str]) -> np.ndarray:
    started = time.perf_counter()
    vectors = encode_queries(queries, runtime.encoder)
    runtime.metrics.encoded(len(queries), time.perf_counter() - started)
    return vectors


@app.agent(windows_topic)
async def encode(stream):  # type: ignore[no-untyped-def]
    """Encodes the search queries of a batch of windows records in one encoder call; sends one encoded record per
    partition, to the same partition (where the windows' users' states live)."""
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        by_partition: dict[int, list[list[dict]]] = {}  # type: ignore[type-arg]
        for event in events:
            try:
                by_partition.setdefault(event.message.partition, []).extend(orjson.loads(event.value))
            except Exception as error:
                await dead_letter_internal(event.value, event.key, error, settings.windows_topic)
        windows = [window for partition_windows in by_partition.values() for window in partition_windows]
        searches = [(e["event_id"], e["query"]) for w in windows for e in w if e["kind"] == "search"]
        try:
            vectors = await runtime.in_encoder_thread(timed_query_encoding, [q for _, q in searches])
        except Exception as error:
            for event in events:
                await dead_letter_internal(event.value, event.key, error, settings.windows_topic)
            continue
        by_event = {event_id: f16_text(v) for (event_id, _), v in zip(searches, vectors, strict=True)}
        for partition, partition_windows in by_partition.items():
            for chunk in chunks_of_events(partition_windows):
                queries = {e["event_id"]: by_event[e["event_id"]] for w in chunk for e in w
                           if e["event_id"] in by_event}
                payload = orjson.dumps({"windows": chunk, "queries": queries})
                await encoded_topic.send(key=str(partition).encode(), value=payload, partition=partition)
