"""The entropy of a user's recent interests, and the directions in which it and interest drift tilt weights."""

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
ENTROPY_AXIS = np.zeros(len(Factor))
ENTROPY_AXIS[list(FOCUS_FACTORS)], ENTROPY_AXIS[list(BREADTH_FACTORS)] = 1.0, -1.0
DRIFT_AXIS = np.zeros(len(Factor))
DRIFT_AXIS[list(FOCUS_FACTORS)], DRIFT_AXIS[Factor.LONG_TERM] = 1.0, -1.0


def entropy_direction(entropy: float) -> npt.NDArray[np.float64]:
    """The log-weight tilt of the w ∝ 1/H idea, per unit of strength: focused users (H near 0) toward short-term
    and query, scattered users (H near 1) toward long-term and popularity.

    >>> entropy_direction(0.0).tolist()
    [1.0, -1.0, 1.0, 0.0, -1.0, 0.0]
    """
    return (1.0 - 2.0 * entropy) * ENTROPY_AXIS


def drift_direction(drift: float) -> npt.NDArray[np.float64]:
    """The log-weight tilt, per unit of strength, while the interest moves: `drift` in [0, 1] (how far the
    short-term profile has turned from the long-term one) toward short-term and query, away from long-term.

    >>> drift_direction(0.5).tolist()
    [0.5, -0.5, 0.5, 0.0, 0.0, 0.0]
    """
    return drift * DRIFT_AXIS
