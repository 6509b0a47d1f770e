"""Interest evolution: long- and short-term profiles decaying in event time, session resets, and extrapolation."""

from __future__ import annotations

import numpy as np

from weighting.config import WeightingConfig
from weighting.decay import decay_factor
from weighting.user_state import Vector


def norm(vector: Vector) -> float:
    """The Euclidean norm, as `np.linalg.norm` computes it for a vector, without its checks (a hot path)."""
    return float(np.sqrt(vector @ vector))


def unit(vector: Vector) -> Vector:
    length = norm(vector)
    return vector if length == 0.0 else (vector / length).astype(np.float32)


def decayed_profiles(
    long_term: Vector, short_term: Vector, velocity: Vector, elapsed_ms: float, config: WeightingConfig
) -> tuple[Vector, Vector, Vector]:
    """Ages the profiles by one event and `elapsed_ms`; a gap longer than a session shrinks the short-term part."""
    short_keep = decay_factor(1.0, config.short_half_life_events) * decay_factor(elapsed_ms, config.short_half_life_ms)
    long_keep = decay_factor(1.0, config.long_half_life_events) * decay_factor(elapsed_ms, config.long_half_life_ms)
    if elapsed_ms > config.session_gap_ms:
        short_keep *= config.session_reset
        velocity = np.zeros_like(velocity)
    return (long_term * long_keep).astype(np.float32), (short_term * short_keep).astype(np.float32), velocity


def updated_velocity(old_short: Vector, new_short: Vector, velocity: Vector, config: WeightingConfig) -> Vector:
    """An exponential moving average of the short-term profile's change of direction."""
    step = unit(new_short) - unit(old_short)
    smoothing = config.velocity_smoothing
    return (smoothing * velocity + (1.0 - smoothing) * step).astype(np.float32)


def predicted_interest(short_term: Vector, velocity: Vector, config: WeightingConfig) -> Vector:
    """Where the short-term interest is heading: its direction plus the extrapolated recent motion."""
    return unit(unit(short_term) + config.extrapolation * velocity)
