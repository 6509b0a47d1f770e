"""The WeightUpdate the weighting stage emits: a user's weights plus what the sink needs to score for them."""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from weighting.config import WeightingConfig
from weighting.context import CONTEXT_FEATURES, Context
from weighting.factors import FACTORS, Factor
from weighting.fusion_learning import Weights
from weighting.interest_profile import predicted_interest, unit
from weighting.seen_items import SeenItems
from weighting.user_state import UserState, Vector
from weighting.user_update import query_presence

ANCHOR_RECENCY = 0.85
"""An anchor's co-visitation weight shrinks by this per newer anchor."""


@dataclass(frozen=True)
class Anchor:
    """One of the user's recent items, with the weight it carries in co-visitation scoring and reasons."""

    item_id: str
    kind: str
    weight: float


@dataclass(frozen=True)
class WeightUpdate:
    """A user's factor weights in effect (summing to 1; `in_effect`), the context they were computed from, and the
    user's interest vectors (content profiles and the sequence model's user vector); vectors travel as float16."""

    user_id: str
    ts: int
    version: int
    weights: npt.NDArray[np.float64]
    short_term: Vector
    long_term: Vector
    query: Vector
    sequence: Vector
    anchors: tuple[Anchor, ...]
    context: Context
    trigger_event_id: str = ""
    arrived_ms: float = 0.0
    seen: SeenItems = field(default_factory=SeenItems)
    """What the user acted on, for the ranking to leave out; not on the wire (the weights topic is an output)."""
    experiment: str = ""
    arm: str = ""
    """The serving experiment and the user's arm in it, whose weights these are (empty without an experiment)."""

    def weights_by_factor(self) -> dict[str, float]:
        return {name: round(float(w), 6) for name, w in zip(FACTORS, self.weights, strict=True)}

    def context_by_name(self) -> dict[str, float]:
        return {name: round(float(c), 6) for name, c in zip(CONTEXT_FEATURES, self.context, strict=True)}

    def to_json(self) -> bytes:
        def vec(v: Vector) -> str:
            return base64.b64encode(v.astype(np.float16).tobytes()).decode()

        return orjson.dumps({
            "user_id": self.user_id, "ts": self.ts, "version": self.version, "weights": self.weights_by_factor(),
            "short_term": vec(self.short_term), "long_term": vec(self.long_term), "query": vec(self.query),
            "sequence": vec(self.sequence), "anchors": [[a.item_id, a.kind, a.weight] for a in self.anchors],
            "context": self.context_by_name(),
            "trigger_event_id": self.trigger_event_id, "arrived_ms": self.arrived_ms,
            "experiment": self.experiment, "arm": self.arm,
        })

    @classmethod
    def from_json(cls, raw: bytes) -> WeightUpdate:
        data = orjson.loads(raw)

        def vec(text: str) -> Vector:
            return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)

        return cls(
            user_id=data["user_id"], ts=data["ts"], version=data["version"],
            weights=np.asarray([data["weights"][name] for name in FACTORS], dtype=np.float64),
            short_term=vec(data["short_term"]), long_term=vec(data["long_term"]), query=vec(data["query"]),
            sequence=vec(data["sequence"]), anchors=tuple(Anchor(i, k, w) for i, k, w in data["anchors"]),
            context=np.asarray([data["context"][name] for name in CONTEXT_FEATURES]),
            trigger_event_id=data["trigger_event_id"], arrived_ms=data["arrived_ms"],
            experiment=data.get("experiment", ""), arm=data.get("arm", ""),
        )


def anchors_of(state: UserState) -> tuple[Anchor, ...]:
    """The user's recent positive items, newest first, weighted by strength and recency."""
    return tuple(
        Anchor(item.item_id, item.kind, item.strength * ANCHOR_RECENCY**age)
        for age, item in enumerate(reversed(state.recent))
        if item.strength > 0
    )


def content_profiles(state: UserState, config: WeightingConfig, now_ts: int) -> tuple[Vector, Vector, Vector]:
    """The inputs of the content factors as of `now_ts`: predicted short-term interest, long-term interest,
    and the decayed query."""
    return (
        predicted_interest(state.short_term, state.velocity, config),
        unit(state.long_term),
        (state.query * query_presence(state, config, now_ts)).astype(np.float32),
    )


def in_effect(weights: Weights, presence: float, constant: Collection[Factor] = ()) -> Weights:
    """The weights a ranking applies, summing to 1: the query factor's scaled by `presence` (`query_presence`),
    none for `constant` factors (the same score for every item, so they rank nothing; e.g. freshness over an
    undated catalogue). Factor scores are standardised per user, which cancels any decay of the query vector
    itself, so without this a week-old search would steer the list as strongly as one made a second ago; a user
    who never searched gets no query weight.

    >>> in_effect(np.array([0.4, 0.2, 0.2, 0.1, 0.0, 0.0, 0.0, 0.1]), 0.5, [Factor.FRESHNESS]).tolist()
    [0.5, 0.25, 0.125, 0.125, 0.0, 0.0, 0.0, 0.0]
    """
    effective = weights.copy()
    effective[Factor.QUERY] *= presence
    effective[list(constant)] = 0.0
    total = effective.sum()
    return effective / total if total > 0 else effective
