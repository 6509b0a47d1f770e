from streams.events import BehaviorEvent
from streams.windowing import WindowedEvent, WindowPolicy, decode_window, encode_window


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
