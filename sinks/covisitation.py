"""Co-visitation: items acted on close together by the same users, as streaming counts (optionally time-decayed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sinks.decayed_counts import ForwardDecay


class NeighbourCounts:
    """Every row's decayed co-visitation counts in two shared growable arrays (columns, values).

    Row r holds its neighbours at `start[r] : start[r] + size[r]` within a block of `capacity[r]` slots; a full
    block moves to the end at twice the size, and the arrays are repacked when they fill. Any set of rows is then
    gathered with a few vectorised index operations, without a Python step per row.
    """

    def __init__(self) -> None:
        self.columns = np.zeros(1024, dtype=np.int64)
        self.values = np.zeros(1024, dtype=np.float64)
        self.used = 0
        self.start = np.zeros(0, dtype=np.int64)
        self.size = np.zeros(0, dtype=np.int64)
        self.capacity = np.zeros(0, dtype=np.int64)
        self.total = np.zeros(0, dtype=np.float64)
        self.slots: dict[int, dict[int, int]] = {}

    def add(self, row: int, column: int, weight: float) -> None:
        slots = self.slots.get(row)
        if slots is None:
            slots = self.slots[row] = {}
            self._ensure_rows(row + 1)
        offset = slots.get(column)
        if offset is None:
            offset = slots[column] = int(self.size[row])
            if offset == self.capacity[row]:
                self._move_to_end(row, max(4, 2 * offset))
            self.columns[self.start[row] + offset] = column
            self.size[row] += 1
        self.values[self.start[row] + offset] += weight
        self.total[row] += weight

    def value(self, row: int, column: int) -> float:
        return float(self.values[self.start[row] + self.slots[row][column]])

    def pairs(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Every stored count as (row, column, value), row by row."""
        rows = np.flatnonzero(self.size)
        sizes = self.size[rows]
        slots = _block_slots(self.start[rows], sizes)
        return np.repeat(rows, sizes), self.columns[slots], self.values[slots]

    def scale(self, factor: float) -> None:
        self.values[: self.used] *= factor
        self.total *= factor

    def gather(
        self, rows: npt.NDArray[np.int64], weights: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """For anchor rows with weights a_j: (the anchor's position in `rows`, column i, a_j · P(i | j)) for every
        stored neighbour i of every anchor j (anchors without counts or with weight 0 give none)."""
        known = np.flatnonzero(rows < len(self.size))
        known = known[(weights[known] != 0.0) & (self.total[rows[known]] > 0.0)]
        anchor_rows = rows[known]
        sizes = self.size[anchor_rows]
        slots = _block_slots(self.start[anchor_rows], sizes)
        shares = np.repeat(weights[known] / self.total[anchor_rows], sizes)
        return np.repeat(known, sizes), self.columns[slots], self.values[slots] * shares

    def _ensure_rows(self, n_rows: int) -> None:
        missing = n_rows - len(self.size)
        if missing > 0:
            grow = max(missing, len(self.size))
            self.start, self.size, self.capacity = (np.concatenate([a, np.zeros(grow, np.int64)])
                                                    for a in (self.start, self.size, self.capacity))
            self.total = np.concatenate([self.total, np.zeros(grow)])

    def _move_to_end(self, row: int, capacity: int) -> None:
        if self.used + capacity > len(self.columns):
            self._repack(extra=capacity)
        old, size = int(self.start[row]), int(self.size[row])
        self.columns[self.used : self.used + size] = self.columns[old : old + size]
        self.values[self.used : self.used + size] = self.values[old : old + size]
        self.start[row], self.capacity[row] = self.used, capacity
        self.used += capacity

    def _repack(self, extra: int) -> None:
        """Copies every row's block into fresh arrays with no gaps, leaving room for at least `extra` more."""
        starts = np.cumsum(self.capacity) - self.capacity
        live = int(self.capacity.sum())
        length = max(2 * (live + extra), 1024)
        source, target = _block_slots(self.start, self.size), _block_slots(starts, self.size)
        columns, values = np.zeros(length, dtype=np.int64), np.zeros(length, dtype=np.float64)
        columns[target], values[target] = self.columns[source], self.values[source]
        self.columns, self.values, self.start, self.used = columns, values, starts, live


def _block_slots(starts: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The array positions of blocks given by their starts and sizes, block after block.

    >>> _block_slots(np.array([10, 3, 7]), np.array([2, 0, 3])).tolist()
    [10, 11, 7, 8, 9]
    """
    return np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))


class CoVisitation:
    """Symmetric pair counts between catalogue rows, updated one event at a time.

    A pair counts `gap_decay`**(gap - 1) by how many of the user's items lie between its two ends (gap 1: one
    right after the other), over the last `span` items; with a finite `half_life_ms` counts also age in event time.
    """

    def __init__(self, half_life_ms: float = math.inf, span: int = 5, gap_decay: float = 0.7) -> None:
        self.decay = ForwardDecay(half_life_ms)
        self.span = span
        self.gap_decay = gap_decay
        self.counts = NeighbourCounts()

    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts `row` together with the user's previous rows (oldest first; the last `span` of them)."""
        factor = self.decay.needs_rescale(ts)
        if factor is not None:
            self.counts.scale(factor)
        weight = amount * self.decay.weight(ts)
        for gap, other in enumerate(reversed(previous_rows[-self.span :])):
            if other == row:
                continue
            pair_weight = weight * self.gap_decay**gap
            self.counts.add(row, other, pair_weight)
            self.counts.add(other, row, pair_weight)

    def batch_scores(self, anchors: AnchorRows, n_items: int) -> SparseScores:
        """Σ_j a_j · P(i | j) for each user, over the user's anchors j (their recent items, weighted a_j by recency
        and strength), at the rows i < `n_items` with a nonzero count; others score 0."""
        anchor, columns, values = self.counts.gather(anchors.rows, anchors.weights)
        keep = columns < n_items
        keys, inverse = np.unique(anchors.users[anchor[keep]] * n_items + columns[keep], return_inverse=True)
        summed = np.bincount(inverse, weights=values[keep], minlength=len(keys)).astype(np.float64)
        return SparseScores(keys // n_items, keys % n_items, summed, n_items)

    def scores(
        self, anchor_rows: Sequence[int], anchor_weights: Sequence[float], n_items: int
    ) -> npt.NDArray[np.float64]:
        """One user's scores as a dense vector over the first `n_items` rows."""
        anchors = AnchorRows(np.zeros(len(anchor_rows), np.int64), np.asarray(anchor_rows, np.int64),
                             np.asarray(anchor_weights, np.float64))
        return self.batch_scores(anchors, n_items).dense(1)[0]


@dataclass(frozen=True)
class AnchorRows:
    """A batch's anchors, flat: for each anchor the index of its user in the batch, its catalogue row and weight."""

    users: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]


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
