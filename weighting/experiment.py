"""Online experiments: arms with traffic shares, a user's arm by a stable hash, and the weights each arm serves.

An arm is a serving policy over the same model: `dynamic` serves the model's context weights; an arm with fixed
`weights` (or `static`, the model's starting prior: every factor alike) serves those whatever the context;
`<factor>-only` serves one factor. Every arm's users feed the model alike; only the list they are shown differs.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from weighting.factors import FACTORS, Factor
from weighting.fusion_learning import Weights
from weighting.weight_update import in_effect

DYNAMIC = "dynamic"
STATIC = "static"
ONLY_SUFFIX = "-only"
SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Arm:
    name: str
    share: float
    fixed: tuple[float, ...] | None = None
    """The weights this arm serves whatever the context (factor order); None for the dynamic arm."""

    def served(self, dynamic: Weights, query_presence: float, constant: Collection[Factor] = ()) -> Weights:
        """The weights this arm ranks with, given the model's dynamic weights in effect for the user.

        >>> Arm("covisit-only", 1.0, fixed_weights("covisit-only")).served(np.full(8, 0.125), 1.0).tolist()
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        """
        if self.fixed is None:
            return dynamic
        return in_effect(np.asarray(self.fixed, np.float64), query_presence, constant)


@dataclass(frozen=True)
class Experiment:
    """An experiment's id, its arms (shares summing to 1) and how long a shown item can earn its list a click."""

    id: str
    arms: tuple[Arm, ...]
    attribution_ms: int = 30 * 60_000

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise ValueError("an experiment needs an id")
        if not self.arms:
            raise ValueError(f"experiment {self.id!r} has no arms")
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.id!r} names an arm twice")
        if any(not arm.share > 0 for arm in self.arms):
            raise ValueError(f"experiment {self.id!r}: every arm's share must be positive")
        if abs(sum(arm.share for arm in self.arms) - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"experiment {self.id!r}: the shares sum to {sum(a.share for a in self.arms):g}, not 1")
        if self.attribution_ms <= 0:
            raise ValueError(f"experiment {self.id!r}: the attribution window must be positive")

    def arm_of(self, user_id: str) -> Arm:
        """The user's arm: a hash of (experiment id, user id) placed on the arms' cumulative shares, the same on
        every worker, in every run and in the replay. Arms and shares are fixed for an experiment id's life:
        changing them moves users between arms, so a changed experiment takes a new id."""
        digest = hashlib.blake2b(f"{self.id}\x00{user_id}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / 2.0**64
        bound = 0.0
        for arm in self.arms:
            bound += arm.share
            if point < bound:
                return arm
        return self.arms[-1]

    @property
    def control(self) -> Arm:
        """The first arm: the others are compared with it."""
        return self.arms[0]


def fixed_weights(name: str, weights: Mapping[str, float] | None = None) -> tuple[float, ...] | None:
    """The fixed weights an arm of this name serves: the given ones, else none for `dynamic`, every factor alike
    for `static`, one factor for `<factor>-only`."""
    if not name.strip():
        raise ValueError("an arm needs a name")
    if weights is not None:
        if name == DYNAMIC:
            raise ValueError(f"arm {DYNAMIC!r} serves the model's weights; a fixed arm needs another name")
        unknown = sorted(set(weights) - set(FACTORS))
        if unknown:
            raise ValueError(f"arm {name!r}: unknown factor {unknown[0]!r} (known: {', '.join(FACTORS)})")
        values = tuple(float(weights.get(factor, 0.0)) for factor in FACTORS)
        if any(not math.isfinite(v) or v < 0 for v in values) or not sum(values) > 0:
            raise ValueError(f"arm {name!r}: weights must be finite, not negative, and not all 0")
        return values
    if name == DYNAMIC:
        return None
    if name == STATIC:
        return (1.0,) * len(FACTORS)
    factor = name.removesuffix(ONLY_SUFFIX)
    if name.endswith(ONLY_SUFFIX) and factor in FACTORS:
        return tuple(float(f == factor) for f in FACTORS)
    raise ValueError(f"arm {name!r} is not dynamic, static or <factor>-only, and sets no weights")


def parse_experiment(text: str) -> Experiment | None:
    """An experiment from its setting, `id:arm=share,arm=share,...` (empty: none).

    >>> [(a.name, a.share) for a in parse_experiment("e1:dynamic=0.5,covisit-only=0.5").arms]
    [('dynamic', 0.5), ('covisit-only', 0.5)]
    """
    if not text.strip():
        return None
    experiment_id, _, arms = text.partition(":")
    parsed = []
    for part in filter(None, (p.strip() for p in arms.split(","))):
        name, _, share = part.partition("=")
        try:
            parsed.append(Arm(name.strip(), float(share), fixed_weights(name.strip())))
        except ValueError as error:
            raise ValueError(f"experiment {text!r}: {error}") from None
    return Experiment(experiment_id.strip(), tuple(parsed))


def experiment_from(data: Mapping[str, Any]) -> Experiment:
    """An experiment from the weighting TOML's `[experiment]` table: `id`, `attribution_minutes` and
    `[[experiment.arms]]` with `name`, `share` and optional `weights` (by factor)."""
    unknown = sorted(set(data) - {"id", "arms", "attribution_minutes"})
    if unknown:
        raise ValueError(f"unknown field experiment.{unknown[0]}")
    arms = []
    for arm in data.get("arms", []):
        extra = sorted(set(arm) - {"name", "share", "weights"})
        if extra:
            raise ValueError(f"unknown field experiment.arms.{extra[0]}")
        name = str(arm.get("name", ""))
        arms.append(Arm(name, float(arm.get("share", 0.0)), fixed_weights(name, arm.get("weights"))))
    minutes = float(data.get("attribution_minutes", 30))
    return Experiment(str(data.get("id", "")), tuple(arms), attribution_ms=int(minutes * 60_000))


def load_experiment(path: str, setting: str = "") -> Experiment | None:
    """The experiment the setting declares, else the weighting TOML's `[experiment]` table, else none."""
    if setting.strip():
        return parse_experiment(setting)
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file).get("experiment")
        return None if table is None else experiment_from(table)
    except (OSError, tomllib.TOMLDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"weighting config {path}: {error}") from error
