"""Tunable constants of the weighting model, with the defaults used by the pipeline and the replay."""

from __future__ import annotations

from dataclasses import dataclass, field

from weighting.event_strength import EventStrengths

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class WeightingConfig:
    """How profiles decay, how sessions reset, and how fast weights learn."""

    strengths: EventStrengths = field(default_factory=EventStrengths)
    short_half_life_events: float = 4.0
    short_half_life_ms: float = 2 * HOUR_MS
    long_half_life_events: float = 300.0
    long_half_life_ms: float = 90 * DAY_MS
    query_half_life_ms: float = 1 * HOUR_MS
    session_gap_ms: float = 30 * 60_000
    session_reset: float = 0.25
    velocity_smoothing: float = 0.7
    extrapolation: float = 0.5
    learning_rate: float = 0.1
    """Step size of a user's own log-weights (the listwise feedback step, `weighting.fusion_learning`)."""
    user_shrinkage: float = 0.02
    """Share of a user's own log-weights given back to the prior at each feedback event."""
    prior_learning_rate: float = 0.01
    """Step size of the global prior's log-weights (every user's feedback moves it)."""
    gradient_clip: float = 5.0
    """Bound on each factor's gradient (z-score units), so that one outlier event cannot swing the weights."""
    entropy_strength: float = 0.0
    """How strongly the entropy of recent interests tilts weights at first; the prior learns it from feedback."""
    drift_strength: float = 0.0
    """How strongly interest drift tilts weights at first; the prior learns it from feedback."""
    recent_items: int = 20
    remembered_event_ids: int = 512
