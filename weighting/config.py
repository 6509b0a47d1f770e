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
    fusion_sharpness: float = 3.0
    """How sharply the feedback step's softmax over the user's candidates follows the fused score (calibrated
    scores are in standard deviations, so this is a number of them per unit of fused score)."""
    prior_learning_rate: float = 0.05
    """Step size of the prior's logits θ (every user's feedback moves them)."""
    context_learning_rate: float = 0.005
    """Step size of the context map A (every user's feedback moves it)."""
    learning_rate: float = 0.05
    """Step size of a user's own residual logits."""
    user_shrinkage: float = 0.02
    """Share of a user's residual given back to 0 at each feedback event."""
    recent_items: int = 20
    remembered_event_ids: int = 512
    exclude_seen: bool = True
    """Whether an item the user acted on is left out of their lists (false for a catalogue of repeat purchases)."""
    seen_remembered: int = 200
    """A user's newest items kept exactly for that; older ones go into Bloom filters (`weighting.seen_items`)."""
    candidates_per_factor: int = 100
    """How many of its best items each factor lists for a user; the user's candidates are the union of the lists."""
    popularity_half_life_ms: float = 7 * DAY_MS
    """Half-life of the popularity (trending) counts."""
    covisit_half_life_ms: float = math.inf
    """Half-life of the co-visitation counts (in a TOML file: `inf` for counts that do not age)."""
    covisit_span: int = 20
    """How many of a user's previous items each new one is counted together with."""
    transition_half_life_ms: float = math.inf
    """Half-life of the transition counts."""
    transition_span: int = 3
    """How many of a user's previous items each new one is counted as following."""
    sequence_dim: int = 64
    """Width of the sequence model's item and user vectors."""
    sequence_length: int = 10
    """How many of the user's recent consumptions the sequence model reads (at most `recent_items`)."""
    sequence_train_every: int = 128
    """The sequence model takes its training steps every this many new examples ..."""
    sequence_train_steps: int = 2
    """... this many steps, each on a batch of the newest examples and older ones."""
    sequence_batch: int = 256
    sequence_learning_rate: float = 0.003
    sequence_negatives: int = 1024
    """Items sampled uniformly as the wrong answers of each training step."""
    sequence_buffer: int = 50_000
    """Examples kept for training (the newest)."""
    seed: int = 0
    """Seed of the sequence model's initial parameters and of its training samples."""

    def __post_init__(self) -> None:
        positive = ("short_half_life_events", "short_half_life_ms", "long_half_life_events", "long_half_life_ms",
                    "query_half_life_ms", "session_gap_ms", "fusion_sharpness", "recent_items", "remembered_event_ids",
                    "seen_remembered",
                    "candidates_per_factor", "popularity_half_life_ms", "covisit_half_life_ms", "covisit_span",
                    "transition_half_life_ms", "transition_span", "sequence_dim", "sequence_length",
                    "sequence_train_every", "sequence_train_steps", "sequence_batch", "sequence_negatives",
                    "sequence_buffer")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("session_reset", "velocity_smoothing", "user_shrinkage"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("learning_rate", "user_shrinkage", "prior_learning_rate", "context_learning_rate",
                     "sequence_learning_rate", "extrapolation"):
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
    values.pop("experiment", None)  # the serving experiment (`weighting.experiment.load_experiment`)
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
        kind = known[name].type
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{prefix}{name} must be true or false, got {value!r}")
            numbers[name] = value
            continue
        whole = kind == "int"
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            raise ValueError(f"{prefix}{name} must be {'an integer' if whole else 'a number'}, got {value!r}")
        numbers[name] = value if whole else float(value)
    return numbers
