"""What factor weights alone could reach on a log: the ceiling of weight dynamics, measured in the replay.

At every evaluated event the replay records which of the static tuning's candidate weight vectors would have put
the event's item in the top k (a hit matrix, events × candidates), and the event's context. From it:

* static oracle: the best fixed weights in hindsight — no static fusion of these factors does better;
* per-context oracle: the best weights chosen in hindsight for each bucket of one context (time since the user's
  previous event, the user's event count, interest entropy, interest drift) — an upper bound for any weights
  that depend on that context alone;
* follow the leader: at each event the candidate with the most (discounted) hits so far, starting from the
  tuned weights — what an online tracker over fusions reaches without hindsight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

HitMatrix = npt.NDArray[np.bool_]

CONTEXT_BUCKETS: dict[str, tuple[float, ...]] = {
    "time since the user's previous event (ms)": (1_000, 60_000, 1_800_000, 86_400_000),
    "user's events so far": (5, 20, 50, 150, 500),
    "interest entropy": (0.5, 0.7, 0.8, 0.9),
    "interest drift": (0.05, 0.1, 0.2, 0.3),
}
"""Each context's bucket edges, in the order `CeilingSamples.add` takes the context values."""

DISCOUNTS = (1.0, 0.999)


@dataclass
class CeilingSamples:
    """The hit matrix and contexts of the evaluated events, in log order."""

    hits: list[HitMatrix] = field(default_factory=list)
    contexts: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, candidate_hits: HitMatrix, context: tuple[float, ...]) -> None:
        self.hits.append(candidate_hits)
        self.contexts.append(context)

    def report(self, tuned: int) -> dict[str, float]:
        """HR of the tuned candidate (index `tuned`), the oracles and follow-the-leader, by name."""
        if not self.hits:
            return {}
        hits, contexts = np.stack(self.hits), np.asarray(self.contexts, dtype=np.float64)
        result = {"static tuned": float(hits[:, tuned].mean()), "static oracle": static_oracle(hits)}
        for column, (name, edges) in enumerate(CONTEXT_BUCKETS.items()):
            result[f"oracle per {name}"] = context_oracle(hits, np.digitize(contexts[:, column], edges))
        for discount in DISCOUNTS:
            result[f"follow the leader (discount {discount})"] = follow_the_leader(hits, tuned, discount)
        return result


def static_oracle(hits: HitMatrix) -> float:
    """The hit rate of the candidate best over all events."""
    return float(hits.mean(axis=0).max())


def context_oracle(hits: HitMatrix, buckets: npt.NDArray[np.int64]) -> float:
    """The hit rate when each bucket uses the candidate best within it."""
    best = sum(int(hits[buckets == bucket].sum(axis=0).max()) for bucket in np.unique(buckets))
    return best / len(hits)


def follow_the_leader(hits: HitMatrix, start: int, discount: float) -> float:
    """Each event is ranked by the candidate with the most discounted hits before it (ties: the lowest index);
    candidate `start` leads until another has more hits."""
    totals = np.zeros(hits.shape[1])
    totals[start] = 0.5
    chosen = 0
    for row in hits:
        chosen += int(row[int(totals.argmax())])
        totals = discount * totals + row
    return chosen / len(hits)


def format_ceiling(report: dict[str, float], dynamic: float) -> str:
    """The ceiling as lines next to the dynamic model's hit rate."""
    lines = ["what weights alone could reach on the evaluation part (same factor scores, HR):"]
    lines += [f"  {name:58s} {value:.4f}" for name, value in report.items()]
    lines.append(f"  {'dynamic (driftrec)':58s} {dynamic:.4f}")
    return "\n".join(lines)
