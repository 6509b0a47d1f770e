"""Detects a stalled consumer: records wait on a partition but its committed offset has not moved for a while.

Faust can silently stop fetching some partitions after a rebalance (faust-streaming issue #629). A worker that
sees this exits with STALL_EXIT_CODE; `driftrec worker` (or the orchestrator) starts it again, and at-least-once
delivery with idempotent state makes the restart safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PartitionKey = tuple[str, int]
"""A partition as (topic, partition)."""

STALL_EXIT_CODE = 75


@dataclass
class StallWatchdog:
    """Fed (committed offset, end offset) per partition; reports the partitions stuck for `grace_s` seconds."""

    grace_s: float
    since: dict[PartitionKey, tuple[int, float]] = field(default_factory=dict)

    def observe(self, progress: Mapping[PartitionKey, tuple[int, int]], now: float) -> list[PartitionKey]:
        stalled = []
        for key, (committed, end) in progress.items():
            if end <= committed:
                self.since.pop(key, None)
                continue
            seen = self.since.get(key)
            if seen is None or seen[0] != committed:
                self.since[key] = (committed, now)
            elif now - seen[1] >= self.grace_s:
                stalled.append(key)
        for key in set(self.since) - set(progress):
            del self.since[key]
        return stalled

    def reset(self) -> None:
        self.since.clear()
