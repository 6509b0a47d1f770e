"""Which events the shared signals were already fed, so that an event fed again is not counted twice."""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt


class FedEvents:
    """The fingerprints of the last `capacity` events fed into the shared signals (popularity, co-visitation, the
    global prior). A user's state skips events it already applied, but the shared signals are fed before that
    state is written, so a batch applied and then refetched (a rebalance began meanwhile) or redelivered after a
    restart (restored from a snapshot) would otherwise be counted again.

    >>> fed = FedEvents(capacity=2)
    >>> [fed.first_time(f) for f in (1, 2, 1, 3, 1)], fed.total
    ([True, True, False, True, True], 4)
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.total = 0
        """Events fed in all (those of a restored snapshot included)."""
        self._order: deque[int] = deque()
        self._known: set[int] = set()

    def knows(self, fingerprint: int) -> bool:
        """Whether `fingerprint` is among the last `capacity` recorded (nothing is recorded)."""
        return fingerprint in self._known

    def first_time(self, fingerprint: int) -> bool:
        """Records `fingerprint`; False when it is among the last `capacity` recorded."""
        if fingerprint in self._known:
            return False
        self._order.append(fingerprint)
        self._known.add(fingerprint)
        self.total += 1
        if len(self._order) > self.capacity:
            self._known.discard(self._order.popleft())
        return True

    def to_array(self) -> npt.NDArray[np.int64]:
        """Oldest first."""
        return np.fromiter(self._order, np.int64, len(self._order))

    def restore(self, fingerprints: npt.NDArray[np.int64], total: int) -> None:
        """Continues from a snapshot's `to_array()` and `total`."""
        for fingerprint in fingerprints.tolist():
            self.first_time(fingerprint)
        self.total = total
