"""Exponential decay in event time."""

import math

MS_PER_HOUR = 3_600_000.0


def decay_factor(elapsed_ms: float, half_life_ms: float) -> float:
    """The multiplier that halves a quantity every `half_life_ms` (1.0 for no or negative elapsed time).

    >>> decay_factor(3_600_000, 3_600_000)
    0.5
    """
    if elapsed_ms <= 0 or half_life_ms <= 0:
        return 1.0
    return math.pow(0.5, elapsed_ms / half_life_ms)
