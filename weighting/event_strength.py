"""How strongly each kind of behaviour says the user likes (or dislikes) an item."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventStrengths:
    """Signed strength per event kind, one meaning everywhere: a positive strength is a consumption (it moves the
    content profiles toward the item, counts in co-visitation, popularity and transitions, anchors the item-kNN
    and is a wanted target for the feedback), a negative one is a rejection (it pushes the profiles away and counts
    nowhere else).

    A rating is a consumption whatever its value, since the user chose the item; a value above `rating_centre`
    counts more, by `rating_scale` per point. A rejection is a skip.

    >>> s = EventStrengths()
    >>> s.of("purchase") > s.of("cart") > s.of("click") > s.of("view") > 0 > s.of("skip")
    True
    >>> s.of("rating", 1.0), s.of("rating", 3.0), s.of("rating", 5.0)
    (1.0, 1.0, 3.0)
    """

    view: float = 1.0
    click: float = 1.5
    cart: float = 3.0
    purchase: float = 5.0
    skip: float = -1.0
    search: float = 0.0
    rating_centre: float = 3.0
    rating_scale: float = 1.0

    def of(self, kind: str, value: float | None = None) -> float:
        """The strength of one event; a rating without a value counts as one at the centre."""
        if kind == "rating":
            above = 0.0 if value is None else max(value - self.rating_centre, 0.0)
            return 1.0 + above * self.rating_scale
        return float(getattr(self, kind))
