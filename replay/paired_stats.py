"""Paired comparisons of ranking methods on the same evaluated events, with bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RESAMPLES_PER_CHUNK = 100


@dataclass(frozen=True)
class PairedDifference:
    """HR of a method against a baseline on the same events: the difference and the ratio, each with a 95%
    bootstrap interval (events resampled with Poisson(1) weights, the same resamples for both methods)."""

    method_hr: float
    baseline_hr: float
    difference: float
    difference_interval: tuple[float, float]
    ratio: float
    ratio_interval: tuple[float, float]

    @property
    def significant(self) -> bool:
        """Whether the difference's interval lies above 0."""
        return self.difference_interval[0] > 0

    def to_dict(self) -> dict[str, object]:
        return {"method_hr": self.method_hr, "baseline_hr": self.baseline_hr, "difference": self.difference,
                "difference_interval": list(self.difference_interval), "ratio": self.ratio,
                "ratio_interval": list(self.ratio_interval)}


def paired_differences(
    method: npt.NDArray[np.bool_], baselines: npt.NDArray[np.bool_], resamples: int, seed: int
) -> list[PairedDifference]:
    """`method`'s hits (events) against each row of `baselines` (baselines × events).

    >>> hits = np.array([True, True, False, True] * 50)
    >>> [d] = paired_differences(hits, ~hits[None], 200, 0)
    >>> d.difference, round(d.ratio, 2), d.difference_interval[0] > 0.3, d.ratio_interval[0] > 2
    (0.5, 3.0, True, True)
    """
    n = len(method)
    rng = np.random.default_rng(seed)
    columns = np.concatenate([method[None], baselines]).T.astype(np.float64)  # events × (1 + baselines)
    totals = []
    for start in range(0, resamples, RESAMPLES_PER_CHUNK):
        weights = rng.poisson(1.0, size=(min(RESAMPLES_PER_CHUNK, resamples - start), n)).astype(np.float64)
        totals.append(np.column_stack([weights @ columns, weights.sum(axis=1)]))
    sums = np.concatenate(totals)
    rates = sums[:, :-1] / np.maximum(sums[:, -1:], 1.0)
    means = columns.mean(axis=0)
    results = []
    for b in range(len(baselines)):
        difference = rates[:, 0] - rates[:, b + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rates[:, 0] / rates[:, b + 1]
            point_ratio = means[0] / means[b + 1] if means[b + 1] else np.inf
        results.append(PairedDifference(
            method_hr=float(means[0]), baseline_hr=float(means[b + 1]), difference=float(means[0] - means[b + 1]),
            difference_interval=_interval(difference), ratio=float(point_ratio), ratio_interval=_interval(ratio),
        ))
    return results


def _interval(samples: npt.NDArray[np.float64]) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return (float("inf"), float("inf"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return (float(low), float(high))
