"""The recommendation factors a user's weight vector ranges over."""

from enum import IntEnum


class Factor(IntEnum):
    """Index of each factor in a weight vector and in a factor-score matrix."""

    SHORT_TERM = 0
    LONG_TERM = 1
    QUERY = 2
    COVISIT = 3
    TRANSITION = 4
    SEQUENCE = 5
    POPULARITY = 6
    FRESHNESS = 7


FACTORS: tuple[str, ...] = tuple(factor.name.lower() for factor in Factor)

DENSE_FACTORS = (Factor.SHORT_TERM, Factor.LONG_TERM, Factor.QUERY, Factor.SEQUENCE)
"""Factors that score every item (vectors against the catalogue)."""
COUNT_FACTORS = (Factor.COVISIT, Factor.TRANSITION, Factor.POPULARITY)
"""Factors whose scores are sums of counts: calibrated on a log scale."""
TEXT_FACTORS = (Factor.SHORT_TERM, Factor.LONG_TERM, Factor.QUERY)
"""Factors that score items by their text vectors alone."""
