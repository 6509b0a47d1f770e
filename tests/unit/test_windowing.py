import numpy as np

from streams.events import BehaviorEvent
from streams.windowing import (
    EncodedWindow,
    PendingWindows,
    WindowedEvent,
    WindowPolicy,
    decode_window,
    encode_window,
    source_partition,
)


def windowed(kind: str, arrived: float, n: int = 0) -> WindowedEvent:
    item = None if kind == "search" else "i1"
    query = "q" if kind == "search" else None
    return WindowedEvent(BehaviorEvent(f"e{n}", "u1", kind, 1000 + n, item, query), f"t:0:{n}", arrived)


def test_flushes_on_size_age_and_strong_events() -> None:
    policy = WindowPolicy(max_events=3, max_wait_ms=100)
    assert not policy.is_due([], 0)
    assert not policy.is_due([windowed("view", 0)], 50)
    assert policy.is_due([windowed("view", 0)], 100)
    assert policy.is_due([windowed("view", 0, i) for i in range(3)], 1)
    assert policy.is_due([windowed("view", 0), windowed("purchase", 1, 1)], 2)
    assert policy.is_due([windowed("search", 0)], 0)


def test_window_round_trips() -> None:
    window = [windowed("view", 5.0), windowed("search", 6.0, 1)]
    assert decode_window(encode_window(window)) == window
    assert decode_window(None) == [] and decode_window(b"") == []


def test_an_encoded_window_carries_float16_queries_in_memory_as_on_the_topic() -> None:
    window = [windowed("view", 5.0), windowed("search", 6.0, 1)]
    vector = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    encoded = EncodedWindow.of("u1", window, {"e1": vector})
    rounded = vector.astype(np.float16).astype(np.float32)
    assert np.array_equal(encoded.query_vector("e1"), rounded) and not np.array_equal(rounded, vector)
    assert encoded.query_vector("e0") is None
    wired = EncodedWindow.from_bytes(encoded.to_bytes())
    assert (wired.user_id, wired.events) == ("u1", window)
    assert np.array_equal(wired.query_vector("e1"), rounded)


def test_pending_windows_are_taken_per_partition_oldest_first() -> None:
    pending = PendingWindows()
    pending.opened(0, "a", 0.0)
    pending.opened(0, "b", 50.0)
    pending.opened(0, "a", 40.0)  # a's window is still the one opened at 0
    pending.opened(1, "c", 0.0)
    assert pending.take_due(0, 120.0, 100.0) == ["a"]
    assert pending.take_due(0, 120.0, 100.0) == []
    assert pending.first_arrived(0, "b") == 50.0 and pending.first_arrived(0, "a") is None
    # partition 0 had a message at 120; partition 1 never did, so only its window needs a tick
    assert pending.take_quiet_due(130.0, 100.0, quiet_ms=20.0) == [(1, "c", 0.0)]
    assert pending.take_quiet_due(130.0, 100.0, quiet_ms=20.0) == []
    assert pending.take_quiet_due(200.0, 100.0, quiet_ms=20.0) == [(0, "b", 50.0)]
    pending.opened(0, "d", 190.0)
    pending.closed(0, "d")
    assert pending.take_due(0, 400.0, 100.0) == []


def test_a_window_armed_again_keeps_its_place_by_age() -> None:
    pending = PendingWindows()
    pending.opened(0, "new", 300.0)
    pending.opened(0, "old", 0.0)  # its flush failed: armed again, older than the window opened since
    assert pending.take_due(0, 150.0, 100.0) == ["old"]


def test_a_window_names_its_source_partition() -> None:
    assert source_partition([windowed("view", 0.0, 7)]) == 0
    assert source_partition([WindowedEvent(BehaviorEvent("e", "u", "view", 1, "i1"), "my.topic-a:3:12", 0.0)]) == 3
