"""The entropy of a user's recent interests (focused or scattered)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def normalised_entropy(masses: Iterable[tuple[str, float]]) -> float:
    """Shannon entropy of the distribution given by (label, mass) pairs, scaled to [0, 1].

    One label (a focused user) gives 0; mass spread evenly over many labels gives 1.

    >>> normalised_entropy([("scifi", 3.0)])
    0.0
    >>> normalised_entropy([("scifi", 1.0), ("drama", 1.0)])
    1.0
    """
    totals: dict[str, float] = {}
    for label, mass in masses:
        if mass > 0:
            totals[label] = totals.get(label, 0.0) + mass
    if len(totals) < 2:
        return 0.0
    total = sum(totals.values())
    entropy = -sum((m / total) * math.log(m / total) for m in totals.values())
    return entropy / math.log(len(totals))
