import pytest

from bench.model_floor import FeedbackWork, ModelFloor
from streams.events import BehaviorEvent


def test_feedback_work_counts_the_profiles_each_feedback_event_scores() -> None:
    events = [
        BehaviorEvent("e1", "u1", "view", 1, item_id="a"),  # first event of u1: no feedback
        BehaviorEvent("e2", "u2", "search", 2, query="q"),  # a search is no feedback, but u2 has a query now
        BehaviorEvent("e3", "u1", "click", 3, item_id="b"),  # short- and long-term
        BehaviorEvent("e4", "u2", "view", 4, item_id="a"),  # short- and long-term and the query
        BehaviorEvent("e5", "u2", "skip", 5, item_id="c"),
    ]
    assert FeedbackWork.of(events) == FeedbackWork(events=3, profiles=2 + 3 + 3)


def test_model_floor_adds_up_the_bare_seconds() -> None:
    floor = ModelFloor(queries=10, encode_s=1.0, feedback=FeedbackWork(5, 10), feedback_s=0.5, rank_s_per_list=0.01)
    assert floor.events_per_s(300, lists=50) == pytest.approx(300 / (1.0 + 0.5 + 0.5))


def test_model_work_weighs_every_window_once_and_ranks_each_batch_s_users(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faust")
    import numpy as np

    from bench.live_pipeline import scaled_catalogue
    from bench.model_work import encoded_windows, model_over, run
    from bench.pipeline import backlog_events
    from streams.app import runtime

    rng = np.random.default_rng(0)
    items = scaled_catalogue(60)
    monkeypatch.setitem(runtime.__dict__, "model", model_over(items, rng))
    events = backlog_events(12, 3, items)
    windows = encoded_windows(events, rng)
    assert sum(len(window.queries) for window in windows) == sum(e.kind == "search" for e in events) > 0
    seconds, lists = run(windows, batch=8)  # it asserts that each batch applied every one of its events
    assert lists == sum(len({e.user_id for e in events[s : s + 8]}) for s in range(0, len(events), 8))
    assert set(seconds) == {"learn, fold the shared log", "write states", "weight updates and rank",
                            "serialise updates and lists"}
    assert runtime.model.fed.total == sum(e.item_id is not None for e in events)
