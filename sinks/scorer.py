"""Scores the whole catalogue by every factor for a batch of users, fuses with their weights, takes the top-k."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from sinks.candidate_index import CandidateIndex
from sinks.catalogue import Catalogue
from sinks.covisitation import AnchorRows, CoVisitation, SparseScores
from sinks.decayed_counts import PopularityCounts
from sinks.reasons import reasons_for
from sinks.recommendation import RecommendedItem, UserRecommendation
from weighting.config import DAY_MS
from weighting.factors import FACTORS, Factor
from weighting.weight_update import Anchor, WeightUpdate

Floating = TypeVar("Floating", bound=np.floating[Any])

STD_FLOOR = 1e-6
"""A factor whose scores vary less than this over the catalogue is constant: it contributes 0 everywhere."""

REASON_ANCHORS = 10
"""A recommended item's reason names the most similar of the user's first this many anchors (newest first)."""

Z_CHUNK_ELEMENTS = 1 << 24
"""The feedback step z-scores at most this many (case, factor, item) content entries at once, and the candidate
ranking gathers at most this many (user, candidate, dimension) vector entries at once."""


def standardise(scores: npt.NDArray[Floating]) -> npt.NDArray[Floating]:
    """z-scores each factor row over the catalogue (last axis), so that factors share one scale; constant rows
    become 0. In numpy: for a few rows at a time, torch's per-call overhead outweighs the work."""
    mean = scores.mean(axis=-1, keepdims=True)
    std = scores.std(axis=-1, ddof=1, keepdims=True) if scores.shape[-1] > 1 else np.zeros_like(mean)
    return np.where(std > STD_FLOOR, (scores - mean) / np.maximum(std, STD_FLOOR), 0.0).astype(scores.dtype)


def spread(scores: npt.NDArray[np.float64]) -> float:
    """The unbiased std of a row of scores (0 for fewer than two), in two passes and no temporary arrays."""
    n = len(scores)
    if n < 2:
        return 0.0
    mean = float(scores.sum()) / n
    return math.sqrt(max(float(scores @ scores) - n * mean * mean, 0.0) / (n - 1))


def z_scale(std: torch.Tensor) -> torch.Tensor:
    """1/std, or 0 for a constant factor."""
    return torch.where(std > STD_FLOOR, 1.0 / std.clamp_min(STD_FLOOR), torch.zeros_like(std))


