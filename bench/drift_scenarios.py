"""Synthetic drift scenarios for the replay: every user switches topic once, abruptly; how fast each method
recovers is its HR@k over the first few events after the switch.

* `switch`: within a topic a user acts on random items of it;
* `sequential-switch`: within a topic a user mostly follows the topic's items in order (a series; 60% of the
  time the next item, else a random one of the topic, where the series goes on from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.events import BehaviorEvent, Item
from streams.synthetic import KIND_MIX, SyntheticUser, behaviour_stream, make_users

if TYPE_CHECKING:
    from bench.replay import ReplayResult

SCENARIOS = {"switch": 0.0, "sequential-switch": 0.6}
"""Each scenario's name and how often a user's next item in a topic is the one after the previous."""
START_TS = 1_700_000_000_000


@dataclass(frozen=True)
class DriftLog:
    users: list[SyntheticUser]
    events: list[BehaviorEvent]

    def after_switch(self, window: int) -> set[str]:
        """The ids of each user's first `window` events after their switch."""
        return {f"{user.user_id}-{n:05d}" for user in self.users if user.switch_at is not None
                for n in range(user.switch_at, user.switch_at + window)}


def drift_log(name: str, items: Sequence[Item], seed: int, *, users: int = 240, events_per_user: int = 60,
              switch_between: tuple[int, int] = (20, 45)) -> DriftLog:
    """A scenario's log: every user switches topic once, at an event drawn from `switch_between`."""
    topics = sorted({tag for item in items for tag in item.tags})
    people = make_users(users, topics, seed=seed, drift_share=1.0, switch_at=switch_between)
    return DriftLog(people, list(behaviour_stream(people, items, events_per_user, START_TS, seed=seed,
                                                  kind_mix=KIND_MIX, sequential=SCENARIOS[name])))


def recovery(result: ReplayResult, after: set[str], k: int) -> dict[str, float]:
    """Each method's HR@k over the evaluated events among `after` (the first events after a switch)."""
    evaluated = after & set(result.evaluated_ids)
    return {name: len(evaluated & set(hits)) / max(len(evaluated), 1) for name, hits in result.hits.items()} | {
        "evaluations": float(len(evaluated))}
