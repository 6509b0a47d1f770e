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


def candidate_hit_rates(
    samples: list[tuple[torch.Tensor, torch.Tensor, int]], k: int, candidates: torch.Tensor
) -> torch.Tensor:
    """Each candidate's (a row of weights) HR@k over the samples (factor scores, seen mask, target row); the
    best is the tuned static fusion, and the one-hot rows are the single factors."""
    hits = torch.zeros(len(candidates))
    for scores, seen, row in samples:
        hits += candidate_hits(candidates, scores, seen, row, k).float()
    return hits / max(len(samples), 1)
