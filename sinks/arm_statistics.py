"""Per-arm totals over users and the 95% interval of the difference of two arms' rates.

A rate (CTR@k = lists clicked through / impressions; conversion = lists converted / impressions) is a ratio of
sums over the arm's users, and one user's impressions are not independent of each other. The variance is the
delta method's over users (each user one cluster):
var(R) = Σ_u (a_u − R·n_u)² / (n̄² · m · (m − 1)) for m users with impressions, n̄ their mean impressions.
The arms are independent samples of users, so the difference's variance is the sum of the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sinks.attribution import CLICKS, CONVERSIONS, IMPRESSIONS, LISTS
from weighting.experiment import Experiment

Z_95 = 1.959963984540054


@dataclass
class RateSums:
    """Σ a_u, Σ n_u, Σ a_u², Σ a_u·n_u, Σ n_u² over the users with impressions, and their number."""

    users: int = 0
    hits: int = 0
    trials: int = 0
    hits_sq: int = 0
    cross: int = 0
    trials_sq: int = 0

    def add(self, hits: int, trials: int, sign: int = 1) -> None:
        if trials <= 0:
            return
        self.users += sign
        self.hits += sign * hits
        self.trials += sign * trials
        self.hits_sq += sign * hits * hits
        self.cross += sign * hits * trials
        self.trials_sq += sign * trials * trials

    @property
    def rate(self) -> float:
        return self.hits / self.trials if self.trials > 0 else 0.0

    def variance(self) -> float:
        """The delta-method variance of the rate over users (inf with fewer than two users)."""
        if self.users < 2:
            return math.inf
        rate = self.rate
        spread = self.hits_sq - 2 * rate * self.cross + rate * rate * self.trials_sq
        mean_trials = self.trials / self.users
        return max(spread, 0.0) / (mean_trials * mean_trials * self.users * (self.users - 1))


@dataclass
class ArmTotals:
    """One arm's tallies summed over users, and the sums its rates' intervals need. A user's clicks and
    conversions in an arm come from lists shown under that arm, so the sums over users with impressions hold every
    impression, click and conversion."""

    lists: int = 0
    ctr: RateSums = field(default_factory=RateSums)
    conversion: RateSums = field(default_factory=RateSums)

    @property
    def impressions(self) -> int:
        return self.ctr.trials

    @property
    def clicks(self) -> int:
        return self.ctr.hits

    @property
    def conversions(self) -> int:
        return self.conversion.hits

    def add(self, tally: list[int], sign: int = 1) -> None:
        """Adds (or with sign −1 takes away) one user's tally [lists, impressions, clicks, conversions]."""
        self.lists += sign * tally[LISTS]
        self.ctr.add(tally[CLICKS], tally[IMPRESSIONS], sign)
        self.conversion.add(tally[CONVERSIONS], tally[IMPRESSIONS], sign)


@dataclass(frozen=True)
class Difference:
    """Rate of the arm minus rate of the control, with its 95% interval (infinite while either arm has < 2 users)."""

    value: float
    low: float
    high: float


def difference(arm: RateSums, control: RateSums) -> Difference:
    """The arm's rate minus the control's, ± 1.96 standard errors.

    >>> a, b = RateSums(), RateSums()
    >>> for hits, trials in ((1, 2), (2, 2)): a.add(hits, trials)
    >>> for hits, trials in ((0, 2), (1, 2)): b.add(hits, trials)
    >>> d = difference(a, b); round(d.value, 4), round(d.low, 4), round(d.high, 4)
    (0.5, -0.193, 1.193)
    """
    value = arm.rate - control.rate
    spread = Z_95 * math.sqrt(arm.variance() + control.variance())
    return Difference(value, value - spread, value + spread)


@dataclass
class ExperimentTotals:
    """Every arm's totals (by experiment/arm key) over the users whose exposure records were counted in."""

    arms: dict[str, ArmTotals] = field(default_factory=dict)

    def replace(self, old: dict[str, list[int]], new: dict[str, list[int]]) -> None:
        """One user's tallies changed from `old` to `new` (both by arm key)."""
        for arm, tally in old.items():
            self.arms.setdefault(arm, ArmTotals()).add(tally, -1)
        for arm, tally in new.items():
            self.arms.setdefault(arm, ArmTotals()).add(tally)


def arm_key(experiment_id: str, arm: str) -> str:
    return f"{experiment_id}/{arm}"


def experiment_report(experiment: Experiment, totals: ExperimentTotals) -> list[dict[str, Any]]:
    """Per arm of the experiment: its share, its users with impressions, counts, CTR@k and conversion rate, and
    (but for the control) each rate's difference from the control's with its 95% interval (None while either arm
    has no impression; the bounds None while either has fewer than two users)."""
    control = totals.arms.get(arm_key(experiment.id, experiment.control.name), ArmTotals())
    rows = []
    for arm in experiment.arms:
        sums = totals.arms.get(arm_key(experiment.id, arm.name), ArmTotals())
        row: dict[str, Any] = {
            "arm": arm.name, "share": arm.share, "users": sums.ctr.users, "lists": sums.lists,
            "impressions": sums.impressions, "clicks": sums.clicks, "conversions": sums.conversions,
            "ctr": sums.ctr.rate, "conversion_rate": sums.conversion.rate,
        }
        if arm is not experiment.control:
            for name, mine, theirs in (("ctr", sums.ctr, control.ctr),
                                       ("conversion_rate", sums.conversion, control.conversion)):
                if not (mine.trials and theirs.trials):
                    row[f"{name}_difference"] = {"value": None, "low": None, "high": None}
                    continue
                d = difference(mine, theirs)
                bounded = math.isfinite(d.low)
                row[f"{name}_difference"] = {"value": d.value, "low": d.low if bounded else None,
                                             "high": d.high if bounded else None}
        rows.append(row)
    return rows
