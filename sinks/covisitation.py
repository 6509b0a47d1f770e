"""Co-visitation: items acted on close together by the same users, as streaming counts (optionally time-decayed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sinks.decayed_counts import ForwardDecay

DENSE_SUM_LIMIT = 1 << 24
"""Batches of users × items up to this size are summed densely; larger ones by sorting their nonzero keys."""


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
    """Symmetric pair counts between catalogue rows, updated one event at a time.

    A pair counts `gap_decay`**(gap - 1) by how many of the user's items lie between its two ends (gap 1: one
    right after the other), over the last `span` items; with a finite `half_life_ms` counts also age in event time.
    """

    def __init__(self, half_life_ms: float = math.inf, span: int = 5, gap_decay: float = 0.7) -> None:
        self.decay = ForwardDecay(half_life_ms)
        self.span = span
        self.gap_decay = gap_decay
        self.rows: dict[int, NeighbourRow] = {}

    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts `row` together with the user's previous rows (oldest first; the last `span` of them)."""
        factor = self.decay.needs_rescale(ts)
        if factor is not None:
            for neighbours in self.rows.values():
                neighbours.scale(factor)
        weight = amount * self.decay.weight(ts)
        for gap, other in enumerate(reversed(previous_rows[-self.span :])):
            if other == row:
                continue
            pair_weight = weight * self.gap_decay**gap
            self._row(row).add(other, pair_weight)
            self._row(other).add(row, pair_weight)

    def _row(self, row: int) -> NeighbourRow:
        neighbours = self.rows.get(row)
        if neighbours is None:
            neighbours = self.rows[row] = NeighbourRow()
        return neighbours

    def batch_scores(
        self, anchors: Sequence[tuple[Sequence[int], Sequence[float]]], n_items: int
    ) -> SparseScores:
        """For each user's anchors (rows j and weights a_j: their recent items, weighted by recency and
        strength), Σ_j a_j · P(i | j) at the rows i with a nonzero count; every other row scores 0."""
        owners, columns, values = [], [], []
        for user, (anchor_rows, anchor_weights) in enumerate(anchors):
            for anchor, weight in zip(anchor_rows, anchor_weights, strict=True):
                neighbours = self.rows.get(anchor)
                if neighbours is None or weight == 0.0 or neighbours.total <= 0.0:
                    continue
                owners.append((user, neighbours.size))
                columns.append(neighbours.columns[: neighbours.size])
                values.append(neighbours.values[: neighbours.size] * (weight / neighbours.total))
        if not columns:
            return SparseScores(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), n_items)
        users = np.repeat([user for user, _ in owners], [size for _, size in owners])
        all_columns, all_values = np.concatenate(columns), np.concatenate(values)
        keep = all_columns < n_items
        flat = users[keep] * n_items + all_columns[keep]
        if len(anchors) * n_items <= DENSE_SUM_LIMIT:  # summing into a dense buffer beats sorting the keys
            dense = np.bincount(flat, weights=all_values[keep], minlength=len(anchors) * n_items)
            keys = np.flatnonzero(dense)
            summed = dense[keys].astype(np.float64)
        else:
            keys, inverse = np.unique(flat, return_inverse=True)
            summed = np.bincount(inverse, weights=all_values[keep], minlength=len(keys)).astype(np.float64)
        return SparseScores(keys // n_items, keys % n_items, summed, n_items)

    def scores(
        self, anchor_rows: Sequence[int], anchor_weights: Sequence[float], n_items: int
    ) -> npt.NDArray[np.float64]:
        """One user's scores as a dense vector over the first `n_items` rows."""
        return self.batch_scores([(anchor_rows, anchor_weights)], n_items).dense(1)[0]


@dataclass(frozen=True)
class SparseScores:
    """A batch of sparse score vectors over `n_items` rows: (user, row, value) sorted by user, then row."""

    users: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    n_items: int

    def dense(self, n_users: int) -> npt.NDArray[np.float64]:
        result = np.zeros((n_users, self.n_items))
        result[self.users, self.rows] = self.values
        return result

    def moments(self, n_users: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Each user's mean and unbiased std over all `n_items` rows (zeros included)."""
        n = self.n_items
        mean = np.bincount(self.users, weights=self.values, minlength=n_users) / n
        squares = np.bincount(self.users, weights=np.square(self.values), minlength=n_users)
        variance = (squares - n * np.square(mean)) / max(n - 1, 1)
        return mean, np.sqrt(np.maximum(variance, 0.0))

    def strongest(self, n_users: int, count: int) -> npt.NDArray[np.int64]:
        """users × count: each user's rows with the largest values, strongest first (−1 pads).

        >>> SparseScores(np.array([0, 0, 0, 2]), np.array([4, 5, 6, 1]), np.array([1.0, 3.0, 2.0, 5.0]), 9
        ...              ).strongest(3, 2).tolist()
        [[5, 6], [-1, -1], [1, -1]]
        """
        order = np.lexsort((-self.values, self.users))
        users = self.users[order]
        rank = np.arange(len(users)) - np.searchsorted(users, users)
        keep = rank < count
        result = np.full((n_users, count), -1, dtype=np.int64)
        result[users[keep], rank[keep]] = self.rows[order][keep]
        return result

    def at(self, wanted_rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """The values at `wanted_rows` (users × m) of each user."""
        keys = self.users * self.n_items + self.rows
        if not len(keys):
            return np.zeros(wanted_rows.shape)
        wanted = np.arange(len(wanted_rows))[:, None] * self.n_items + wanted_rows
        position = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return np.where(keys[position] == wanted, self.values[position], 0.0)
