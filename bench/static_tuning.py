"""Tuning one global weight vector for the static fusion baseline, on the first part of a log only."""

from __future__ import annotations

import numpy as np
import torch

from bench.metrics import ranks_of_target

RANDOM_CANDIDATES = 300


def candidate_weights(n_factors: int, n_random: int, seed: int) -> torch.Tensor:
    """One-hot vectors, the uniform vector and Dirichlet(0.5) samples, one per row."""
    random = np.random.default_rng(seed).dirichlet(np.full(n_factors, 0.5), size=n_random)
    return torch.cat([torch.eye(n_factors), torch.full((1, n_factors), 1.0 / n_factors),
                      torch.from_numpy(random).float()])


def candidate_hits(
    candidates: torch.Tensor, scores: torch.Tensor, seen: torch.Tensor, row: int, k: int
) -> torch.Tensor:
    """For each candidate (a row of weights), whether its fusion of `scores` ranks `row` in the top k unseen."""
    return ranks_of_target(candidates @ scores.float(), seen, row) < k


def best_candidate(
    samples: list[tuple[torch.Tensor, torch.Tensor, int]], k: int, candidates: torch.Tensor
) -> tuple[int, float]:
    """The index of the candidate (a row of weights) with the best HR@k over the samples (factor scores, seen
    mask, target row), and that HR."""
    hits = torch.zeros(len(candidates))
    for scores, seen, row in samples:
        hits += candidate_hits(candidates, scores, seen, row, k).float()
    best = int(hits.argmax())
    return best, float(hits[best] / max(len(samples), 1))
