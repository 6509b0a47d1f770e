"""Scores a batch of users' candidates by every factor, fuses them with the users' weights, takes the top-k.

For a chunk of users at a time every factor scores the whole catalogue (factors × users × items: text
profiles and the sequence model's user vectors against the item matrices, co-visitation and transitions
added up from the users' anchors' counted neighbours, popularity and freshness shared); each factor lists
its own `depth` best unseen items for each user, leaving out the items removed from the catalogue, and the
candidates are the union of those lists (`sinks.candidates`). Every factor's score at every candidate is
calibrated over the user's candidates (`sinks.calibration`) and fused: score = Σ_f w_f · z_f, which splits into
each factor's contribution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import numpy as np
import numpy.typing as npt
import torch

from sinks.calibration import calibrate
from sinks.candidates import CandidateBatch, FactorLists, IntArray, union_of
from sinks.catalogue import Catalogue
from sinks.covisitation import AnchorRows, CoVisitation, Transitions
from sinks.decayed_counts import PopularityCounts
from sinks.reasons import reasons_for
from sinks.recommendation import RecommendedItem, UserRecommendation
from sinks.sequence_model import SequenceModel
from weighting.config import DAY_MS
from weighting.context import FactorEvidence
from weighting.factors import COUNT_FACTORS, FACTORS, TEXT_FACTORS, Factor
from weighting.seen_items import SeenItems
from weighting.weight_update import Anchor, WeightUpdate

REASON_ANCHORS = 10
"""A recommended item's reason names the most similar of the user's first this many anchors (newest first)."""
TRANSITION_ANCHORS = 5
"""Transitions are scored from the user's newest this many anchors ..."""
TRANSITION_RECENCY = 0.6
"""... each weighted this to the power of its age (0 for the newest)."""
SCORE_CHUNK_ELEMENTS = 1 << 22
"""At most this many (factor, user, item) scores are held at once when listing the personal factors' top items."""
PERSONAL_FACTORS = (Factor.SHORT_TERM, Factor.LONG_TERM, Factor.QUERY, Factor.COVISIT, Factor.TRANSITION,
                    Factor.SEQUENCE)
"""The factors each user scores differently, first in the factor order; popularity and freshness follow."""


@dataclass(frozen=True)
class TopK:
    """users × k scores and rows (−inf and row 0 where fewer than k items were unseen), users × factors × k
    contributions."""

    scores: npt.NDArray[np.float32]
    rows: npt.NDArray[np.int64]
    contributions: npt.NDArray[np.float32]


@dataclass(frozen=True)
class RankingInputs:
    """What ranking needs of each user of a batch, as arrays: text profiles (users × 3 × dim), the sequence model's
    user vectors, anchors, seen rows (flat, by user) and the time."""

    profiles: npt.NDArray[np.float32]
    sequence: npt.NDArray[np.float32]
    anchors: Sequence[Sequence[Anchor]]
    seen_users: IntArray
    seen_rows: IntArray
    now: int

    def __len__(self) -> int:
        return len(self.profiles)


