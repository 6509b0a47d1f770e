"""What factor weights alone could reach on a log: the ceiling of weight dynamics, measured in the replay.

For a uniform sample of the evaluated events the replay keeps the judged ranking and its context. From them, for
the static tuning's candidate weight vectors (plus the tuned one):

* static oracle: the best fixed weights in hindsight — no static fusion of these factors does better;
* per-context oracle: the best weights chosen in hindsight for each quartile of one context feature — an upper
  bound for any weights that depend on that feature alone;
* follow the leader: at each event the candidate with the most hits so far, starting from the tuned weights —
  what an online tracker over fixed fusions reaches without hindsight.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from replay.static_tuning import RANDOM_CANDIDATES, RankingSamples, candidate_weights
from weighting.context import CONTEXT_FEATURES

HitMatrix = npt.NDArray[np.bool_]
CAPACITY = 4000


@dataclass
class CeilingSamples:
    """A uniform sample (reservoir) of evaluated rankings and their contexts, kept in log order."""

    rng: random.Random
    capacity: int = CAPACITY
    samples: list[tuple[int, npt.NDArray[np.float32], int, npt.NDArray[np.float64], bool]] = field(
        default_factory=list)
    offered: int = 0

    def add(self, calibrated: npt.NDArray[np.float32], target: int, context: npt.NDArray[np.float64],
            dynamic_hit: bool) -> None:
        """One evaluated ranking (the query factor scaled as fixed weights see it), its context, and whether the
        dynamic model's weights hit."""
        self.offered += 1
        sample = (self.offered, calibrated, target, context, dynamic_hit)
        if len(self.samples) < self.capacity:
            self.samples.append(sample)
        elif (slot := self.rng.randrange(self.offered)) < self.capacity:
            self.samples[slot] = sample

    def report(self, tuned: npt.NDArray[np.float64], k: int) -> dict[str, float]:
        """HR@k of the tuned weights, the oracles and follow-the-leader, by name."""
        if not self.samples:
            return {}
        ordered = sorted(self.samples, key=lambda s: s[0])
        rankings = RankingSamples.of([(z, t) for _, z, t, _, _ in ordered])
        candidates = np.concatenate([tuned[None], candidate_weights(len(tuned), RANDOM_CANDIDATES, 0)])
        hits = rankings.hits(candidates, k)
        contexts = np.stack([c for *_, c, _ in ordered])
        result = {"static tuned": float(hits[:, 0].mean()), "static oracle": static_oracle(hits)}
        for column, name in enumerate(CONTEXT_FEATURES):
            edges = np.unique(np.quantile(contexts[:, column], [0.25, 0.5, 0.75]))
            result[f"oracle per quartile of {name}"] = context_oracle(hits, np.digitize(contexts[:, column], edges))
        result["follow the leader"] = follow_the_leader(hits, 0)
        result["dynamic (driftrec)"] = float(np.mean([hit for *_, hit in ordered]))
        return result


def static_oracle(hits: HitMatrix) -> float:
    """The hit rate of the candidate best over all events."""
    return float(hits.mean(axis=0).max())


def context_oracle(hits: HitMatrix, buckets: npt.NDArray[np.int64]) -> float:
    """The hit rate when each bucket uses the candidate best within it."""
    best = sum(int(hits[buckets == bucket].sum(axis=0).max()) for bucket in np.unique(buckets))
    return best / len(hits)


def follow_the_leader(hits: HitMatrix, start: int) -> float:
    """Each event is ranked by the candidate with the most hits before it (ties: the lowest index); candidate
    `start` leads until another has more hits."""
    totals = np.zeros(hits.shape[1])
    totals[start] = 0.5
    chosen = 0
    for row in hits:
        chosen += int(row[int(totals.argmax())])
        totals += row
    return chosen / len(hits)


def format_ceiling(report: dict[str, float], n_samples: int) -> str:
    """The ceiling as lines, the dynamic model's hit rate on the same sample last."""
    lines = [f"what fixed or one-feature weights could reach on {n_samples} of the evaluated events (HR):"]
    lines += [f"  {name:58s} {value:.4f}" for name, value in report.items()]
    return "\n".join(lines)
