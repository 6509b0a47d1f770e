"""A user's state: long/short-term interest, its motion, recent searches, factor weights and what was applied."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from weighting.factors import FACTORS
from weighting.seen_items import FILTER_BITS, SeenItems

Vector = npt.NDArray[np.float32]


def event_fingerprint(event_id: str) -> int:
    """A 64-bit hash of an event id: what a state remembers of the events it applied (8 bytes each instead of
    the id's text; two of a user's last few hundred ids colliding has odds of about 2^-47)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little", signed=True)


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
    session_events: int = 0
    """Events since the user's current session began (a gap longer than the session gap starts a new one)."""
    last_ts: int = 0
    query_ts: int = 0
    long_term: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    short_term: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    velocity: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    query: Vector = field(default_factory=lambda: np.zeros(0, np.float32))
    log_weights: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(FACTORS)))
    """The user's own residual r_u over the factors' logits (`weighting.context_weights`)."""
    recent: tuple[RecentItem, ...] = ()
    seen: SeenItems = field(default_factory=SeenItems)
    applied: tuple[int, ...] = ()
    """Fingerprints of the last events applied (`event_fingerprint`), oldest first."""

    @classmethod
    def empty(cls, dim: int) -> UserState:
        zeros = np.zeros(dim, np.float32)
        return cls(dim=dim, long_term=zeros, short_term=zeros, velocity=zeros, query=zeros)

    def to_bytes(self) -> bytes:
        """A compact form for the state table: a JSON header, a newline, the raw float32 vectors, the applied events'
        fingerprints as raw int64, then the seen items' filters."""
        header = {
            "dim": self.dim, "version": self.version, "n_events": self.n_events, "n_feedback": self.n_feedback,
            "session_events": self.session_events, "last_ts": self.last_ts, "query_ts": self.query_ts,
            "log_weights": self.log_weights.tolist(),
            "recent": [[r.item_id, r.kind, r.strength, r.ts, list(r.tags)] for r in self.recent],
            "seen": list(self.seen.recent), "seen_filters": [len(self.seen.filters), self.seen.in_current],
            "n_applied": len(self.applied),
        }
        vectors = np.concatenate([self.long_term, self.short_term, self.velocity, self.query]).astype(np.float32)
        return (orjson.dumps(header) + b"\n" + vectors.tobytes() + np.asarray(self.applied, np.int64).tobytes()
                + b"".join(self.seen.filters))

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserState:
        head, _, body = raw.partition(b"\n")
        header = orjson.loads(head)
        dim = int(header["dim"])
        vectors = np.frombuffer(body, dtype=np.float32, count=4 * dim).reshape(4, dim).copy()
        offset = vectors.nbytes
        if "applied" in header:  # written before fingerprints: the ids themselves
            applied = tuple(map(event_fingerprint, header["applied"]))
        else:
            fingerprints = np.frombuffer(body, dtype=np.int64, offset=offset, count=header["n_applied"])
            applied = tuple(fingerprints.tolist())
            offset += fingerprints.nbytes
        return cls(
            dim=dim, version=header["version"], n_events=header["n_events"], n_feedback=header["n_feedback"],
            session_events=header.get("session_events", 0), last_ts=header["last_ts"], query_ts=header["query_ts"],
            long_term=vectors[0], short_term=vectors[1], velocity=vectors[2], query=vectors[3],
            log_weights=_residual(header["log_weights"]),
            recent=tuple(RecentItem(i, k, s, t, tuple(g)) for i, k, s, t, g in header["recent"]),
            seen=_seen_items(header, body[offset:]), applied=applied,
        )


def _seen_items(header: dict[str, Any], filters: bytes) -> SeenItems:
    """The seen items of a stored state; a state written before the filters holds all its ids in `seen`, sorted."""
    ids = tuple(header["seen"])
    if "seen_filters" not in header:
        return SeenItems(ids)  # exact, however many: the next item bounds them
    count, in_current = header["seen_filters"]
    size = FILTER_BITS // 8
    return SeenItems(ids, tuple(filters[n * size : (n + 1) * size] for n in range(int(count))), int(in_current))


def _residual(log_weights: list[float]) -> npt.NDArray[np.float64]:
    """A stored residual over the current factors; one stored over another set of factors starts again from 0."""
    values = np.asarray(log_weights, dtype=np.float64)
    return values if len(values) == len(FACTORS) else np.zeros(len(FACTORS))
