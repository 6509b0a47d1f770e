from collections import defaultdict
from itertools import pairwise

import pytest

from replay.drift_scenarios import AFTER_SHIFT, SCENARIOS, ScenarioSize, drift_log, scenario_items
from streams.catalogue_data import builtin_catalogue

SIZE = ScenarioSize(users=40, events_per_user=40)


@pytest.fixture(scope="module")
def items():  # type: ignore[no-untyped-def]
    return builtin_catalogue()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_gives_each_user_their_events_in_time_order(name: str, items) -> None:  # type: ignore[no-untyped-def]
    log = drift_log(name, scenario_items(name, items, SIZE), seed=1, size=SIZE)
    by_user = defaultdict(list)
    for event in log.events:
        by_user[event.user_id].append(event)
    assert len(by_user) == SIZE.users and {len(e) for e in by_user.values()} == {SIZE.events_per_user}
    assert [e.ts for e in log.events] == sorted(e.ts for e in log.events)
    assert len({e.event_id for e in log.events}) == len(log.events)
    assert log.shifted <= {e.event_id for e in log.events if e.item_id is not None}
    assert drift_log(name, scenario_items(name, items, SIZE), seed=1, size=SIZE) == log  # a seed is one log


def test_a_search_detour_is_followed_by_items_of_the_searched_topic(items) -> None:  # type: ignore[no-untyped-def]
    log = drift_log("search-detour", items, seed=3, size=SIZE)
    tag = {item.item_id: item.tags[0] for item in items}
    searched: dict[str, str] = {}
    followed, after = 0, defaultdict(int)
    for event in log.events:
        if event.kind == "search":
            searched[event.user_id] = event.query.split()[0]
            after[event.user_id] = 0
        elif event.event_id in log.shifted:
            assert tag[event.item_id] == searched[event.user_id]
            after[event.user_id] += 1
            assert after[event.user_id] <= AFTER_SHIFT
            followed += 1
    assert followed >= 2 * sum(e.kind == "search" for e in log.events)  # every detour has two to six items


def test_two_interests_keep_one_topic_a_session_and_mark_the_sessions_that_change(items) -> None:  # type: ignore[no-untyped-def]
    log = drift_log("two-interests", items, seed=4, size=SIZE)
    tag = {item.item_id: item.tags[0] for item in items}
    sessions: dict[str, list[list]] = defaultdict(list)  # user: sessions (hours apart), each its events
    for event in log.events:
        own = sessions[event.user_id]
        if not own or event.ts - own[-1][-1].ts >= 3 * 3_600_000:
            own.append([])
        own[-1].append(event)
    expected, used = set(), []
    for own in sessions.values():
        used.append(len({tag[e.item_id] for session in own for e in session}))
        for previous, session in pairwise(own):
            assert len({tag[e.item_id] for e in session}) == 1
            if tag[session[0].item_id] != tag[previous[0].item_id]:
                expected |= {e.event_id for e in session[:AFTER_SHIFT]}
    assert max(used) == 2 and used.count(2) > 0.8 * SIZE.users
    assert log.shifted == expected and expected


def test_trending_events_are_on_entered_items_half_on_the_newest(items) -> None:  # type: ignore[no-untyped-def]
    dated = scenario_items("trending", items, SIZE)
    assert sorted(i.item_id for i in dated) == sorted(i.item_id for i in items) and len({i.ts for i in dated}) > 300
    log = drift_log("trending", dated, seed=5, size=SIZE)
    entered = {item.item_id: item.ts for item in dated}
    assert all(entered[e.item_id] <= e.ts for e in log.events)
    newest = sum(sorted(t for t in entered.values() if t <= e.ts)[-15:][0] <= entered[e.item_id] for e in log.events)
    assert 0.45 < newest / len(log.events) < 0.75  # half by design, and some of the user's topic are new too
    assert not log.shifted
