"""Synthetic drift scenarios for the replay: users whose interest shifts, and how fast each method follows.

A scenario's log marks each user's first few events after each shift of interest; a method's recovery is its HR@k
over them.

* `switch`: every user switches topic once, abruptly; within a topic a user acts on random items of it;
* `sequential-switch`: the same, but within a topic a user mostly follows the topic's items in order (a series;
  60% of the time the next item, else a random one of the topic, where the series goes on from);
* `search-detour`: a user keeps to a home topic but now and then searches for another one and acts on a few of its
  items before coming back; the shift is the search;
* `two-interests`: a user has two topics and keeps to one per session (sessions hours apart, a series 40% of the
  time within one); the shift is a session on the other topic than the session before;
* `trending`: items enter the catalogue over the log's time and half of all events are on the newest ones, the other
  half on the user's topic; no shift is marked.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from streams.events import BehaviorEvent, Item
from streams.synthetic import KIND_MIX, behaviour_stream, make_users

if TYPE_CHECKING:
    from replay.prequential import ReplayResult

START_TS = 1_700_000_000_000
AFTER_SHIFT = 5
"""A shift's recovery counts this many of the user's item events after it."""
ITEM_KINDS = (("view", 0.6), ("click", 0.25), ("cart", 0.1), ("purchase", 0.05))
TRENDING_NEWEST = 15
"""In `trending`, the trending items are the newest this many that have entered."""


@dataclass(frozen=True)
class ScenarioSize:
    users: int = 240
    events_per_user: int = 60


@dataclass(frozen=True)
class DriftLog:
    events: list[BehaviorEvent]
    shifted: frozenset[str]
    """The ids of the item events among each user's first `AFTER_SHIFT` events after each shift of interest."""


def topics_of(items: Sequence[Item]) -> dict[str, list[Item]]:
    by_topic: dict[str, list[Item]] = {}
    for item in items:
        for tag in item.tags:
            by_topic.setdefault(tag, []).append(item)
    return by_topic


