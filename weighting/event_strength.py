"""How strongly each kind of behaviour says the user likes (or dislikes) an item."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventStrengths:
    """Signed strength per event kind; ratings are centred so that low ratings push away.

    >>> s = EventStrengths()
    >>> s.of("purchase") > s.of("cart") > s.of("click") > s.of("view") > 0 > s.of("skip")
    True
    >>> s.of("rating", 1.0) < 0 < s.of("rating", 5.0)
    True
    """

    view: float = 1.0
    click: float = 1.5
    cart: float = 3.0
    purchase: float = 5.0
    skip: float = -1.0
    search: float = 0.0
    rating_centre: float = 3.0
    rating_scale: float = 1.0

    def interaction(self, kind: str, strength: float) -> float:
        """How much an event counts as a consumption for co-visitation and popularity.

        Any rating means the user consumed the item (a liked one counts more); a skip is no consumption.

        >>> s = EventStrengths()
        >>> s.interaction("rating", -2.0), s.interaction("rating", 2.0), s.interaction("skip", -1.0)
        (1.0, 3.0, 0.0)
        """
        if kind == "rating":
            return 1.0 + max(strength, 0.0)
        return max(strength, 0.0)

    def of(self, kind: str, value: float | None = None) -> float:
        """The strength of one event; a rating without a value counts as neutral."""
        if kind == "rating":
            if value is None:
                return 0.0
            return (value - self.rating_centre) * self.rating_scale
        return float(getattr(self, kind))
