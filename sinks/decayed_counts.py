"""Time-decayed counts with forward decay: adding is O(1) and the whole vector ages at once."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

RESCALE_EXPONENT = 40.0


class ForwardDecay:
    """Turns event times into growing weights exp((t - t0)/τ) so that stored sums never need decaying.

    Ratios between sums equal ratios of exponentially decayed counts at any later time; the landmark t0
    moves forward (and stored sums are rescaled) before the exponent could overflow.
    """

    def __init__(self, half_life_ms: float) -> None:
        self.tau = half_life_ms / math.log(2.0)
        self.landmark: float | None = None

    def weight(self, ts: float) -> float:
        if self.landmark is None:
            self.landmark = ts
        return math.exp((ts - self.landmark) / self.tau)

    def needs_rescale(self, ts: float) -> float | None:
        """The factor to multiply stored sums by when the landmark must move to `ts`, else None."""
        if self.landmark is None or (ts - self.landmark) / self.tau < RESCALE_EXPONENT:
            return None
        factor = math.exp(-(ts - self.landmark) / self.tau)
        self.landmark = ts
        return factor


class PopularityCounts:
    """Decayed interaction counts per catalogue row (the popularity / trending factor).

    >>> counts = PopularityCounts(half_life_ms=1e12)
    >>> for row in (3, 1, 1):
    ...     counts.add(row, 1.0, 0)
    >>> counts.at(np.array([1, 3, 9])).tolist()
    [2.0, 1.0, 0.0]
    """

    def __init__(self, half_life_ms: float) -> None:
        self.decay = ForwardDecay(half_life_ms)
        self.counts = np.zeros(0, dtype=np.float64)

    def add(self, row: int, amount: float, ts: float) -> None:
        factor = self.decay.needs_rescale(ts)
        if factor is not None:
            self.counts *= factor
        if row >= len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros(max(row + 1 - len(self.counts), 1024))])
        self.counts[row] += amount * self.decay.weight(ts)

    def at(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The counts of `rows` (0 for a row never counted)."""
        values = np.zeros(len(rows))
        known = rows < len(self.counts)
        values[known] = self.counts[rows[known]]
        return values
