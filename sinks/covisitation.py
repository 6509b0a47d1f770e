"""Co-visitation: items acted on close together by the same users, as streaming time-decayed counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sinks.decayed_counts import ForwardDecay


class NeighbourRow:
    """One item's decayed co-visitation counts as growable parallel arrays (columns, values)."""

    __slots__ = ("columns", "position", "size", "total", "values")

    def __init__(self) -> None:
        self.columns = np.zeros(8, dtype=np.int64)
        self.values = np.zeros(8, dtype=np.float64)
        self.position: dict[int, int] = {}
        self.size = 0
        self.total = 0.0

    def add(self, column: int, weight: float) -> None:
        slot = self.position.get(column)
        if slot is None:
            if self.size == len(self.columns):
                self.columns = np.concatenate([self.columns, np.zeros(self.size, dtype=np.int64)])
                self.values = np.concatenate([self.values, np.zeros(self.size)])
            slot = self.position[column] = self.size
            self.columns[slot] = column
            self.size += 1
        self.values[slot] += weight
        self.total += weight

    def scale(self, factor: float) -> None:
        self.values[: self.size] *= factor
        self.total *= factor


class CoVisitation:
    """Symmetric decayed pair counts between catalogue rows, updated one event at a time."""

    def __init__(self, half_life_ms: float, span: int = 20) -> None:
        self.decay = ForwardDecay(half_life_ms)
        self.span = span
        self.rows: dict[int, NeighbourRow] = {}

    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts `row` together with the user's previous rows (the last `span` of them)."""
        factor = self.decay.needs_rescale(ts)
        if factor is not None:
            for neighbours in self.rows.values():
                neighbours.scale(factor)
        weight = amount * self.decay.weight(ts)
        for other in previous_rows[-self.span :]:
            if other == row:
                continue
            self._row(row).add(other, weight)
            self._row(other).add(row, weight)

    def _row(self, row: int) -> NeighbourRow:
        neighbours = self.rows.get(row)
        if neighbours is None:
            neighbours = self.rows[row] = NeighbourRow()
        return neighbours

    def scores(
        self, anchor_rows: Sequence[int], anchor_weights: Sequence[float], n_items: int
    ) -> npt.NDArray[np.float64]:
        """Σ_j a_j · P(i | j) over the anchors j (the user's recent items, weighted by recency and strength)."""
        result = np.zeros(n_items)
        for anchor, weight in zip(anchor_rows, anchor_weights, strict=True):
            neighbours = self.rows.get(anchor)
            if neighbours is None or weight == 0.0 or neighbours.total <= 0.0:
                continue
            columns = neighbours.columns[: neighbours.size]
            keep = columns < n_items
            np.add.at(result, columns[keep], weight * neighbours.values[: neighbours.size][keep] / neighbours.total)
        return result
