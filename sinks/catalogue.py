"""The item catalogue a worker ranks over: ids, metadata and the encoded vectors as one matrix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt
import torch

from weighting.seen_items import FILTER_HASHES, filter_positions


@dataclass(frozen=True)
class CatalogueItem:
    """An item's metadata; `ts` is when it entered the catalogue (for freshness)."""

    item_id: str
    title: str
    tags: tuple[str, ...] = ()
    ts: int = 0


class Catalogue:
    """Rows are appended as items arrive and replaced when an item is updated; the matrix is rebuilt lazily.

    A removed item keeps its row (the shared signals are arrays over the rows) but is no longer in the catalogue:
    no factor lists it, and it is back once it is upserted again.
    """

    def __init__(self, dim: int, device: str = "cpu") -> None:
        self.dim = dim
        self.device = device
        self.items: list[CatalogueItem] = []
        self.index: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._matrix: torch.Tensor | None = None
        self._first_seen: npt.NDArray[np.int64] | None = None
        self._undated = False
        self._filter_positions = np.zeros((0, FILTER_HASHES), np.int64)
        self.replacements = 0
        """How many times a known item's vector was replaced (an index over the rows must then be rebuilt)."""
        self.removed: set[str] = set()
        """The ids removed and not upserted since, held or not (a removal can outlive the item's own records)."""
        self._removed_rows: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: object) -> bool:
        """Whether the item is in the catalogue now (held and not removed)."""
        return item_id in self.index and item_id not in self.removed

    def upsert(self, items: Sequence[CatalogueItem], vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        """Adds new items and replaces known ones (an item keeps its first `ts`; a removed one is back)."""
        new_rows = []
        for item in items:
            self.removed.discard(item.item_id)
            row = self.index.get(item.item_id)
            if row is None:
                self.index[item.item_id] = len(self.items)
                self.items.append(item)
                new_rows.append(vectors[item.item_id])
            else:
                self.items[row] = CatalogueItem(item.item_id, item.title, item.tags, self.items[row].ts)
                if not np.array_equal(self._vectors[row], vectors[item.item_id]):
                    self._vectors[row] = vectors[item.item_id]
                    self.replacements += 1
        if new_rows:
            added = np.stack(new_rows).astype(np.float32)
            self._vectors = np.concatenate([self._vectors, added])
        self._matrix = None
        self._first_seen = None
        self._removed_rows = None

    def remove(self, item_ids: Iterable[str]) -> int:
        """Removes items from the catalogue (their rows stay, listed by no factor); returns how many of them
        were in it."""
        removed = 0
        for item_id in item_ids:
            removed += item_id in self
            self.removed.add(item_id)
        self._removed_rows = None
        return removed

    def removed_rows(self) -> npt.NDArray[np.int64]:
        """The rows of the removed items, ascending."""
        if self._removed_rows is None:
            rows = self.rows_of(self.removed, len(self.removed))
            self._removed_rows = np.sort(rows[rows >= 0])
        return self._removed_rows

    def listed(self) -> int:
        """How many items are in the catalogue (held and not removed)."""
        return len(self.items) - len(self.removed_rows())

    def rows_of(self, item_ids: Iterable[str], count: int) -> npt.NDArray[np.int64]:
        """The rows of `count` item ids, −1 for an id not in the catalogue (one C-level lookup per id)."""
        return np.fromiter(map(self.index.get, item_ids, repeat(-1)), np.int64, count)

    def vector(self, item_id: str) -> npt.NDArray[np.float32]:
        return self._vectors[self.index[item_id]]

    @property
    def vectors(self) -> npt.NDArray[np.float32]:
        return self._vectors

    @property
    def matrix(self) -> torch.Tensor:
        """The (items × dim) matrix on the scoring device."""
        if self._matrix is None:
            self._matrix = torch.from_numpy(self._vectors).to(self.device)
        return self._matrix

    def filter_positions(self) -> npt.NDArray[np.int64]:
        """Each row's bit positions in a seen-items filter (rows × hashes), computed once per item."""
        if len(self._filter_positions) < len(self.items):
            added = [filter_positions(item.item_id) for item in self.items[len(self._filter_positions) :]]
            self._filter_positions = np.concatenate([self._filter_positions, np.stack(added)])
        return self._filter_positions

    def first_seen(self) -> npt.NDArray[np.int64]:
        """When each row entered the catalogue (ms)."""
        if self._first_seen is None:
            self._first_seen = np.fromiter((item.ts for item in self.items), dtype=np.int64, count=len(self.items))
            self._undated = len(self._first_seen) > 0 and bool(self._first_seen.min() == self._first_seen.max())
        return self._first_seen

    def undated(self) -> bool:
        """Whether every item entered the catalogue at the same time (freshness then ranks nothing)."""
        self.first_seen()
        return self._undated