class CatalogueScorer:
    """Holds the shared, non-personal signals (catalogue, counts, the sequence model) and ranks for users."""

    def __init__(
        self,
        catalogue: Catalogue,
        popularity: PopularityCounts,
        covisitation: CoVisitation,
        transitions: Transitions,
        sequence: SequenceModel,
        *,
        depth: int = 100,
        freshness_half_life_ms: float = 14 * DAY_MS,
        exclude_seen: bool = True,
    ) -> None:
        """`depth` items per factor's list; `exclude_seen`: leave what a user acted on out of their candidates."""
        self.catalogue = catalogue
        self.popularity = popularity
        self.covisitation = covisitation
        self.transitions = transitions
        self.sequence = sequence
        self.depth = depth
        self.freshness_half_life_ms = freshness_half_life_ms
        self.exclude_seen = exclude_seen

    def constant_shared(self) -> tuple[Factor, ...]:
        """The shared factors that give every item the same score now: popularity before any interaction,
        freshness while every item entered the catalogue at the same time (an undated catalogue)."""
        return ((Factor.POPULARITY,) if not self.popularity.counts.any() else ()) + (
            (Factor.FRESHNESS,) if self.catalogue.undated() else ())

    def evidence(self, anchors: Sequence[Anchor]) -> FactorEvidence:
        """How much the co-visitation and transition counts know about these anchors (newest first)."""
        rows = self._rows(a.item_id for a in anchors)
        if not len(rows):
            return FactorEvidence()
        return FactorEvidence(float(self.covisitation.counts.row_totals(rows).sum()),
                              float(self.transitions.counts.row_totals(rows[:1]).sum()))

    def _rows(self, item_ids: Iterable[str]) -> IntArray:
        ids = list(item_ids)
        rows = self.catalogue.rows_of(ids, len(ids))
        return rows[rows >= 0]

    def grouped_rows(self, groups: Sequence[Sized], item_ids: Iterable[str]) -> tuple[IntArray, IntArray,
                                                                                         npt.NDArray[np.bool_]]:
        """For the ids of `groups`, given group after group: the group and the row of each id still in the
        catalogue, and which ids are."""
        lengths = np.fromiter(map(len, groups), np.int64, len(groups))
        rows = self.catalogue.rows_of(item_ids, int(lengths.sum()))
        known = rows >= 0
        return np.repeat(np.arange(len(lengths)), lengths)[known], rows[known], known

    def excluded_rows(self, seen: Sequence[SeenItems]) -> tuple[IntArray, IntArray]:
        """For users' seen items: each user's rows not to recommend (user, row): the rows of the recent ids and of
        the ids the filters hold; none when the catalogue allows repeats (`exclude_seen` off)."""
        if not self.exclude_seen:
            empty = np.zeros(0, np.int64)
            return empty, empty
        recent = [items.recent for items in seen]
        users, rows, _ = self.grouped_rows(recent, chain.from_iterable(recent))
        parts = [(users, rows)]
        for user, items in enumerate(seen):
            if items.filters:
                held = np.flatnonzero(items.held(self.catalogue.filter_positions()))
                parts.append((np.full(len(held), user, np.int64), held))
        return np.concatenate([u for u, _ in parts]), np.concatenate([r for _, r in parts])

    def inputs_of(self, updates: Sequence[WeightUpdate]) -> RankingInputs:
        seen_users, seen_rows = self.excluded_rows([u.seen for u in updates])
        profiles = np.stack([np.stack([u.short_term, u.long_term, u.query]) for u in updates]).astype(np.float32)
        return RankingInputs(profiles, np.stack([u.sequence for u in updates]).astype(np.float32),
                             [u.anchors for u in updates], seen_users, seen_rows, max(u.ts for u in updates))

    def anchor_rows(self, anchor_lists: Sequence[Sequence[Anchor]]) -> tuple[AnchorRows, AnchorRows]:
        """Each user's anchors still in the catalogue, flat: weighted for co-visitation, and the newest few
        weighted by recency for transitions."""
        anchors = list(chain.from_iterable(anchor_lists))
        users, rows, known = self.grouped_rows(anchor_lists, map(attrgetter("item_id"), anchors))
        weights = np.fromiter(map(attrgetter("weight"), anchors), np.float64, len(anchors))[known]
        age = np.arange(len(users)) - np.searchsorted(users, users)
        newest = age < TRANSITION_ANCHORS
        covisit = AnchorRows(users, rows, weights)
        return covisit, AnchorRows(users[newest], rows[newest], TRANSITION_RECENCY ** age[newest].astype(np.float64))

    def freshness(self, now: int) -> npt.NDArray[np.float64]:
        """exp(−age / half-life) of every item at `now` (an item not yet entered counts as new)."""
        first_seen = self.catalogue.first_seen()
        return np.exp(-np.maximum(now - first_seen, 0).astype(np.float64) * math.log(2) / self.freshness_half_life_ms)

    def catalogue_scores(self, inputs: RankingInputs) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """Personal factors × users × items raw scores, a chunk of users at a time, with the chunk's users and
        which of their factors vary over the items (factors × users; a zero text profile does not). The
        pair factors' contributions are summed in float64."""
        n_items = len(self.catalogue)
        device = self.catalogue.device
        covisit_anchors, transition_anchors = self.anchor_rows(inputs.anchors)
        chunk = max(1, SCORE_CHUNK_ELEMENTS // max(len(PERSONAL_FACTORS) * n_items, 1))
        for start in range(0, len(inputs), chunk):
            users = slice(start, min(start + chunk, len(inputs)))
            count = users.stop - users.start
            scores = torch.empty((len(PERSONAL_FACTORS), count, n_items), device=device)
            self._text_scores(inputs.profiles[users], scores[: len(TEXT_FACTORS)])
            self.sequence.scores(inputs.sequence[users], out=scores[Factor.SEQUENCE])
            sums = torch.zeros(2 * count * n_items, dtype=torch.float64, device=device)
            for offset, (counts, anchors) in enumerate(((self.covisitation, covisit_anchors),
                                                        (self.transitions, transition_anchors))):
                mine = (anchors.users >= users.start) & (anchors.users < users.stop)
                part = AnchorRows(anchors.users[mine] - users.start, anchors.rows[mine], anchors.weights[mine])
                user, column, value = counts.entries(part, n_items)
                place = (offset * count + user) * n_items + column
                sums.index_add_(0, torch.from_numpy(place).to(device), torch.from_numpy(value).to(device))
            scores[Factor.COVISIT : Factor.TRANSITION + 1].view(-1).copy_(sums)
            yield users, scores, scores.amax(dim=2) > scores.amin(dim=2)

    def _text_scores(self, profiles: npt.NDArray[np.float32], out: torch.Tensor) -> None:
        """Writes the text factors × users × items products of users × text factors × dim `profiles` with the
        catalogue into `out`; a zero profile (no item or no search yet) is not multiplied: it scores 0 everywhere."""
        rows = np.ascontiguousarray(profiles.transpose(1, 0, 2)).reshape(-1, profiles.shape[2])
        flat, device = out.view(len(rows), -1), self.catalogue.device
        nonzero = np.flatnonzero(rows.any(axis=1))
        if len(nonzero) == len(rows):
            torch.matmul(torch.from_numpy(rows).to(device), self.catalogue.matrix.T, out=flat)
            return
        flat.zero_()
        if len(nonzero):
            flat[torch.from_numpy(nonzero).to(device)] = torch.from_numpy(rows[nonzero]).to(device) @ \
                self.catalogue.matrix.T

    def shared_scores(self, now: int) -> npt.NDArray[np.float64]:
        """Popularity and freshness of every item now (2 × items): the same for every user."""
        return np.stack([self.popularity.at(np.arange(len(self.catalogue))), self.freshness(now)])

    def _shared_best(self, shared: npt.NDArray[np.float64], most_seen: int) -> list[tuple[int, IntArray]]:
        """Each varying shared factor's best `depth` + `most_seen` rows not removed, best first (popularity's only
        those acted on); a constant factor lists nothing (popularity before any interaction, freshness over an
        undated catalogue)."""
        listed = np.ones(shared.shape[1], bool)
        listed[self.catalogue.removed_rows()] = False
        lists = []
        for offset, scores in enumerate(shared):
            if not len(scores) or scores.max() == scores.min():
                continue
            factor = len(PERSONAL_FACTORS) + offset
            order = np.argsort(-scores, kind="stable")
            best = order[listed[order]][: self.depth + most_seen]
            lists.append((factor, best[scores[best] > 0] if factor in COUNT_FACTORS else best))
        return lists

    def _shared_lists(self, best_rows: Sequence[tuple[int, IntArray]], count: int, seen_users: IntArray,
                      seen_rows: IntArray) -> FactorLists:
        """The shared factors' best unseen items for each of a chunk's `count` users from their best rows;
        `seen_users` (in the chunk) and `seen_rows` are what each has seen."""
        n_items = len(self.catalogue)
        parts = []
        for factor, best in best_rows:
            place = np.full(n_items, -1, np.int64)
            place[best] = np.arange(len(best))
            unseen = np.ones((count, len(best)), bool)
            hidden = place[seen_rows] >= 0
            unseen[seen_users[hidden], place[seen_rows[hidden]]] = False
            position = np.cumsum(unseen, axis=1) - 1
            listed = unseen & (position < self.depth)
            user, slot = np.nonzero(listed)
            parts.append(FactorLists(user, best[slot], np.full(len(user), factor, np.int64), position[user, slot]))
        return FactorLists.concat(parts)

    def candidates(self, inputs: RankingInputs) -> CandidateBatch:
        """Every user's candidates with each factor's raw and calibrated score (no removed item is one)."""
        n_items = len(self.catalogue)
        depth = min(self.depth, n_items)
        removed = torch.from_numpy(self.catalogue.removed_rows())
        shared = self.shared_scores(inputs.now)
        most_seen = int(np.bincount(inputs.seen_users).max(initial=0)) if len(inputs.seen_users) else 0
        shared_best = self._shared_best(shared, most_seen)
        parts, done = [], 0
        for users, scores, varies in self.catalogue_scores(inputs):
            count = users.stop - users.start
            mine = (inputs.seen_users >= users.start) & (inputs.seen_users < users.stop)
            seen_users, seen_rows = inputs.seen_users[mine] - users.start, inputs.seen_rows[mine]
            scores[:, torch.from_numpy(seen_users), torch.from_numpy(seen_rows)] = -math.inf
            scores[:, :, removed] = -math.inf
            values, rows = varying_top(scores, varies, depth)  # personal factors × users × depth
            usable = torch.isfinite(values) & varies.unsqueeze(2)  # a zero profile lists nothing
            pairs = slice(Factor.COVISIT, Factor.TRANSITION + 1)
            usable[pairs] &= values[pairs] > 0  # co-visitation and transitions list what they counted
            factor, user, position = (x.numpy() for x in torch.nonzero(usable.cpu(), as_tuple=True))
            lists = FactorLists.concat([FactorLists(user, rows.cpu().numpy()[factor, user, position], factor, position),
                                        self._shared_lists(shared_best, count, seen_users, seen_rows)])
            offsets, cand_users, cand_rows, list_position = union_of(lists, count, n_items, depth)
            raw = np.empty((len(cand_rows), len(FACTORS)), np.float32)
            raw[:, : len(PERSONAL_FACTORS)] = scores[:, torch.from_numpy(cand_users),
                                                     torch.from_numpy(cand_rows)].T.cpu().numpy()
            raw[:, len(PERSONAL_FACTORS) :] = shared[:, cand_rows].T
            parts.append((offsets[1:] + done, cand_users + users.start, cand_rows, list_position, raw))
            done += len(cand_rows)
        offsets = np.concatenate([np.zeros(1, np.int64)] + [p[0] for p in parts])
        users_flat, rows_flat, positions, raw = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3, 4))
        return CandidateBatch(offsets.astype(np.int64), users_flat, rows_flat, positions, raw,
                              calibrate(raw, offsets, [int(f) for f in COUNT_FACTORS]))

    def top_k(self, updates: Sequence[WeightUpdate], k: int) -> tuple[TopK, CandidateBatch]:
        """Each user's k best candidates by fused score, with the per-factor contributions."""
        batch = self.candidates(self.inputs_of(updates))
        weights = np.stack([u.weights for u in updates]).astype(np.float32)
        return fused_top_k(batch, weights, k), batch

    def rank(self, updates: Sequence[WeightUpdate], k: int) -> list[UserRecommendation]:
        """The top-k unseen items for each user, with contributions and reasons."""
        if not updates or not len(self.catalogue):
            return []
        top, _ = self.top_k(updates, k)
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

    def _nearest_anchors(self, rows: IntArray, anchors: Sequence[Sequence[Anchor]]) -> IntArray:
        """For each user's top rows (users × k), the index of the user's anchor whose vector is most similar
        (the first on a tie; 0 for a user without anchors)."""
        width = max(map(len, anchors), default=0)
        if not width:
            return np.zeros(rows.shape, np.int64)
        padded = np.full((len(anchors), width), -1, np.int64)
        users, anchor_rows, _ = self.grouped_rows(anchors, (a.item_id for group in anchors for a in group))
        padded[users, np.arange(len(users)) - np.searchsorted(users, users)] = anchor_rows
        vectors = self.catalogue.vectors
        similarity = vectors[rows] @ vectors[np.maximum(padded, 0)].transpose(0, 2, 1)
        similarity[np.broadcast_to((padded < 0)[:, None, :], similarity.shape)] = -np.inf
        return similarity.argmax(axis=2)

    def _recommendation(
        self, update: WeightUpdate, *, finite: npt.NDArray[np.bool_], rows: list[int], scores: list[float],
        contributions: list[list[float]], reasons: list[str],
    ) -> UserRecommendation:
        """One user's list from the batch's top-k (rounded), leaving out the places with no item (-inf)."""
        items = self.catalogue.items
        return UserRecommendation(
            user_id=update.user_id, ts=update.ts, trigger_event_id=update.trigger_event_id,
            weights=update.weights_by_factor(), context=update.context_by_name(),
            experiment=update.experiment, arm=update.arm,
            items=tuple(
                RecommendedItem(items[row].item_id, score, dict(zip(FACTORS, item_contributions, strict=True)),
                                reason)
                for row, score, item_contributions, reason, kept in zip(
                    rows, scores, contributions, reasons, finite.tolist(), strict=True
                )
                if kept
            ),
        )


