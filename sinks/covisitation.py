"""Co-visitation: items acted on close together by the same users, as streaming time-decayed counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sinks.decayed_counts import ForwardDecay


class CoVisitation:
    """Symmetric decayed pair counts between catalogue rows, updated one event at a time."""

    def __init__(self, half_life_ms: float, span: int = 20) -> None:
        self.decay = ForwardDecay(half_life_ms)
        self.span = span
        self.pairs: dict[int, dict[int, float]] = {}
        self.totals: dict[int, float] = {}

    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts `row` together with the user's previous rows (the last `span` of them)."""
        factor = self.decay.needs_rescale(ts)
        if factor is not None:
            self._rescale(factor)
        weight = amount * self.decay.weight(ts)
        for other in previous_rows[-self.span :]:
            if other == row:
                continue
            self._bump(row, other, weight)
            self._bump(other, row, weight)

    def _bump(self, a: int, b: int, weight: float) -> None:
        row = self.pairs.setdefault(a, {})
        row[b] = row.get(b, 0.0) + weight
        self.totals[a] = self.totals.get(a, 0.0) + weight

    def _rescale(self, factor: float) -> None:
        for row in self.pairs.values():
            for key in row:
                row[key] *= factor
        for key in self.totals:
            self.totals[key] *= factor

    def scores(
        self, anchor_rows: Sequence[int], anchor_weights: Sequence[float], n_items: int
    ) -> npt.NDArray[np.float64]:
        """Σ_j a_j · P(i | j) over the anchors j (the user's recent items, weighted by recency and strength)."""
        result = np.zeros(n_items)
        for anchor, weight in zip(anchor_rows, anchor_weights, strict=True):
            neighbours = self.pairs.get(anchor)
            if not neighbours or weight == 0.0:
                continue
            rows = np.fromiter(neighbours.keys(), dtype=np.int64, count=len(neighbours))
            values = np.fromiter(neighbours.values(), dtype=np.float64, count=len(neighbours))
            keep = rows < n_items
            result[rows[keep]] += weight * values[keep] / self.totals[anchor]
        return result
