"""Tuning one global weight vector for the static fusion baseline, on the first part of a log only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

RANDOM_CANDIDATES = 300
REFINEMENT_FACTORS = (0.0, 0.5, 0.7, 1.4, 2.0)
"""Coordinate refinement: each weight multiplied by each of these in turn, kept when the hit rate rises."""
CHUNK_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class RankingSamples:
    """Judged rankings, flat: sample s's candidates are `offsets[s] : offsets[s+1]` (calibrated scores, the query
    factor's already scaled by the search's presence), `targets[s]` the acted-on candidate's index within them
    (−1: not a candidate)."""

    calibrated: npt.NDArray[np.float32]
    offsets: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    _contests: dict[int, tuple[npt.NDArray[np.int64], torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, samples: Sequence[tuple[npt.NDArray[np.float32], int]]) -> RankingSamples:
        lengths = np.array([len(z) for z, _ in samples], np.int64)
        return cls(np.concatenate([z for z, _ in samples]) if samples else np.zeros((0, 0), np.float32),
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   np.array([t for _, t in samples], np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def hits(self, weights: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.bool_]:
        """samples × candidates (rows of `weights`, each ≥ 0): whether each fusion ranks the target in the top k
        (ties count half)."""
        rows = torch.from_numpy(np.atleast_2d(weights)).float()
        result = np.zeros((len(self), len(rows)), bool)
        if k not in self._contests:
            self._contests[k] = self._contested(k)
        contested, differences, present, beaten = self._contests[k]
        if not len(contested):
            return result
        width = differences.shape[2]
        chunk = max(1, CHUNK_ELEMENTS // max(len(contested) * width, 1))
        for start in range(0, len(rows), chunk):
            fused = rows[start : start + chunk] @ differences  # samples × candidates × width, minus target's
            above = (fused > 0).sum(dim=2, dtype=torch.int32)
            ties = (fused == 0).logical_and_(present).sum(dim=2, dtype=torch.int32)
            result[contested, start : start + chunk] = (torch.floor(beaten + above + 0.5 * ties) < k).numpy()
        return result

    def _contested(self, k: int) -> tuple[npt.NDArray[np.int64], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The samples some weights may rank the target in the top k of (target a candidate, fewer than k
        candidates ahead of it on every factor), with each one's candidates minus the target's scores, padded
        (samples × factors × widest), the places that are candidates that some weights put ahead, and how many
        candidates are ahead for all weights (ties on every factor counting half)."""
        rows, kept_differences, beaten = [], [], []
        for s in np.flatnonzero(self.targets >= 0).tolist():
            scores = self.calibrated[self.offsets[s] : self.offsets[s + 1]]
            difference = np.delete(scores - scores[self.targets[s]], self.targets[s], axis=0)
            ahead = (difference >= 0).all(axis=1)
            tied = (difference == 0).all(axis=1)
            always = float(ahead.sum() - 0.5 * tied.sum())
            if always >= k:
                continue
            rows.append(s)
            kept_differences.append(difference[~ahead & ~(difference <= 0).all(axis=1)])
            beaten.append(always)
        width = max((len(d) for d in kept_differences), default=0)
        padded = np.full((len(rows), max(width, 1), self.calibrated.shape[1]), -1.0, np.float32)  # never ahead
        present = np.zeros((len(rows), max(width, 1), 1), bool)
        for n, difference in enumerate(kept_differences):
            padded[n, : len(difference)] = difference
            present[n, : len(difference)] = True
        return (np.asarray(rows, np.int64), torch.from_numpy(padded).transpose(1, 2).contiguous(),
                torch.from_numpy(present).transpose(1, 2).contiguous(), torch.tensor(beaten).unsqueeze(1))


def candidate_weights(n_factors: int, n_random: int, seed: int) -> npt.NDArray[np.float64]:
    """One-hot vectors, the uniform vector and Dirichlet(0.5) samples, one per row."""
    random = np.random.default_rng(seed).dirichlet(np.full(n_factors, 0.5), size=n_random)
    return np.concatenate([np.eye(n_factors), np.full((1, n_factors), 1.0 / n_factors), random])


def tune_static(samples: RankingSamples, k: int, n_factors: int, seed: int) -> tuple[npt.NDArray[np.float64], float]:
    """The weights (summing to 1) with the best HR@k on the samples: the best of the candidates, then refined one
    coordinate at a time; with its HR@k."""
    candidates = candidate_weights(n_factors, RANDOM_CANDIDATES, seed)
    if not len(samples):
        return candidates[n_factors], 0.0
    live = np.abs(samples.calibrated).max(axis=0) > 0  # a factor constant in every sample ranks nothing
    candidates = candidates * live
    candidates = candidates[candidates.sum(axis=1) > 0]
    rates = samples.hits(candidates, k).mean(axis=0)
    best, rate = candidates[int(rates.argmax())], float(rates.max())
    for _ in range(2):
        for factor in range(n_factors):
            trials = np.repeat(best[None], len(REFINEMENT_FACTORS), axis=0)
            trials[:, factor] *= REFINEMENT_FACTORS
            trials = trials[trials.sum(axis=1) > 0]
            trial_rates = samples.hits(trials, k).mean(axis=0)
            if trial_rates.max() > rate:
                best, rate = trials[int(trial_rates.argmax())], float(trial_rates.max())
    return best / best.sum(), rate
