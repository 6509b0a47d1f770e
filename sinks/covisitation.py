"""Co-visitation (item-kNN) and next-item transitions: items acted on close together by the same users, as
streaming pair counts (optionally time-decayed)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
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
        self, rows: npt.NDArray[np.int64], weights: npt.NDArray[np.float64], *, by_row_total: bool = True
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """For anchor rows with weights a_j: (the anchor's position in `rows`, column i, a_j · count(j, i), divided
        by row j's total when `by_row_total`: a_j · P(i | j)) for every stored neighbour i of every anchor j
        (anchors without counts or with weight 0 give none)."""
        known = np.flatnonzero(rows < len(self.size))
        known = known[(weights[known] != 0.0) & (self.total[rows[known]] > 0.0)]
        anchor_rows = rows[known]
        sizes = self.size[anchor_rows]
        slots = _block_slots(self.start[anchor_rows], sizes)
        anchor_weights = weights[known] / self.total[anchor_rows] if by_row_total else weights[known]
        return np.repeat(known, sizes), self.columns[slots], self.values[slots] * np.repeat(anchor_weights, sizes)

    def row_totals(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Each row's total count (0 for a row never counted)."""
        totals = np.zeros(len(rows))
        known = rows < len(self.total)
        totals[known] = self.total[rows[known]]
        return totals

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


class PairCounts(ABC):
    """Decayed counts of (row, column) pairs, fed one event at a time; the base of co-visitation and transitions."""

    def __init__(self, half_life_ms: float) -> None:
        self.decay = ForwardDecay(half_life_ms)
        self.counts = NeighbourCounts()

    def _event_weight(self, amount: float, ts: float) -> float:
        """The weight of an event at `ts`, rescaling the stored counts first when the decay's landmark moves."""
        factor = self.decay.needs_rescale(ts)
        if factor is not None:
            self._rescale(factor)
        return amount * self.decay.weight(ts)

    def _rescale(self, factor: float) -> None:
        self.counts.scale(factor)

    @abstractmethod
    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts the event of `row` after the user's previous rows (oldest first)."""

    @abstractmethod
    def entries(self, anchors: AnchorRows, n_items: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                                                  npt.NDArray[np.float64]]:
        """Each anchor's contribution to each of its counted columns below `n_items`, unsummed: (the anchor's user,
        the column, the contribution); a user's score for a column is the sum of its contributions."""

    def scores(
        self, anchor_rows: Sequence[int], anchor_weights: Sequence[float], n_items: int
    ) -> npt.NDArray[np.float64]:
        """One user's scores over the first `n_items` rows (0 where nothing was counted)."""
        anchors = AnchorRows(np.zeros(len(anchor_rows), np.int64), np.asarray(anchor_rows, np.int64),
                             np.asarray(anchor_weights, np.float64))
        _, columns, values = self.entries(anchors, n_items)
        return np.bincount(columns, weights=values, minlength=n_items).astype(np.float64)

    def _gathered(self, anchors: AnchorRows, n_items: int, *, by_row_total: bool) -> tuple[
            npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """a_j · count(j, i) (over row j's total when `by_row_total`) for every anchor j and column i < `n_items`."""
        anchor, columns, values = self.counts.gather(anchors.rows, anchors.weights, by_row_total=by_row_total)
        keep = columns < n_items
        return anchors.users[anchor[keep]], columns[keep], values[keep]


class CoVisitation(PairCounts):
    """Item-kNN from co-occurrence: items acted on within `span` items of each other by the same user.

    A pair counts `gap_decay`**(gap - 1) times the event's amount by how far apart its two ends are; a user's score
    for item i is Σ_j a_j · count(i, j) / sqrt(n_i · n_j) over the user's anchors j (recent items, weighted a_j by
    recency and strength), with n the items' own counts: the cosine of their co-occurrence, so that a popular item
    is not everyone's neighbour. With a finite `half_life_ms` counts also age in event time.
    """

    def __init__(self, half_life_ms: float = math.inf, span: int = 20, gap_decay: float = 1.0) -> None:
        super().__init__(half_life_ms)
        self.span = span
        self.gap_decay = gap_decay
        self.occurrences = np.zeros(0, dtype=np.float64)

    def _rescale(self, factor: float) -> None:
        super()._rescale(factor)
        self.occurrences *= factor

    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts `row` once, and together with each of the user's previous rows (oldest first; the last `span`)."""
        weight = self._event_weight(amount, ts)
        if row >= len(self.occurrences):
            self.occurrences = np.concatenate([self.occurrences, np.zeros(max(row + 1 - len(self.occurrences), 1024))])
        self.occurrences[row] += weight
        for gap, other in enumerate(reversed(previous_rows[-self.span :])):
            if other == row:
                continue
            pair_weight = weight * self.gap_decay**gap
            self.counts.add(row, other, pair_weight)
            self.counts.add(other, row, pair_weight)

    def inverse_norms(self, n_items: int) -> npt.NDArray[np.float64]:
        """1 / sqrt(n) of the first `n_items` rows (1 for a row never counted)."""
        counts = np.ones(n_items)
        known = min(n_items, len(self.occurrences))
        counts[:known] = np.maximum(self.occurrences[:known], 1e-300)
        return 1.0 / np.sqrt(counts)

    def entries(self, anchors: AnchorRows, n_items: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                                                  npt.NDArray[np.float64]]:
        inverse = self.inverse_norms(max(n_items, int(anchors.rows.max(initial=-1)) + 1))
        scaled = AnchorRows(anchors.users, anchors.rows, anchors.weights * inverse[anchors.rows])
        users, columns, values = self._gathered(scaled, n_items, by_row_total=False)
        return users, columns, values * inverse[columns]


class Transitions(PairCounts):
    """Directed next-item counts: each item is counted after each of the user's `span` previous items, weighted
    `gap_decay`**(gap - 1); a user's score for item i is Σ_j a_j · P(i | j) over the user's newest anchors j."""

    def __init__(self, half_life_ms: float = math.inf, span: int = 3, gap_decay: float = 0.5) -> None:
        super().__init__(half_life_ms)
        self.span = span
        self.gap_decay = gap_decay

    def add(self, row: int, previous_rows: Sequence[int], amount: float, ts: float) -> None:
        """Counts `row` after each of the user's previous rows (oldest first; the last `span` of them)."""
        weight = self._event_weight(amount, ts)
        for gap, other in enumerate(reversed(previous_rows[-self.span :])):
            if other != row:
                self.counts.add(other, row, weight * self.gap_decay**gap)

    def entries(self, anchors: AnchorRows, n_items: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                                                  npt.NDArray[np.float64]]:
        return self._gathered(anchors, n_items, by_row_total=True)


@dataclass(frozen=True)
class AnchorRows:
    """A batch's anchors, flat: for each anchor the index of its user in the batch, its catalogue row and weight."""

    users: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
