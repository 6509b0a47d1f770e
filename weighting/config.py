"""Tunable constants of the weighting model, with the defaults used by the pipeline and the replay."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

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
    popularity_half_life_ms: float = 7 * DAY_MS
    """Half-life of the popularity (trending) counts."""
    covisit_half_life_ms: float = math.inf
    """Half-life of the co-visitation counts; they do not age by default: on the tuning part of the MovieLens
    replay, undecayed counts over the last 5 items ranked better than counts with a 60-day half-life over the
    last 20 (in a TOML file: `inf`)."""
    covisit_span: int = 5
    """How many of a user's previous items each new one is counted together with."""

    def __post_init__(self) -> None:
        positive = ("short_half_life_events", "short_half_life_ms", "long_half_life_events", "long_half_life_ms",
                    "query_half_life_ms", "session_gap_ms", "gradient_clip", "recent_items", "remembered_event_ids",
                    "popularity_half_life_ms", "covisit_half_life_ms", "covisit_span")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("session_reset", "velocity_smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("learning_rate", "user_shrinkage", "prior_learning_rate", "extrapolation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or positive, got {getattr(self, name)}")


def weighting_config_from(data: Mapping[str, Any]) -> WeightingConfig:
    """A WeightingConfig from a mapping of its fields (a `strengths` table for EventStrengths); a name that is not
    a field, or a value that is not a number, raises ValueError naming it.

    >>> c = weighting_config_from({"learning_rate": 0.2, "strengths": {"purchase": 8}})
    >>> c.learning_rate, c.strengths.purchase, c.strengths.cart
    (0.2, 8.0, 3.0)
    """
    values = dict(data)
    strengths = _numbers(EventStrengths, values.pop("strengths", {}), "strengths.")
    return WeightingConfig(strengths=EventStrengths(**strengths), **_numbers(WeightingConfig, values, ""))


def load_weighting_config(path: str) -> WeightingConfig:
    """The WeightingConfig a TOML file sets (missing fields keep their defaults); empty path: the defaults."""
    if not path:
        return WeightingConfig()
    try:
        with open(path, "rb") as file:
            return weighting_config_from(tomllib.load(file))
    except (OSError, tomllib.TOMLDecodeError, ValueError) as error:
        raise ValueError(f"weighting config {path}: {error}") from error


def _numbers(cls: type, values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    known = {spec.name: spec for spec in fields(cls) if spec.name != "strengths"}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown field {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
    numbers: dict[str, Any] = {}
    for name, value in values.items():
        whole = known[name].type == "int"
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            raise ValueError(f"{prefix}{name} must be {'an integer' if whole else 'a number'}, got {value!r}")
        numbers[name] = value if whole else float(value)
    return numbers
