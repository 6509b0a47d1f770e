"""The items a user acted on, in bounded space: the newest exactly, the older ones in Bloom filters that age out.

A user who acts on thousands of items must not carry thousands of ids in every state record. The newest
`remembered` ids are kept exactly; an id that falls out of them goes into a Bloom filter of `FILTER_BITS` bits.
When that filter holds `FILTER_CAPACITY` ids (a false positive rate of about 0.6%) it becomes the previous one and
a new filter starts; the filter before the previous is dropped, so a user's oldest items may be recommended again
after another 2 × `FILTER_CAPACITY` items. A state's seen items thus take at most `remembered` ids and two filters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FILTER_BITS = 1 << 15
FILTER_HASHES = 4
FILTER_CAPACITY = FILTER_BITS // 12
"""Ids per filter: 12 bits an id with 4 hashes gives false positives at about 0.6% when full."""


def filter_positions(item_id: str) -> npt.NDArray[np.int64]:
    """The `FILTER_HASHES` bit positions of an id in a filter.

    >>> filter_positions("item-1").tolist() == filter_positions("item-1").tolist()
    True
    """
    digest = hashlib.blake2b(item_id.encode(), digest_size=4 * FILTER_HASHES).digest()
    return np.frombuffer(digest, dtype="<u4").astype(np.int64) % FILTER_BITS


def filter_bits(raw: bytes) -> npt.NDArray[np.bool_]:
    """A filter's bits as booleans (`FILTER_BITS` of them)."""
    return np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little").astype(bool)


@dataclass(frozen=True)
class SeenItems:
    """What a user acted on: `recent` ids, oldest first, exactly; older ones in `filters` (the current filter
    first; each `FILTER_BITS` bits, absent until an id falls out of `recent`)."""

    recent: tuple[str, ...] = ()
    filters: tuple[bytes, ...] = ()
    in_current: int = 0
    """How many ids the current filter holds."""

    def __contains__(self, item_id: object) -> bool:
        if item_id in self.recent:
            return True
        return isinstance(item_id, str) and bool(self.held(filter_positions(item_id)[None])[0])

    def held(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """For ids given by their bit positions (ids × `FILTER_HASHES`), whether a filter holds each."""
        held = np.zeros(len(positions), bool)
        for raw in self.filters:
            held |= filter_bits(raw)[positions].all(axis=1)
        return held

    def added(self, item_id: str, remembered: int) -> SeenItems:
        """With `item_id` the newest; the oldest of more than `remembered` recent ids goes into the current filter.

        >>> seen = SeenItems().added("a", 2).added("b", 2).added("a", 2).added("c", 2)
        >>> seen.recent, "b" in seen, "z" in seen, len(seen.filters)
        (('a', 'c'), True, False, 1)
        """
        recent = (*(i for i in self.recent if i != item_id), item_id)
        if len(recent) <= remembered:
            return SeenItems(recent, self.filters, self.in_current)
        filters, count = self.filters, self.in_current
        if not filters or count >= FILTER_CAPACITY:  # a new current filter; the one before the previous is dropped
            filters, count = (bytes(FILTER_BITS // 8), *filters[:1]), 0
        bits = filter_bits(filters[0])
        for dropped in recent[: len(recent) - remembered]:
            bits[filter_positions(dropped)] = True
            count += 1
        current = np.packbits(bits, bitorder="little").tobytes()
        return SeenItems(recent[len(recent) - remembered :], (current, *filters[1:]), count)
