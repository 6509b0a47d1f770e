from streams.events import BehaviorEvent
from streams.windowing import PendingWindows, WindowBatch, WindowedEvent, WindowPolicy, decode_window, encode_window


def windowed(kind: str, arrived: float, n: int = 0, user: str = "u1") -> WindowedEvent:
    item = None if kind == "search" else "i1"
    query = "q" if kind == "search" else None
    return WindowedEvent(BehaviorEvent(f"e{n}", user, kind, 1000 + n, item, query), f"t:0:{n}", arrived)


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


def test_a_batch_loads_each_window_once_and_sets_due_windows_aside_in_order() -> None:
    stored = {"u1": [windowed("view", 0, 0)], "u2": [windowed("view", 0, 10, "u2")],
              "u3": [windowed("view", 90, 20, "u3")]}
    loads: list[str] = []

    def load(user_id: str) -> list[WindowedEvent]:
        loads.append(user_id)
        return list(stored.get(user_id, []))

    batch = WindowBatch(WindowPolicy(max_events=3, max_wait_ms=100), load)
    batch.add(windowed("view", 10, 1))
    batch.add(windowed("click", 11, 2))  # the third event: u1's window is due
    batch.add(windowed("view", 12, 3))  # starts u1's next window
    batch.flush_if_due("u2", 100)  # a tick: u2's window waited 100 ms
    batch.flush_if_due("u3", 100)  # a tick for a window that is not due yet
    batch.flush_if_due("u4", 100)  # a tick for a window flushed already (nothing stored)

    assert loads == ["u1", "u2", "u3", "u4"]
    assert [(user, [item.event.event_id for item in window]) for user, window in batch.flushed] == [
        ("u1", ["e0", "e1", "e2"]), ("u2", ["e10"])]
    assert [item.event.event_id for item in batch.windows["u1"]] == ["e3"]
    assert batch.windows["u2"] == [] and batch.changed == {"u1", "u2"}


def test_pending_windows_are_due_per_partition_and_ticks_are_re_armed_until_closed() -> None:
    pending = PendingWindows()
    pending.opened(0, "u1", due_ms=100)
    pending.opened(0, "u2", due_ms=300)
    pending.opened(1, "u3", due_ms=100)
    assert pending.due(0, 150) == ["u1"] and pending.due(1, 150) == ["u3"] and pending.due(2, 150) == []
    assert pending.to_tick(140, grace_ms=50, owned={0, 1}) == []
    assert sorted(pending.to_tick(150, grace_ms=50, owned={0, 1})) == ["u1", "u3"]
    assert pending.to_tick(180, grace_ms=50, owned={0, 1}) == []  # asked at 150: asked again at 200
    assert sorted(pending.to_tick(200, grace_ms=50, owned={0, 1})) == ["u1", "u3"]
    pending.closed(0, "u1")
    assert pending.to_tick(250, grace_ms=50, owned=set()) == ["u3"]  # no assignment known: nothing forgotten
    assert pending.to_tick(400, grace_ms=50, owned={0}) == ["u2"]  # partition 1 went to another worker
    assert pending.due(1, 1000) == []
