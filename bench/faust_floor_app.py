"""The framework's floor as a Faust worker: the worker's own app, one agent that does nothing but stage plumbing.

    python -m bench.faust_floor_app   (run by `bench.faust_floor`, with the settings in the environment)

The agent takes the behaviour topic in batches as ingest does (`take_events`, the same batch size and wait) and
parses each value; FAUST_FLOOR_MODE adds, per event, the plumbing named in `bench.faust_floor.MODES`. After
FAUST_FLOOR_EVENTS events it writes its figure to the file FAUST_FLOOR_RESULT (JSON: events, and seconds from the
first batch to the last event with every send flushed) and stops the worker.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import orjson

from streams.app import app, ingest_topic, settings, weights_topic
from streams.faust_transport import in_event_context

EXPECTED = int(os.environ.get("FAUST_FLOOR_EVENTS", "0"))
MODE = os.environ.get("FAUST_FLOOR_MODE", "parse")
states = app.Table("floor-states", key_type=str, value_type=bytes, partitions=settings.partitions)
faust_topic = app.topic(weights_topic.get_topic_name(), key_type=bytes, value_type=bytes, key_serializer="raw",
                        value_serializer="raw")
"""The same output topic with Faust's own send path."""


async def plumbing(event, payload: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    if MODE in ("table", "stage"):
        with in_event_context(event):
            states[payload["user_id"]] = event.value
    if MODE in ("send", "stage"):
        await weights_topic.send(key=event.key, value=event.value)
    if MODE == "faust-send":
        await faust_topic.send(key=event.key, value=event.value)


@app.agent(ingest_topic)
async def floor(stream):  # type: ignore[no-untyped-def]
    count, first = 0, 0.0
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
        first = first or time.perf_counter()
        for event in events:
            await plumbing(event, orjson.loads(event.value))
        count += len(events)
        if count >= EXPECTED:
            await app.producer.flush()
            seconds = time.perf_counter() - first
            Path(os.environ["FAUST_FLOOR_RESULT"]).write_bytes(orjson.dumps({"events": count, "seconds": seconds}))
            os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    # info, as `driftrec worker` runs: at warn, Faust's terminal spinner sets the root logger to DEBUG, and every
    # debug call of aiokafka and Faust then builds a record
    sys.argv = ["faust-floor", "worker", "--without-web", "--loglevel", "info"]
    app.main()
