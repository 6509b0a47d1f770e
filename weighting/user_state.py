"""A user's state: long/short-term interest, its motion, recent searches, factor weights and what was applied."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from weighting.factors import FACTORS

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RecentItem:
    """An item the user acted on, kept for co-visitation, entropy and reasons."""

    item_id: str
    kind: str
    strength: float
    ts: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserState:
    """Everything the weighting stage keeps per user; immutable, replaced on every update."""

    dim: int
    version: int = 0
    n_events: int = 0
    n_feedback: int = 0
    last_ts: int = 0
    query_ts: int = 0
    long_term: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    short_term: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    velocity: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    query: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    log_weights: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(FACTORS)))
    recent: tuple[RecentItem, ...] = ()
    seen: frozenset[str] = frozenset()
    applied_event_ids: tuple[str, ...] = ()

    @classmethod
    def empty(cls, dim: int) -> UserState:
        zeros = np.zeros(dim, np.float32)
        return cls(dim=dim, long_term=zeros, short_term=zeros, velocity=zeros, query=zeros)

    def to_bytes(self) -> bytes:
        """A compact form for the state table: a JSON header, a newline, then the raw float32 vectors."""
        header = {
            "dim": self.dim, "version": self.version, "n_events": self.n_events, "n_feedback": self.n_feedback,
            "last_ts": self.last_ts, "query_ts": self.query_ts, "log_weights": self.log_weights.tolist(),
            "recent": [[r.item_id, r.kind, r.strength, r.ts, list(r.tags)] for r in self.recent],
            "seen": sorted(self.seen), "applied": list(self.applied_event_ids),
        }
        vectors = np.concatenate([self.long_term, self.short_term, self.velocity, self.query]).astype(np.float32)
        return orjson.dumps(header) + b"\n" + vectors.tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserState:
        head, _, body = raw.partition(b"\n")
        header = orjson.loads(head)
        dim = int(header["dim"])
        vectors = np.frombuffer(body, dtype=np.float32).reshape(4, dim).copy()
        return cls(
            dim=dim, version=header["version"], n_events=header["n_events"], n_feedback=header["n_feedback"],
            last_ts=header["last_ts"], query_ts=header["query_ts"],
            long_term=vectors[0], short_term=vectors[1], velocity=vectors[2], query=vectors[3],
            log_weights=np.asarray(header["log_weights"], dtype=np.float64),
            recent=tuple(RecentItem(i, k, s, t, tuple(g)) for i, k, s, t, g in header["recent"]),
            seen=frozenset(header["seen"]), applied_event_ids=tuple(header["applied"]),
        )
