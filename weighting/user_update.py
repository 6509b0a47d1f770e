"""Applies one behaviour event to a user's state (profiles, bookkeeping), and what the state says of the user."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from weighting.config import WeightingConfig
from weighting.decay import decay_factor
from weighting.entropy import normalised_entropy
from weighting.interest_profile import decayed_profiles, norm, unit, updated_velocity
from weighting.user_state import RecentItem, UserState, Vector, event_fingerprint


@dataclass(frozen=True)
class ProfileEvent:
    """The part of a behaviour event the weighting stage needs."""

    event_id: str
    kind: str
    ts: int
    item_id: str | None = None
    value: float | None = None


@dataclass(frozen=True)
class EventInputs:
    """What the encoder and the scorer contribute to one event's update."""

    item_vector: Vector | None = None
    item_tags: tuple[str, ...] = ()
    query_vector: Vector | None = None


def apply_event(state: UserState, event: ProfileEvent, inputs: EventInputs, config: WeightingConfig) -> UserState:
    """Returns the new state: profiles and bookkeeping (the residual learns in `sinks.online_model`).

    The profiles decay, and a long gap resets the short-term one, by the time since the user's last item event (the
    profiles change only on item events, so a search in between does not reset their clock); the session counts
    every event. An event whose id was already applied returns the state unchanged, so redelivery counts nothing
    twice.
    """
    fingerprint = event_fingerprint(event.event_id)
    if fingerprint in state.applied:
        return state
    elapsed = float(event.ts - state.last_ts) if state.n_events else 0.0
    changes: dict[str, object] = {}
    if event.kind == "search" and inputs.query_vector is not None:
        aged = state.query * decay_factor(float(event.ts - state.query_ts), config.query_half_life_ms)
        changes.update(query=unit(aged + inputs.query_vector), query_ts=event.ts)
    elif event.item_id is not None and inputs.item_vector is not None:
        strength = config.strengths.of(event.kind, event.value)
        since_item = float(event.ts - state.recent[-1].ts) if state.recent else 0.0
        long_term, short_term, velocity = decayed_profiles(
            state.long_term, state.short_term, state.velocity, since_item, config
        )
        new_short = (short_term + strength * inputs.item_vector).astype(np.float32)
        changes.update(
            long_term=(long_term + strength * inputs.item_vector).astype(np.float32),
            short_term=new_short,
            velocity=updated_velocity(short_term, new_short, velocity, config),
            recent=(*state.recent, RecentItem(event.item_id, event.kind, strength, event.ts, inputs.item_tags))[
                -config.recent_items :
            ],
            seen=state.seen.added(event.item_id, config.seen_remembered),
        )
    new_session = state.n_events == 0 or elapsed > config.session_gap_ms
    new_state = replace(
        state,
        version=state.version + 1,
        n_events=state.n_events + 1,
        session_events=1 if new_session else state.session_events + 1,
        last_ts=max(state.last_ts, event.ts),
        applied=(*state.applied, fingerprint)[-config.remembered_event_ids :],
        **changes,  # type: ignore[arg-type]
    )
    return new_state


def interest_entropy(state: UserState) -> float:
    """The normalised entropy of the user's recent positive interests over item tags (item ids when untagged)."""
    masses = (
        (tag, item.strength / len(item.tags or (item.item_id,)))
        for item in state.recent
        if item.strength > 0
        for tag in (item.tags or (item.item_id,))
    )
    return normalised_entropy(masses)


def interest_drift(state: UserState) -> float:
    """How far the short-term interest has turned from the long-term one: (1 - cos) / 2, in [0, 1]."""
    short_norm, long_norm = norm(state.short_term), norm(state.long_term)
    if short_norm == 0.0 or long_norm == 0.0:
        return 0.0
    cosine = float(state.short_term @ state.long_term) / (short_norm * long_norm)
    return (1.0 - cosine) / 2.0


def query_presence(state: UserState, config: WeightingConfig, now_ts: int) -> float:
    """How much the user's searches still count at `now_ts`: the decay of the last one (0 without any)."""
    return decay_factor(float(now_ts - state.query_ts), config.query_half_life_ms) if state.query_ts else 0.0
