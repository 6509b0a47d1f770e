"""Scores the whole catalogue by every factor for a batch of users, fuses with their weights, takes the top-k."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from sinks.catalogue import Catalogue
from sinks.covisitation import CoVisitation
from sinks.decayed_counts import PopularityCounts
from sinks.reasons import reasons_for
from sinks.recommendation import RecommendedItem, UserRecommendation
from weighting.factors import FACTORS
from weighting.weight_update import WeightUpdate

DAY_MS = 86_400_000


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """z-scores each factor row over the catalogue, so that factors share one scale; constant rows become 0."""
    mean = scores.mean(dim=-1, keepdim=True)
    std = scores.std(dim=-1, keepdim=True)
    return torch.where(std > 1e-9, (scores - mean) / std.clamp_min(1e-9), torch.zeros_like(scores))


def reciprocal_ranks(scores: torch.Tensor, offset: float = 20.0) -> torch.Tensor:
    """Replaces each factor's scores by offset/(offset + rank), rank = items scoring strictly higher.

    Fusing reciprocal ranks (as in reciprocal-rank fusion) is robust to the very different shapes of the factor
    distributions; tied items share a rank, so a constant factor stays constant.

    >>> reciprocal_ranks(torch.tensor([[[3.0, 1.0, 3.0, 2.0]]]), offset=1.0).tolist()
    [[[1.0, 0.25, 1.0, 0.3333333432674408]]]
    """
    descending = scores.sort(dim=-1, descending=True).values
    ranks = torch.searchsorted(-descending.contiguous(), -scores.contiguous(), right=False)
    return offset / (offset + ranks.to(scores.dtype))


NORMALISATIONS = {"zscore": standardise, "reciprocal_rank": reciprocal_ranks}


def rank_among(scores: torch.Tensor, excluded: torch.Tensor, row: int) -> torch.Tensor:
    """For each row of `scores` (rankings x items), how many candidates score above item `row`, ties counting half.

    Candidates are the items not `excluded`, other than `row` itself.

    >>> scores = torch.tensor([[5.0, 4.0, 3.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    >>> rank_among(scores, torch.tensor([False, False, False, True]), 2).tolist()
    [2.0, 1.0]
    """
    candidates = ~excluded
    candidates[row] = False
    target = scores[:, row : row + 1]
    above = ((scores > target) & candidates).sum(dim=1).double()
    ties = ((scores == target) & candidates).sum(dim=1).double()
    return above + 0.5 * ties


class CatalogueScorer:
    """Holds the shared, non-personal signals (catalogue, popularity, co-visitation) and ranks for users."""

    def __init__(
        self,
        catalogue: Catalogue,
        popularity: PopularityCounts,
        covisitation: CoVisitation,
        freshness_half_life_ms: float = 14 * DAY_MS,
        normalisation: str = "zscore",
    ) -> None:
        self.catalogue = catalogue
        self.popularity = popularity
        self.covisitation = covisitation
        self.freshness_half_life_ms = freshness_half_life_ms
        self.normalise = NORMALISATIONS[normalisation]

    def _rows(self, item_ids: Sequence[str]) -> list[int]:
        return [self.catalogue.index[i] for i in item_ids if i in self.catalogue.index]

    def factor_scores(self, updates: Sequence[WeightUpdate]) -> torch.Tensor:
        """A (users × factors × items) tensor of factor scores, each normalised over the catalogue."""
        catalogue = self.catalogue
        n_items = len(catalogue)
        device = catalogue.device
        profiles = np.stack([np.stack([u.short_term, u.long_term, u.query]) for u in updates])
        content = torch.einsum("nd,bfd->bfn", catalogue.matrix, torch.from_numpy(profiles).to(device))
        covisit = np.stack([
            self.covisitation.scores(self._rows([a.item_id for a in u.anchors if a.item_id in catalogue]),
                                     [a.weight for a in u.anchors if a.item_id in catalogue], n_items)
            for u in updates
        ])
        now = max(u.ts for u in updates)
        age = np.maximum(now - catalogue.first_seen(), 0).astype(np.float64)
        shared = np.stack([self.popularity.scores(n_items), np.exp(-age * math.log(2) / self.freshness_half_life_ms)])
        rest = torch.cat(
            [
                torch.from_numpy(covisit).float().unsqueeze(1),
                torch.from_numpy(shared).float().unsqueeze(0).expand(len(updates), -1, -1),
            ],
            dim=1,
        ).to(device)
        return self.normalise(torch.cat([content, rest], dim=1))

    def seen_mask(self, updates: Sequence[WeightUpdate]) -> torch.Tensor:
        mask = torch.zeros((len(updates), len(self.catalogue)), dtype=torch.bool)
        for b, update in enumerate(updates):
            rows = self._rows(list(update.seen))
            if rows:
                mask[b, rows] = True
        return mask.to(self.catalogue.device)

    def rank_losses(
        self, update: WeightUpdate, item_id: str, scores: torch.Tensor | None = None
    ) -> npt.NDArray[np.float64] | None:
        """Per factor, how far down it ranked `item_id` among the user's unseen items, on a log scale in [0, 1].

        0 means the factor ranked the item first; ties count half. The log scale keeps resolution at the top of
        the list, where a recommendation is won or lost. `scores` are the user's factor scores (factors x items)
        when the caller already has them.
        """
        row = self.catalogue.index.get(item_id)
        if row is None:
            return None
        if scores is None:
            scores = self.factor_scores([update])[0]
        seen = self.seen_mask([update])[0]
        candidates = max(int((~seen).sum()) - int(not seen[row]), 1)
        return (torch.log1p(rank_among(scores, seen, row)) / math.log1p(candidates)).cpu().numpy()

    def rank(self, updates: Sequence[WeightUpdate], k: int) -> list[UserRecommendation]:
        """The top-k unseen items for each user, with contributions and reasons."""
        if not updates or not len(self.catalogue):
            return []
        scores = self.factor_scores(updates)
        weights = torch.from_numpy(np.stack([u.weights for u in updates])).float().to(scores.device)
        fused = torch.einsum("bf,bfn->bn", weights, scores).masked_fill(self.seen_mask(updates), -math.inf)
        top_scores, top_rows = fused.topk(min(k, fused.shape[1]), dim=1)
        contributions = (weights.unsqueeze(2) * scores.gather(2, top_rows.unsqueeze(1).expand(-1, len(FACTORS), -1)))
        return [
            self._recommendation(update, top_scores[b], top_rows[b], contributions[b])
            for b, update in enumerate(updates)
        ]

    def _recommendation(
        self, update: WeightUpdate, scores: torch.Tensor, rows: torch.Tensor, contributions: torch.Tensor
    ) -> UserRecommendation:
        keep = torch.isfinite(scores)
        rows_np = rows[keep].cpu().numpy()
        scores_np = scores[keep].cpu().numpy()
        contrib_np = contributions[:, keep].cpu().numpy()
        anchors = [a for a in update.anchors if a.item_id in self.catalogue][:10]
        anchor_rows = self._rows([a.item_id for a in anchors])
        reasons = reasons_for(
            contrib_np.argmax(axis=0).tolist(),
            self.catalogue.vectors[rows_np],
            anchors,
            self.catalogue.vectors[anchor_rows],
            [self.catalogue.items[r].title for r in anchor_rows],
        )
        items = tuple(
            RecommendedItem(
                item_id=self.catalogue.items[row].item_id,
                score=round(float(score), 6),
                contributions={name: round(float(contrib_np[f, i]), 6) for f, name in enumerate(FACTORS)},
                reason=reason,
            )
            for i, (row, score, reason) in enumerate(zip(rows_np, scores_np, reasons, strict=True))
        )
        return UserRecommendation(
            user_id=update.user_id, ts=update.ts, trigger_event_id=update.trigger_event_id,
            weights=update.weights_by_factor(), items=items,
        )

