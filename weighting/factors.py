"""The recommendation factors a user's weight vector ranges over."""

from enum import IntEnum


class Factor(IntEnum):
    """Index of each factor in a weight vector and in a factor-score matrix."""

    SHORT_TERM = 0
    LONG_TERM = 1
    QUERY = 2
    COVISIT = 3
    POPULARITY = 4
    FRESHNESS = 5


FACTORS: tuple[str, ...] = tuple(factor.name.lower() for factor in Factor)
