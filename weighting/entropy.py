"""The entropy of a user's recent interests, and how it modulates factor weights (the w ∝ 1/H idea)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from weighting.factors import Factor


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


FOCUS_FACTORS = (Factor.SHORT_TERM, Factor.QUERY)
BREADTH_FACTORS = (Factor.LONG_TERM, Factor.POPULARITY)


def modulate_by_entropy(
    weights: npt.NDArray[np.float64], entropy: float, strength: float
) -> npt.NDArray[np.float64]:
    """Shifts weight to short-term/query factors for focused users and to long-term/popularity for scattered ones.

    Focus factors are scaled by exp(strength·(1-2H)), breadth factors by its inverse; the result sums to 1.
    """
    tilt = math.exp(strength * (1.0 - 2.0 * entropy))
    scaled = weights.astype(np.float64).copy()
    scaled[list(FOCUS_FACTORS)] *= tilt
    scaled[list(BREADTH_FACTORS)] /= tilt
    return scaled / scaled.sum()


def modulate_by_drift(weights: npt.NDArray[np.float64], drift: float, strength: float) -> npt.NDArray[np.float64]:
    """Shifts weight from the long-term factor to short-term and query while the interest is moving.

    `drift` in [0, 1] is how far the short-term profile has turned away from the long-term one; focus factors
    are scaled by exp(strength·drift), the long-term factor by its inverse; the result sums to 1.

    >>> modulate_by_drift(np.array([0.5, 0.5, 0, 0, 0, 0]), 1.0, math.log(2)).round(3).tolist()[:2]
    [0.8, 0.2]
    """
    tilt = math.exp(strength * drift)
    scaled = weights.astype(np.float64).copy()
    scaled[list(FOCUS_FACTORS)] *= tilt
    scaled[Factor.LONG_TERM] /= tilt
    return scaled / scaled.sum()
