"""The encode agent of the encoder pool (role `encoder`): batches of windows in, their search queries encoded in one
call, encoded windows out. A worker that runs every stage encodes the windows it flushes in its own step
(`streams.agents.CHAINS_STAGES`) and runs no encode agent.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from streams.agent_support import dead_letter_internal, stopped_before_ack_on_failure
from streams.app import app, encoded_topic, settings, windows_topic
from streams.dead_letter import SourcePosition
from streams.query_encoding import encoded_windows
from streams.windowing import WindowedEvent

WINDOW_EVENT_KEYS = frozenset({"event_id", "user_id", "kind", "ts", "source", "arrived_ms"})


def checked_window(raw: bytes) -> list[WindowedEvent]:
    """The events of a windows-topic record; ValueError when it is not a non-empty list of windowed events (a
    window the encoder could not read is dead-lettered alone, not with its batch).

    >>> checked_window(b'[{"event_id": "e1", "user_id": "u1", "kind": "view", "ts": 1, "source": "t:0:0", '
    ...                b'"arrived_ms": 1.0}]')[0].event.user_id
    'u1'
    >>> checked_window(b'{"events": []}')
    Traceback (most recent call last):
    ...
    ValueError: not a window: expected a non-empty list of events with event_id, user_id, kind, ts, source, arrived_ms
    """
    window = orjson.loads(raw)
    if not (isinstance(window, list) and window and all(map(is_windowed_event, window))):
        raise ValueError("not a window: expected a non-empty list of events with event_id, user_id, kind, ts, source, "
                         "arrived_ms")
    return [WindowedEvent.from_dict(data) for data in window]


def is_windowed_event(data: object) -> bool:
    """Whether `data` has a windowed event's keys, its ids and kind as text, and a search its query as text."""
    return (isinstance(data, dict) and data.keys() >= WINDOW_EVENT_KEYS
            and all(isinstance(data[key], str) for key in ("event_id", "user_id", "kind"))
            and (data["kind"] != "search" or isinstance(data.get("query"), str)))


@app.agent(windows_topic)
async def encode(stream):  # type: ignore[no-untyped-def]
    """Encodes the search queries of a batch of windows in one encoder call (tried again on failure); a record that
    is not a window, or whose search could not be encoded, is dead-lettered, the rest of its batch goes on."""
    async for batch in stream.take(settings.batch_size, within=settings.batch_within_s):
        with stopped_before_ack_on_failure("encode"):
            await encode_batch(batch)


async def encode_batch(batch: Sequence[bytes]) -> None:
    """One batch of the encode agent: its windows' queries encoded, their encoded forms sent."""
    windows, raws = [], []
    for raw in batch:
        try:
            window = checked_window(raw)
        except (ValueError, TypeError) as error:  # orjson's decode error is a ValueError too
            await dead_letter_internal(raw, None, error, SourcePosition.unknown(settings.windows_topic))
            continue
        windows.append((window[0].event.user_id, window))
        raws.append(raw)
    encoded = await encoded_windows(windows)
    for raw, encoded_window in zip(raws, encoded.windows, strict=True):
        if encoded_window is None:  # its search could not be encoded, after every try
            assert encoded.error is not None
            await dead_letter_internal(raw, None, encoded.error, SourcePosition.unknown(settings.windows_topic))
        else:
            await encoded_topic.send(key=encoded_window.user_id.encode(), value=encoded_window.to_bytes())