def content_spread(profiles: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """The std over the catalogue of each profile's content scores, sqrt(u C u) (users × 3 profiles)."""
    return ((profiles @ cov) * profiles).sum(dim=2).clamp_min(0).sqrt()


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


@dataclass(frozen=True)
class TopK:
    """users × k scores and rows (−inf where fewer than k items were unseen), users × factors × k contributions."""

    scores: npt.NDArray[np.float32]
    rows: npt.NDArray[np.int64]
    contributions: npt.NDArray[np.float32]


class ContentScores(NamedTuple):
    """One case's content factors for the feedback step: the factors whose profile is not zero, their raw scores
    over the catalogue (factors × items) and every content factor's z-scale (1/std; 0 for a zero profile)."""

    factors: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    scale: npt.NDArray[np.float32]


class CatalogueScorer:
    """Holds the shared, non-personal signals (catalogue, popularity, co-visitation) and ranks for users."""

    def __init__(
        self,
        catalogue: Catalogue,
        popularity: PopularityCounts,
        covisitation: CoVisitation,
        freshness_half_life_ms: float = 14 * DAY_MS,
        candidates: int = 0,
    ) -> None:
        """`candidates` > 0 ranks approximately, on that many candidates per source and user (see `top_k`)."""
        self.catalogue = catalogue
        self.popularity = popularity
        self.covisitation = covisitation
        self.freshness_half_life_ms = freshness_half_life_ms
        self.candidates = candidates
        self.index = CandidateIndex(catalogue) if candidates else None
        self._freshness_cache: tuple[npt.NDArray[np.int64], int, npt.NDArray[np.float64], float] | None = None

    def _rows(self, item_ids: Collection[str]) -> npt.NDArray[np.int64]:
        """The rows of the ids still in the catalogue, in order."""
        rows = self.catalogue.rows_of(item_ids, len(item_ids))
        return rows[rows >= 0]

    def _grouped_rows(
        self, groups: Sequence[Sized], item_ids: Iterable[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """For the ids of `groups`, given group after group: the group and the row of each id still in the
        catalogue, and which ids are."""
        lengths = np.fromiter(map(len, groups), np.int64, len(groups))
        rows = self.catalogue.rows_of(item_ids, int(lengths.sum()))
        known = rows >= 0
        return np.repeat(np.arange(len(lengths)), lengths)[known], rows[known], known

    def constant_shared(self) -> tuple[Factor, ...]:
        """The shared factors that give every item the same score now: popularity before any interaction,
        freshness while every item entered the catalogue at the same time (an undated catalogue)."""
        return ((Factor.POPULARITY,) if not len(self.popularity.counts) else ()) + (
            (Factor.FRESHNESS,) if self.catalogue.undated() else ())

    def shared_scores(self, now: int) -> npt.NDArray[np.float64]:
        """The raw popularity and freshness scores (2 × items): the same for every user."""
        scores = np.empty((2, len(self.catalogue)))
        self._write_shared_scores(now, scores)
        return scores

    def _write_shared_scores(self, now: int, out: npt.NDArray[np.float64]) -> float:
        """Writes the raw popularity and freshness scores into `out` (2 × items); returns freshness's std."""
        self.popularity.write_scores(out[0])
        return self._freshness(now, out[1])

    def _freshness(self, now: int, out: npt.NDArray[np.float64]) -> float:
        """Writes exp(−age / half-life) per item into `out`; returns the unbiased std of those scores. Once `now` is
        past every item's entry, that is the scores as of the newest entry (cached until the catalogue changes,
        with their std) times one decay factor: a multiplication instead of an exp."""
        first_seen = self.catalogue.first_seen()
        rate = math.log(2) / self.freshness_half_life_ms
        if self._freshness_cache is None or self._freshness_cache[0] is not first_seen:
            newest = int(first_seen.max()) if len(first_seen) else 0
            scores = np.exp(-(newest - first_seen).astype(np.float64) * rate)
            self._freshness_cache = first_seen, newest, scores, spread(scores)
        _, newest, scores, std = self._freshness_cache
        if now >= newest:
            decay = math.exp(-(now - newest) * rate)
            np.multiply(scores, decay, out=out)
            return std * decay
        np.exp(-np.maximum(now - first_seen, 0).astype(np.float64) * rate, out=out)
        return spread(out)

    def _anchor_rows(self, anchor_lists: Sequence[Sequence[Anchor]]) -> AnchorRows:
        """Each list's anchors still in the catalogue (one list per user), flat."""
        anchors = list(chain.from_iterable(anchor_lists))
        users, rows, known = self._grouped_rows(anchor_lists, map(attrgetter("item_id"), anchors))
        weights = np.fromiter(map(attrgetter("weight"), anchors), np.float64, len(anchors))
        return AnchorRows(users, rows, weights[known])

    def covisit_scores(self, updates: Sequence[WeightUpdate]) -> SparseScores:
        return self.covisitation.batch_scores(self._anchor_rows([u.anchors for u in updates]), len(self.catalogue))

    def factor_scores(self, updates: Sequence[WeightUpdate]) -> torch.Tensor:
        """A dense (users × factors × items) tensor of factor scores, each z-scored over the catalogue.

        The reference form, used to learn and to evaluate several fusions at once; `rank` gets the same fused
        scores without materialising it.
        """
        catalogue = self.catalogue
        device = catalogue.device
        content = _profiles(updates).to(device) @ catalogue.matrix.T
        shared = self.shared_scores(max(u.ts for u in updates))
        rest = torch.cat(
            [
                torch.from_numpy(self.covisit_scores(updates).dense(len(updates))).float().unsqueeze(1),
                torch.from_numpy(shared).float().unsqueeze(0).expand(len(updates), -1, -1),
            ],
            dim=1,
        ).to(device)
        return torch.from_numpy(standardise(torch.cat([content, rest], dim=1).cpu().numpy())).to(device)

    def seen_mask(self, updates: Sequence[WeightUpdate]) -> torch.Tensor:
        mask = torch.zeros((len(updates), len(self.catalogue)), dtype=torch.bool)
        mask[self._seen_indices(updates)] = True
        return mask.to(self.catalogue.device)

    def content_scores(self, profiles: npt.NDArray[np.float32]) -> Iterator[ContentScores]:
        """For each case's short-term, long-term and query profiles (cases × 3 × dim), the content factors' raw scores
        over the catalogue and their z-scales, one case at a time.

        One matrix product per chunk of cases, so a batch of events pays one pass over the catalogue; a zero profile
        (a user who never searched has no query) is a constant factor and is left out of the product.
        """
        catalogue = self.catalogue
        _, cov = catalogue.moments
        chunk = max(1, Z_CHUNK_ELEMENTS // max(3 * len(catalogue), 1))
        for start in range(0, len(profiles), chunk):
            block = torch.from_numpy(profiles[start : start + chunk]).to(catalogue.device)
            scales = z_scale(content_spread(block, cov)).cpu().numpy()
            live = scales > 0
            rows = torch.from_numpy(live.ravel()).to(catalogue.device)
            product = (block.flatten(0, 1)[rows] @ catalogue.matrix.T).cpu().numpy()
            ends = np.cumsum(live.sum(axis=1))
            for scale, case_live, end in zip(scales, live, ends, strict=True):
                factors = np.flatnonzero(case_live)
                yield ContentScores(factors, product[end - len(factors) : end], scale)

    def signal_scores(
        self, anchors: Sequence[Anchor], now: int, out: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Writes co-visitation (from the user's anchors), popularity and freshness now into `out` (3 × items, raw
        scores) and returns their z-scales (see `content_scores`)."""
        covisit = self.covisitation.batch_scores(self._anchor_rows([anchors]), len(self.catalogue))
        out[0] = 0.0
        out[0, covisit.rows] = covisit.values
        fresh_std = self._write_shared_scores(now, out[1:])
        std = np.array([covisit.moments(1)[1][0], spread(out[1]), fresh_std])
        return np.where(std > STD_FLOOR, 1.0 / np.maximum(std, STD_FLOOR), 0.0)

    def seen_rows(self, seen: Collection[str]) -> npt.NDArray[np.int64]:
        return self._rows(seen)

    def rank(self, updates: Sequence[WeightUpdate], k: int) -> list[UserRecommendation]:
        """The top-k unseen items for each user, with contributions and reasons (the batch's roundings, top factors
        and nearest anchors computed at once)."""
        if not updates or not len(self.catalogue):
            return []
        top = self.top_k(updates, k)
        anchors = [[a for a in u.anchors if a.item_id in self.catalogue][:REASON_ANCHORS] for u in updates]
        nearest = self._nearest_anchors(top.rows, anchors)
        top_factors = top.contributions.argmax(axis=1).tolist()
        contributions = np.round(top.contributions.astype(np.float64), 6).transpose(0, 2, 1).tolist()
        scores = np.round(top.scores.astype(np.float64), 6).tolist()
        finite = np.isfinite(top.scores)
        return [
            self._recommendation(
                update, finite=finite[b], rows=top.rows[b].tolist(), scores=scores[b], contributions=contributions[b],
                reasons=reasons_for(top_factors[b], nearest[b].tolist(), anchors[b], self.catalogue),
            )
            for b, update in enumerate(updates)
        ]

    def _nearest_anchors(
        self, rows: npt.NDArray[np.int64], anchors: Sequence[Sequence[Anchor]]
    ) -> npt.NDArray[np.int64]:
        """For each user's top rows (users × k), the index of the user's anchor whose vector is most similar
        (the first on a tie; 0 for a user without anchors)."""
        width = max(map(len, anchors), default=0)
        if not width:
            return np.zeros(rows.shape, np.int64)
        padded = np.full((len(anchors), width), -1, np.int64)
        users, anchor_rows, _ = self._grouped_rows(anchors, (a.item_id for group in anchors for a in group))
        padded[users, np.arange(len(users)) - np.searchsorted(users, users)] = anchor_rows
        vectors = self.catalogue.vectors
        similarity = vectors[rows] @ vectors[np.maximum(padded, 0)].transpose(0, 2, 1)
        similarity[np.broadcast_to((padded < 0)[:, None, :], similarity.shape)] = -np.inf
        return similarity.argmax(axis=2)

    def top_k(self, updates: Sequence[WeightUpdate], k: int) -> TopK:
        """Each user's k best unseen rows by fused score, with the per-factor contributions at those rows.

        Computes `weights · standardise(factor_scores)` with one matrix product: a z-scored content factor is
        `(M u - mean·u) / sqrt(u C u)` (catalogue mean and covariance), so the three content factors fold into one
        user vector; popularity and freshness are two extra rows shared by all users; co-visitation is sparse and is
        added where it is nonzero. The per-user constants are added to the top-k scores only.
        """
        catalogue = self.catalogue
        n_items = len(catalogue)
        device = catalogue.device
        mean, cov = catalogue.moments
        profiles = _profiles(updates).to(device)
        weights = torch.from_numpy(np.stack([u.weights for u in updates])).float().to(device)
        content_mean = profiles @ mean
        content_scale = z_scale(content_spread(profiles, cov))
        user_vectors = torch.einsum("bf,bfd->bd", weights[:, :3] * content_scale, profiles)
        offset = -(weights[:, :3] * content_scale * content_mean).sum(dim=1)

        shared = torch.from_numpy(self.shared_scores(max(u.ts for u in updates))).float()
        shared_mean, shared_scale = shared.mean(dim=1), z_scale(shared.std(dim=1))
        shared_z = ((shared - shared_mean[:, None]) * shared_scale[:, None]).to(device)

        covisit = self.covisit_scores(updates)
        covisit_mean, covisit_std = (torch.from_numpy(x).float().to(device) for x in covisit.moments(len(updates)))
        covisit_weight = weights[:, 3] * z_scale(covisit_std)
        if self.index is not None and n_items > self.candidates:
            top_scores, top_rows = self._candidate_top_k(
                updates, k, user_vectors=user_vectors, weights=weights, shared_z=shared_z, covisit=covisit,
                covisit_weight=covisit_weight,
            )
        else:
            fused = (user_vectors @ catalogue.matrix.T).addmm_(weights[:, 4:], shared_z)
            users = torch.from_numpy(covisit.users).to(device)
            values = torch.from_numpy(covisit.values).float().to(device) * covisit_weight[users]
            fused.view(-1).index_add_(0, torch.from_numpy(covisit.users * n_items + covisit.rows).to(device), values)
            seen_users, seen_rows = self._seen_indices(updates)
            fused.index_put_((seen_users.to(device), seen_rows.to(device)), torch.tensor(-math.inf, device=device))
            top_scores, top_rows = fused.topk(min(k, n_items), dim=1)
        covisit_part = torch.from_numpy(covisit.at(top_rows.cpu().numpy())).float().to(device)
        covisit_part = (covisit_part - covisit_mean[:, None]) * covisit_weight[:, None]
        offset -= covisit_weight * covisit_mean
        top_scores += offset[:, None]

        top_vectors = catalogue.matrix[top_rows]  # users × k × dim
        content_z = (torch.einsum("bkd,bfd->bfk", top_vectors, profiles) - content_mean[:, :, None]) \
            * content_scale[:, :, None]
        shared_part = weights[:, 4:, None] * shared_z[:, top_rows].permute(1, 0, 2)
        contributions = torch.cat([weights[:, :3, None] * content_z, covisit_part.unsqueeze(1), shared_part], dim=1)
        return TopK(top_scores.cpu().numpy(), top_rows.cpu().numpy(), contributions.cpu().numpy())

    def _candidate_top_k(
        self,
        updates: Sequence[WeightUpdate],
        k: int,
        *,
        user_vectors: torch.Tensor,
        weights: torch.Tensor,
        shared_z: torch.Tensor,
        covisit: SparseScores,
        covisit_weight: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused top-k among candidates: each user's `candidates` nearest items to their fused content vector
        (the ANN index), their strongest co-visited items, and the most popular and the freshest items.

        Exact on the candidates; an item outside them is missed (the scorer benchmark reports recall@k)."""
        count = self.candidates
        device = self.catalogue.device
        matrix = self.catalogue.matrix
        n_items = len(self.catalogue)
        shared_rows = shared_z.topk(min(count, n_items), dim=1).indices.flatten()
        covisit_rows = covisit.strongest(len(updates), count)
        chunk = max(1, Z_CHUNK_ELEMENTS // (count * self.catalogue.dim))
        covisit_content = torch.cat([
            torch.einsum("bd,bmd->bm", user_vectors[start : start + chunk],
                         matrix[torch.from_numpy(np.maximum(covisit_rows[start : start + chunk], 0)).to(device)])
            for start in range(0, len(updates), chunk)
        ])
        ann_content, ann_rows = self.index.search(user_vectors.cpu().numpy(), count)  # type: ignore[union-attr]
        rows = np.concatenate([ann_rows, covisit_rows, np.broadcast_to(shared_rows.cpu().numpy(),
                                                                       (len(updates), len(shared_rows)))], axis=1)
        content = torch.cat([torch.from_numpy(ann_content).to(device), covisit_content,
                             user_vectors @ matrix[shared_rows].T], dim=1)
        order = np.argsort(rows, axis=1, kind="stable")
        rows = np.take_along_axis(rows, order, axis=1)
        content = content.gather(1, torch.from_numpy(order).to(device))
        duplicate = np.zeros(rows.shape, dtype=bool)
        duplicate[:, 1:] = rows[:, 1:] == rows[:, :-1]
        seen_users, seen_rows = (x.numpy() for x in self._seen_indices(updates))
        keys = np.arange(len(updates))[:, None] * n_items + rows
        excluded = (rows < 0) | duplicate | np.isin(keys, seen_users * n_items + seen_rows)
        real_rows = np.maximum(rows, 0)  # padding −1 → row 0, excluded above
        safe = torch.from_numpy(real_rows).to(device)
        scores = content + torch.einsum("bf,fbm->bm", weights[:, 4:], shared_z[:, safe])
        scores += torch.from_numpy(covisit.at(real_rows)).float().to(device) * covisit_weight[:, None]
        scores.masked_fill_(torch.from_numpy(excluded).to(device), -math.inf)
        top_scores, top = scores.topk(min(k, scores.shape[1]), dim=1)
        return top_scores, safe.gather(1, top)

    def _seen_indices(self, updates: Sequence[WeightUpdate]) -> tuple[torch.Tensor, torch.Tensor]:
        """(user, row) of every seen item still in the catalogue."""
        seen = [u.seen for u in updates]
        users, rows, _ = self._grouped_rows(seen, chain.from_iterable(seen))
        return torch.from_numpy(users), torch.from_numpy(rows)

    def _recommendation(
        self, update: WeightUpdate, *, finite: npt.NDArray[np.bool_], rows: list[int], scores: list[float],
        contributions: list[list[float]], reasons: list[str],
    ) -> UserRecommendation:
        """One user's list from the batch's top-k (rounded), leaving out the places with no item (-inf)."""
        items = self.catalogue.items
        return UserRecommendation(
            user_id=update.user_id, ts=update.ts, trigger_event_id=update.trigger_event_id,
            weights=update.weights_by_factor(),
            items=tuple(
                RecommendedItem(items[row].item_id, score, dict(zip(FACTORS, item_contributions, strict=True)),
                                reason)
                for row, score, item_contributions, reason, kept in zip(
                    rows, scores, contributions, reasons, finite.tolist(), strict=True
                )
                if kept
            ),
        )


def _profiles(updates: Sequence[WeightUpdate]) -> torch.Tensor:
    """users × 3 × dim: each user's short-term, long-term and query vectors (the content factors' inputs)."""
    vectors = np.stack([vector for u in updates for vector in (u.short_term, u.long_term, u.query)])
    return torch.from_numpy(vectors.reshape(len(updates), 3, -1)).float()