def varying_top(scores: torch.Tensor, varies: torch.Tensor, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `depth` best values and rows of each (factor, user) score row that varies (factors × users × depth);
    −inf and row 0 for a row that does not (its factor lists nothing for that user)."""
    if bool(varies.all()):
        values, rows = scores.topk(depth, dim=2)
        return values, rows
    factors, users, n_items = scores.shape
    values = torch.full((factors * users, depth), -math.inf, dtype=scores.dtype, device=scores.device)
    rows = torch.zeros((factors * users, depth), dtype=torch.int64, device=scores.device)
    varying = torch.nonzero(varies.reshape(-1)).squeeze(1)
    if len(varying):
        values[varying], rows[varying] = scores.view(-1, n_items)[varying].topk(depth, dim=1)
    return values.view(factors, users, depth), rows.view(factors, users, depth)


def fused_top_k(batch: CandidateBatch, weights: npt.NDArray[np.float32], k: int) -> TopK:
    """The k best candidates of each user by Σ_f w_f · z_f (users × factors `weights`), with contributions."""
    n_users = len(batch)
    contributions = batch.calibrated * weights[batch.users]
    fused = contributions.sum(axis=1)
    order = best_first_by_user(batch.users, fused)
    position = np.arange(len(order)) - batch.offsets[batch.users[order]]
    top = order[position < k]
    slot = position[position < k]
    scores = np.full((n_users, k), -np.inf, np.float32)
    rows = np.zeros((n_users, k), np.int64)
    parts = np.zeros((n_users, len(FACTORS), k), np.float32)
    users = batch.users[top]
    scores[users, slot] = fused[top]
    rows[users, slot] = batch.rows[top]
    parts[users, :, slot] = contributions[top]
    return TopK(scores, rows, parts)


def best_first_by_user(users: IntArray, scores: npt.NDArray[np.float32]) -> IntArray:
    """The order that sorts by user, then by score from the highest, ties in their given order: one stable sort of
    a 64-bit key (the user above the score's bits mapped to an order-reversing unsigned integer).

    >>> best_first_by_user(np.array([0, 0, 1, 1, 1]), np.array([1.0, 2.0, -1.0, 0.0, -0.0], np.float32)).tolist()
    [1, 0, 3, 4, 2]
    """
    bits = (scores.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # + 0.0 makes −0.0 equal to 0.0
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))
    key = (users.astype(np.uint64) << np.uint64(32)) | (~ascending).astype(np.uint64)
    return np.argsort(key, kind="stable")
