"""A user's context as numbers: what the weights over factors are a learned function of."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from weighting.config import WeightingConfig
from weighting.user_state import UserState
from weighting.user_update import interest_drift, interest_entropy, query_presence

CONTEXT_FEATURES: tuple[str, ...] = (
    "entropy", "drift", "log_gap_s", "session_position", "log_history", "search_recency", "items_since_search",
    "covisit_evidence", "transition_evidence",
)
"""The context features, in the order of a context vector."""


@dataclass(frozen=True)
class FactorEvidence:
    """How much the shared signals know about the user's recent items: the co-occurrence counts of the anchors
    (summed) and the transitions counted out of the newest one."""

    covisit: float = 0.0
    transition: float = 0.0


def user_context(state: UserState, config: WeightingConfig, now_ts: int, evidence: FactorEvidence) -> Context:
    """The context vector of `state` as of `now_ts` (event time), in the order of CONTEXT_FEATURES.

    >>> from weighting.user_state import UserState
    >>> user_context(UserState.empty(2), WeightingConfig(), 0, FactorEvidence()).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.044522437723423, 0.0, 0.0]
    """
    gap_ms = max(now_ts - state.last_ts, 0) if state.n_events else 0
    in_session = state.session_events if gap_ms <= config.session_gap_ms else 0
    return np.array([
        interest_entropy(state), interest_drift(state), math.log1p(gap_ms / 1000.0), math.log1p(in_session),
        math.log1p(state.n_events), query_presence(state, config, now_ts),
        math.log1p(items_since_search(state, config)), math.log1p(evidence.covisit), math.log1p(evidence.transition),
    ])


def items_since_search(state: UserState, config: WeightingConfig) -> int:
    """How many of the user's remembered item events came after their last search (all of `recent_items` when
    there was none): a search's intent is spent in the user's own events, whatever the log's clock."""
    if not state.query_ts:
        return config.recent_items
    return sum(item.ts >= state.query_ts for item in state.recent)


Context = npt.NDArray[np.float64]
