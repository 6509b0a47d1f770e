"""Top-k metrics accumulated over a prequential replay, several methods at once."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from sinks.scorer import rank_among


@dataclass
class MethodMetrics:
    """HR@k, NDCG@k, MRR@k and catalogue coverage of one ranking method."""

    k: int
    evaluations: int = 0
    hits: int = 0
    ndcg: float = 0.0
    reciprocal_rank: float = 0.0
    recommended: set[int] = field(default_factory=set)

    def add(self, rank: int, top_rows: list[int]) -> None:
        """`rank` is the 0-based rank of the item the user acted on."""
        self.evaluations += 1
        self.recommended.update(top_rows)
        if rank < self.k:
            self.hits += 1
            self.ndcg += 1.0 / math.log2(rank + 2)
            self.reciprocal_rank += 1.0 / (rank + 1)

    def summary(self, n_items: int) -> dict[str, float]:
        n = max(self.evaluations, 1)
        return {
            f"HR@{self.k}": self.hits / n,
            f"NDCG@{self.k}": self.ndcg / n,
            f"MRR@{self.k}": self.reciprocal_rank / n,
            "coverage": len(self.recommended) / max(n_items, 1),
            "evaluations": self.evaluations,
        }


def ranks_of_target(fused: torch.Tensor, seen: torch.Tensor, row: int) -> torch.Tensor:
    """For each method (rows of `fused`), the target's 0-based rank among the unseen items (ties count half,
    rounded down)."""
    return rank_among(fused, seen, row).floor().long()
