"""Synthetic users with distinct (and optionally shifting) tastes, for the demo, tests and drift experiments."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.events import BehaviorEvent, Item

SEARCH_WORDS = ("guide", "ideas", "best of", "for beginners", "news")
KIND_MIX = (("view", 0.55), ("click", 0.2), ("cart", 0.08), ("purchase", 0.04), ("search", 0.06), ("skip", 0.07))


@dataclass(frozen=True)
class SyntheticUser:
    """A user who likes `topics` until event number `switch_at`, then `later_topics` (when given)."""

    user_id: str
    topics: tuple[str, ...]
    later_topics: tuple[str, ...] = ()
    switch_at: int | None = None

    def topics_at(self, n: int) -> tuple[str, ...]:
        if self.switch_at is not None and n >= self.switch_at and self.later_topics:
            return self.later_topics
        return self.topics


def make_users(
    n_users: int, topics: Sequence[str], seed: int = 0, drift_share: float = 0.0, switch_at: int | tuple[int, int] = 20
) -> list[SyntheticUser]:
    """Users with one favourite topic each (round robin); a `drift_share` of them switch topic at event `switch_at`
    (or at an event drawn uniformly from the range (low, high), one per user)."""
    rng = random.Random(seed)
    users = []
    for i in range(n_users):
        topic = topics[i % len(topics)]
        drifts = rng.random() < drift_share
        later = rng.choice([t for t in topics if t != topic]) if drifts else None
        at = rng.randint(*switch_at) if isinstance(switch_at, tuple) else switch_at
        users.append(SyntheticUser(f"user-{i:04d}", (topic,), (later,) if later else (), at if later else None))
    return users


def behaviour_stream(
    users: Sequence[SyntheticUser],
    items: Sequence[Item],
    events_per_user: int,
    start_ts: int,
    *,
    seed: int = 0,
    kind_mix: Sequence[tuple[str, float]] = KIND_MIX,
    sequential: float = 0.0,
) -> Iterator[BehaviorEvent]:
    """Interleaves the users' events in time order; positive events concern the user's current topics: with
    probability `sequential` the item after the user's previous one in the topic's order (as one follows a series),
    else a random item of the topic (where the series goes on from)."""
    rng = random.Random(seed)
    by_topic: dict[str, list[Item]] = {}
    for item in items:
        for tag in item.tags:
            by_topic.setdefault(tag, []).append(item)
    kinds, weights = zip(*kind_mix, strict=True)
    counts = dict.fromkeys((u.user_id for u in users), 0)
    place: dict[tuple[str, str], int] = {}
    order = [u for u in users for _ in range(events_per_user)]
    rng.shuffle(order)
    for n, user in enumerate(order):
        index = counts[user.user_id]
        counts[user.user_id] += 1
        topic = rng.choice(user.topics_at(index))
        kind = rng.choices(kinds, weights)[0]
        ts = start_ts + n * 1000
        event_id = f"{user.user_id}-{index:05d}"
        if kind == "search":
            yield BehaviorEvent(event_id, user.user_id, kind, ts, query=f"{topic} {rng.choice(by_topic[topic]).title}")
            continue
        if kind == "skip":
            item = rng.choice(by_topic[rng.choice([t for t in by_topic if t != topic])])
        elif sequential and (user.user_id, topic) in place and rng.random() < sequential:
            pool = by_topic[topic]
            place[(user.user_id, topic)] += 1
            item = pool[place[(user.user_id, topic)] % len(pool)]
        else:
            position = rng.randrange(len(by_topic[topic]))
            place[(user.user_id, topic)] = position
            item = by_topic[topic][position]
        yield BehaviorEvent(event_id, user.user_id, kind, ts, item_id=item.item_id)


@dataclass(frozen=True)
class Shopper:
    """How a synthetic user answers a list: the consumer displays its first `display` items (an impression), and
    the user acts on the first displayed item of their topics with probability `act_share` (a cart with
    probability `cart_share`, else a click), else searches for their topic when `search_otherwise` (acting on
    nothing shown)."""

    display: int = 5
    act_share: float = 0.8
    cart_share: float = 0.25
    search_otherwise: bool = True

    def respond(self, user: SyntheticUser, recommendation: dict[str, Any], topics_of: Mapping[str, Sequence[str]],
                *, n: int, ts: int, rng: random.Random) -> list[BehaviorEvent]:
        """The impression of the list and what the user did next (event ids numbered by `n`, the user's own)."""
        shown = [item["item_id"] for item in recommendation["items"][: self.display]]
        events = [BehaviorEvent(f"{user.user_id}-imp-{n:05d}", user.user_id, "impression", ts,
                                list_id=recommendation["list_id"], item_ids=tuple(shown))] if shown else []
        topics = user.topics_at(n)
        liked = next((item for item in shown if set(topics_of.get(item, ())) & set(topics)), None)
        if liked is not None and rng.random() < self.act_share:
            kind = "cart" if rng.random() < self.cart_share else "click"
            events.append(BehaviorEvent(f"{user.user_id}-act-{n:05d}", user.user_id, kind, ts + 1, item_id=liked))
        elif self.search_otherwise:
            events.append(BehaviorEvent(f"{user.user_id}-srch-{n:05d}", user.user_id, "search", ts + 1,
                                        query=f"{rng.choice(topics)} {rng.choice(SEARCH_WORDS)}"))
        return events
