"""Each user's candidates: the union of every factor's own top items, with every factor's score at each of them.

The lists are flat arrays over a batch of users (user, row, factor, position); the candidates are their union per
user, sorted by row, with each candidate's position in each factor's list (`depth` where the factor did not list
it). A fusion of the factors ranks the candidates; a single factor's top items are among them by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from weighting.factors import FACTORS

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FactorLists:
    """Entries of factors' top lists: the user (index in the batch), the row, the factor and the 0-based position."""

    users: IntArray
    rows: IntArray
    factors: IntArray
    positions: IntArray

    @classmethod
    def concat(cls, parts: Sequence[FactorLists]) -> FactorLists:
        if not parts:
            empty = np.zeros(0, np.int64)
            return cls(empty, empty, empty, empty)
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("users", "rows", "factors",
                                                                                    "positions")))


@dataclass(frozen=True)
class CandidateBatch:
    """Every user's candidates, flat and sorted by (user, row): user b's are `offsets[b] : offsets[b + 1]`.

    `raw` and `calibrated` are candidates × factors; `list_position` is each candidate's position in each
    factor's own top list (`depth` where not listed)."""

    offsets: IntArray
    users: IntArray
    rows: IntArray
    list_position: npt.NDArray[np.int32]
    raw: npt.NDArray[np.float32]
    calibrated: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of_user(self, b: int) -> CandidateBatch:
        """User b's candidates as a batch of one."""
        part = slice(int(self.offsets[b]), int(self.offsets[b + 1]))
        return CandidateBatch(np.array([0, part.stop - part.start], np.int64), np.zeros(part.stop - part.start,
                              np.int64), self.rows[part], self.list_position[part], self.raw[part],
                              self.calibrated[part])


def union_of(lists: FactorLists, n_users: int, n_items: int, depth: int) -> tuple[IntArray, IntArray, IntArray,
                                                                                    npt.NDArray[np.int32]]:
    """The candidates of the lists: offsets per user, users, rows and each candidate's list positions.

    >>> lists = FactorLists(np.array([0, 0, 1]), np.array([7, 3, 7]), np.array([0, 1, 1]), np.array([0, 0, 0]))
    >>> offsets, users, rows, position = union_of(lists, 3, 10, depth=5)
    >>> offsets.tolist(), rows.tolist(), position[:, :2].tolist()
    ([0, 2, 3, 3], [3, 7, 7], [[5, 0], [0, 5], [5, 0]])
    """
    keys, index = np.unique(lists.users * n_items + lists.rows, return_inverse=True)  # sorted by user, then row
    users, rows = np.divmod(keys, n_items)
    offsets = np.searchsorted(users, np.arange(n_users + 1))
    position = np.full((len(users), len(FACTORS)), depth, np.int32)
    position[index, lists.factors] = lists.positions
    return offsets.astype(np.int64), users.astype(np.int64), rows.astype(np.int64), position
