"""Attribution of what users did to the lists they were shown: one user's exposure record, changed by the lists
served to them, their impressions and their actions.

A list counts once per arm when served (a list emitted twice has one id). An impression (a list the consumer
displayed) counts once per event id, under the arm of the list it names (the arm the list was served by, or the
user's arm when the list was not seen yet). An action on an item that an impression showed the user within the
attribution window earns that list a click-through (click, view, cart, purchase: a consumer that sends a view
for every item it displays should send impressions instead) and, for a cart or purchase, a conversion: each at
most once per list. Attribution is last-touch: an item shown again belongs to the newest list that showed it.
Every change is keyed by an event id or list id the record remembers (the last 512 event ids, the last 64 lists),
so a record redelivered after a restart changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

CLICK_KINDS = frozenset({"click", "view", "cart", "purchase"})
CONVERSION_KINDS = frozenset({"cart", "purchase"})
REMEMBERED_EVENTS = 512
REMEMBERED_LISTS = 64
REMEMBERED_SHOWN = 1_000
"""Items shown kept per user (the newest): a record stays far below a change log's message size."""
LISTS, IMPRESSIONS, CLICKS, CONVERSIONS = range(4)


@dataclass
class Exposures:
    """One user's attribution record: recent lists (id → arm, ts), items shown (item → list id, arm, ts), lists
    already credited, recent event ids, and the user's tallies per arm (lists, impressions, clicks, conversions)."""

    lists: dict[str, tuple[str, int]] = field(default_factory=dict)
    shown: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    clicked: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    tallies: dict[str, list[int]] = field(default_factory=dict)

    def served(self, list_id: str, arm: str, ts: int) -> bool:
        """A list served under `arm` (experiment/arm); False when it was counted before."""
        if list_id in self.lists:
            return False
        self.lists[list_id] = (arm, ts)
        while len(self.lists) > REMEMBERED_LISTS:
            del self.lists[next(iter(self.lists))]
        self._tally(arm)[LISTS] += 1
        return True

    def impression(self, event_id: str, list_id: str, item_ids: Iterable[str], ts: int, *, user_arm: str,
                   window_ms: int) -> bool:
        """The consumer displayed a list; False when this event was counted before."""
        if not self._first_time(event_id):
            return False
        arm = self.lists[list_id][0] if list_id in self.lists else user_arm
        self._tally(arm)[IMPRESSIONS] += 1
        for item_id in item_ids:
            self.shown.pop(item_id, None)  # re-inserted: the dict stays in the order items were last shown
            self.shown[item_id] = (list_id, arm, ts)
        self._forget_shown_before(ts - window_ms)
        return True

    def action(self, event_id: str, kind: str, item_id: str | None, ts: int, *, window_ms: int) -> bool:
        """A behaviour event; True when it credited a list with a click-through or a conversion."""
        if kind not in CLICK_KINDS or item_id is None or item_id not in self.shown:
            return False
        list_id, arm, shown_ts = self.shown[item_id]
        if not 0 <= ts - shown_ts <= window_ms or not self._first_time(event_id):
            return False
        credited = False
        if list_id not in self.clicked:
            self.clicked = [*self.clicked, list_id][-REMEMBERED_LISTS:]
            self._tally(arm)[CLICKS] += 1
            credited = True
        if kind in CONVERSION_KINDS and list_id not in self.converted:
            self.converted = [*self.converted, list_id][-REMEMBERED_LISTS:]
            self._tally(arm)[CONVERSIONS] += 1
            credited = True
        return credited

    def _first_time(self, event_id: str) -> bool:
        if event_id in self.events:
            return False
        self.events = [*self.events, event_id][-REMEMBERED_EVENTS:]
        return True

    def _tally(self, arm: str) -> list[int]:
        return self.tallies.setdefault(arm, [0, 0, 0, 0])

    def _forget_shown_before(self, oldest_ts: int) -> None:
        kept = [(item, shown) for item, shown in self.shown.items() if shown[2] >= oldest_ts]
        self.shown = dict(kept[-REMEMBERED_SHOWN:])

    def to_json(self) -> bytes:
        return orjson.dumps({"lists": self.lists, "shown": self.shown, "clicked": self.clicked,
                             "converted": self.converted, "events": self.events, "tallies": self.tallies})

    @classmethod
    def from_json(cls, raw: bytes | None) -> Exposures:
        if raw is None:
            return cls()
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            lists={key: (arm, ts) for key, (arm, ts) in data["lists"].items()},
            shown={key: (list_id, arm, ts) for key, (list_id, arm, ts) in data["shown"].items()},
            clicked=data["clicked"], converted=data["converted"], events=data["events"], tallies=data["tallies"],
        )
