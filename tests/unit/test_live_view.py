"""The live view's bounded per-user memory of recommendations and weights."""

from typing import Any

from streams.live_view import LiveView


def recommendation(user: str, ts: int, short_term: float) -> dict[str, Any]:
    return {"user_id": user, "ts": ts, "trigger_event_id": f"{user}-{ts}", "latency_ms": 5.0,
            "weights": {"short_term": short_term, "long_term": 1 - short_term},
            "items": [{"item_id": f"i{ts}", "score": 1.0, "contributions": {}, "reason": "r"}]}


def test_keeps_latest_and_weight_history_in_event_time() -> None:
    view = LiveView(history=3)
    for ts, weight in [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]:
        view.record(recommendation("u", ts, weight))
    view.record(recommendation("u", 2, 0.9))  # an older list arriving late changes nothing
    user = view.user("u")
    assert user is not None
    assert user["latest"]["items"][0]["item_id"] == "i4"
    assert [point["ts"] for point in user["weights_over_time"]] == [2, 3, 4]
    assert [point["weights"]["short_term"] for point in user["weights_over_time"]] == [0.2, 0.3, 0.4]


def test_forgets_the_least_recently_updated_users_beyond_its_bound() -> None:
    view = LiveView(max_users=2)
    view.record(recommendation("a", 1, 0.5))
    view.record(recommendation("b", 1, 0.5))
    view.record(recommendation("a", 2, 0.5))
    view.record(recommendation("c", 1, 0.5))
    assert view.user("b") is None
    assert [user["user_id"] for user in view.recent(10)] == ["c", "a"]
    assert [user["user_id"] for user in view.recent(1)] == ["c"]