def _switch(sequential: float) -> Callable[[Sequence[Item], int, ScenarioSize], DriftLog]:
    def log(items: Sequence[Item], seed: int, size: ScenarioSize) -> DriftLog:
        people = make_users(size.users, sorted(topics_of(items)), seed=seed, drift_share=1.0,
                            switch_at=(size.events_per_user // 3, 3 * size.events_per_user // 4))
        events = list(behaviour_stream(people, items, size.events_per_user, START_TS, seed=seed, kind_mix=KIND_MIX,
                                       sequential=sequential))
        after = {f"{user.user_id}-{n:05d}" for user in people if user.switch_at is not None
                 for n in range(user.switch_at, user.switch_at + AFTER_SHIFT)}
        return DriftLog(events, frozenset(e.event_id for e in events if e.event_id in after and e.item_id))
    return log


def _item_event(rng: random.Random, event_id: str, user_id: str, ts: int, item: Item) -> BehaviorEvent:
    kinds, weights = [kind for kind, _ in ITEM_KINDS], [weight for _, weight in ITEM_KINDS]
    return BehaviorEvent(event_id, user_id, rng.choices(kinds, weights)[0], ts, item_id=item.item_id)


def _interleaved(rng: random.Random, size: ScenarioSize) -> Iterator[tuple[int, int, int]]:
    """(user, the user's event number, time) for every event, the users' events shuffled together a second apart."""
    order = [user for user in range(size.users) for _ in range(size.events_per_user)]
    rng.shuffle(order)
    counts = [0] * size.users
    for n, user in enumerate(order):
        counts[user] += 1
        yield user, counts[user] - 1, START_TS + n * 1000


def search_detour(items: Sequence[Item], seed: int, size: ScenarioSize) -> DriftLog:
    rng = random.Random(seed)
    by_topic = topics_of(items)
    topics = sorted(by_topic)
    home = [topics[user % len(topics)] for user in range(size.users)]
    detours: dict[int, tuple[str, int, int]] = {}  # user: the searched topic, item events left and done
    events, shifted = [], set()
    for user, n, ts in _interleaved(rng, size):
        user_id = f"user-{user:04d}"
        event_id = f"{user_id}-{n:05d}"
        if user not in detours and rng.random() < 0.12:
            topic = rng.choice([t for t in topics if t != home[user]])
            detours[user] = (topic, rng.randint(2, 6), 0)
            events.append(BehaviorEvent(event_id, user_id, "search", ts,
                                        query=f"{topic} {rng.choice(by_topic[topic]).title}"))
            continue
        topic = home[user]
        if user in detours:
            topic, left, done = detours.pop(user)
            if left > 1:
                detours[user] = (topic, left - 1, done + 1)
            if done < AFTER_SHIFT:
                shifted.add(event_id)
        events.append(_item_event(rng, event_id, user_id, ts, rng.choice(by_topic[topic])))
    return DriftLog(events, frozenset(shifted))


def two_interests(items: Sequence[Item], seed: int, size: ScenarioSize) -> DriftLog:
    rng = random.Random(seed)
    by_topic = topics_of(items)
    topics = sorted(by_topic)
    events, shifted = [], set()
    for user in range(size.users):
        user_id = f"user-{user:04d}"
        interests = rng.sample(topics, 2)
        ts = START_TS + rng.randint(0, 3_600_000)
        n, previous = 0, ""
        while n < size.events_per_user:
            topic = interests[0] if rng.random() < 0.6 else interests[1]
            pool = by_topic[topic]
            position = rng.randrange(len(pool))
            for m in range(rng.randint(3, 10)):
                if n == size.events_per_user:
                    break
                position = (position + 1) % len(pool) if rng.random() < 0.4 else rng.randrange(len(pool))
                event_id = f"{user_id}-{n:05d}"
                if previous and topic != previous and m < AFTER_SHIFT:
                    shifted.add(event_id)
                events.append(_item_event(rng, event_id, user_id, ts, pool[position]))
                ts += rng.randint(20_000, 200_000)
                n += 1
            previous = topic
            ts += rng.randint(3, 48) * 3_600_000
    events.sort(key=lambda e: (e.ts, e.event_id))
    return DriftLog(events, frozenset(shifted))


def trending_items(items: Sequence[Item], size: ScenarioSize) -> list[Item]:
    """The items entering the catalogue one after another over the first 90% of the log's time, in a fixed shuffled
    order (so every seed's log ranks over the same catalogue)."""
    order = list(items)
    random.Random(0).shuffle(order)
    span = size.users * size.events_per_user * 1000 * 0.9
    return [replace(item, ts=START_TS + int(n * span / len(order))) for n, item in enumerate(order)]


def trending(items: Sequence[Item], seed: int, size: ScenarioSize) -> DriftLog:
    rng = random.Random(seed)
    dated = sorted(items, key=lambda item: item.ts)
    by_topic = topics_of(dated)
    topics = sorted(by_topic)
    events = []
    for user, n, ts in _interleaved(rng, size):
        entered = [item for item in dated if item.ts <= ts]
        if rng.random() < 0.5:
            item = rng.choice(entered[-TRENDING_NEWEST:])
        else:
            topic = topics[user % len(topics)]
            item = rng.choice([item for item in by_topic[topic] if item.ts <= ts] or entered)
        events.append(_item_event(rng, f"user-{user:04d}-{n:05d}", f"user-{user:04d}", ts, item))
    return DriftLog(events, frozenset())


SCENARIOS: dict[str, Callable[[Sequence[Item], int, ScenarioSize], DriftLog]] = {
    "switch": _switch(0.0), "sequential-switch": _switch(0.6), "search-detour": search_detour,
    "two-interests": two_interests, "trending": trending,
}


def scenario_items(name: str, items: Sequence[Item], size: ScenarioSize = ScenarioSize()) -> list[Item]:
    """The catalogue a scenario's logs use: the items as given, or entering over time (`trending`)."""
    return trending_items(items, size) if name == "trending" else list(items)


def drift_log(name: str, items: Sequence[Item], seed: int, size: ScenarioSize = ScenarioSize()) -> DriftLog:
    """A scenario's log over `items` (as `scenario_items` gives them) for a seed."""
    return SCENARIOS[name](items, seed, size)


def recovery(result: ReplayResult, shifted: frozenset[str], k: int) -> dict[str, float]:
    """Each method's HR@k over the evaluated events among `shifted` (the first events after a shift)."""
    evaluated = shifted & set(result.evaluated_ids)
    return {name: len(evaluated & set(hits)) / max(len(evaluated), 1) for name, hits in result.hits.items()} | {
        "evaluations": float(len(evaluated))}
