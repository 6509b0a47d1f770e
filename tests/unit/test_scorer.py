import math

import numpy as np
import pytest
import torch

from sinks.calibration import calibrate
from sinks.catalogue import Catalogue, CatalogueItem
from sinks.covisitation import CoVisitation, NeighbourCounts, Transitions
from sinks.decayed_counts import PopularityCounts
from sinks.online_model import Judgement, OnlineModel, UserEvent
from sinks.scorer import TRANSITION_RECENCY, varying_top
from weighting.config import WeightingConfig
from weighting.factors import COUNT_FACTORS, FACTORS, Factor
from weighting.fusion_learning import listwise_gradient
from weighting.user_state import UserState
from weighting.user_update import ProfileEvent
from weighting.weight_update import WeightUpdate, anchors_of

DAY = 86_400_000


def small_catalogue() -> Catalogue:
    vectors = {"a1": [1, 0, 0], "a2": [0.9, 0.1, 0], "a3": [0.8, 0.2, 0], "b1": [0, 1, 0], "b2": [0, 0.9, 0.1]}
    catalogue = Catalogue(3)
    catalogue.upsert(
        [CatalogueItem(i, f"title {i}", (i[0],), 0) for i in vectors],
        {i: np.asarray(v, np.float32) / np.linalg.norm(v) for i, v in vectors.items()},
    )
    return catalogue


def test_forward_decayed_popularity_counts() -> None:
    popularity = PopularityCounts(half_life_ms=DAY)
    popularity.add(0, 1.0, 0)
    popularity.add(1, 1.0, DAY)
    counts = popularity.at(np.array([0, 1, 7]))
    assert counts[1] / counts[0] == pytest.approx(2.0) and counts[2] == 0.0


def test_covisitation_is_the_cosine_of_co_occurrence_over_recent_anchors() -> None:
    covisit = CoVisitation(span=2)
    covisit.add(0, [], 1.0, 0)
    covisit.add(1, [0], 1.0, 0)  # 1 with 0
    covisit.add(2, [0, 1], 1.0, 0)  # 2 with 0 and 1
    covisit.add(3, [9, 8, 2], 2.0, 0)  # only the last 2 previous rows count: 3 with 8 and 2, twice
    # counts: n = [1, 1, 1, 2]; pairs (0,1)=1, (0,2)=1, (1,2)=1, (2,3)=2, (8,3)=2
    scores = covisit.scores([0, 2], [1.0, 0.5], 5)
    expected = [0.5 * 1, 1 + 0.5 * 1, 1.0, 0.5 * 2 / math.sqrt(1 * 2), 0.0]  # anchors score too (they are seen)
    assert scores.tolist() == pytest.approx(expected)


def test_transitions_count_what_follows_an_item_by_gap() -> None:
    transitions = Transitions(span=3, gap_decay=0.5)
    transitions.add(1, [0], 1.0, 0)  # 0 → 1
    transitions.add(2, [0, 1], 1.0, 0)  # 1 → 2 (gap 1), 0 → 2 (gap 2, weight 0.5)
    assert transitions.scores([0], [1.0], 3).tolist() == pytest.approx([0.0, 1 / 1.5, 0.5 / 1.5])
    assert transitions.scores([2], [1.0], 3).tolist() == [0.0, 0.0, 0.0]  # nothing followed 2 yet


def test_neighbour_counts_keep_every_row_through_block_moves_and_repacks() -> None:
    rng = np.random.default_rng(3)
    counts, reference = NeighbourCounts(), {}
    for row, column, weight in zip(rng.integers(0, 60, 5000).tolist(), rng.integers(0, 400, 5000).tolist(),
                                   rng.random(5000).tolist(), strict=True):
        counts.add(row, column, weight)
        reference[(row, column)] = reference.get((row, column), 0.0) + weight
    rows = np.arange(70)  # 60..69 were never added
    weights = np.ones(70)
    anchor, columns, values = counts.gather(rows, weights)
    totals = {row: sum(v for (r, _), v in reference.items() if r == row) for row in range(60)}
    gathered = {(int(a), int(c)): float(v) for a, c, v in zip(anchor, columns, values, strict=True)}
    assert gathered.keys() == reference.keys()
    assert all(gathered[key] == pytest.approx(value / totals[key[0]]) for key, value in reference.items())
    assert counts.used < 4 * len(reference)


def test_model_recommends_unseen_items_near_the_interest_with_reasons() -> None:
    model = OnlineModel(small_catalogue())
    state = model.new_state()
    state = model.learn("u", state, ProfileEvent("e1", "purchase", 1000, "a1"))
    state = model.learn("u", state, ProfileEvent("e2", "view", 2000, "a2"))
    [rec] = model.recommend([model.weight_update("u", state, 2000)], k=3)
    ids = [item.item_id for item in rec.items]
    assert ids[0] == "a3" and "a1" not in ids and "a2" not in ids and len(set(ids)) == 3
    assert rec.items[0].reason.startswith("because you ")
    assert set(rec.items[0].contributions) == set(FACTORS)
    assert sum(rec.items[0].contributions.values()) == pytest.approx(rec.items[0].score, abs=1e-4)
    assert set(rec.context) and rec.weights == model.weight_update("u", state, 2000).weights_by_factor()


def random_stream(n_events: int, seed: int, n_items: int = 300) -> tuple[Catalogue, list[UserEvent]]:
    """A catalogue of random unit vectors (dated) and a stream of views, purchases, skips, ratings and searches."""
    rng = np.random.default_rng(seed)
    dim = 16
    vectors = rng.normal(size=(n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"i{n}" for n in range(n_items)]
    catalogue = Catalogue(dim)
    catalogue.upsert([CatalogueItem(i, i, (f"g{n % 7}",), int(rng.integers(0, 30)) * DAY) for n, i in enumerate(ids)],
                     dict(zip(ids, vectors, strict=True)))
    kinds = ["view", "click", "purchase", "skip", "rating", "search"]
    events = []
    for n in range(n_events):
        kind = kinds[int(rng.integers(0, len(kinds)))]
        item = None if kind == "search" else ids[int(rng.integers(0, 40 if n % 2 else n_items))]
        event = ProfileEvent(f"e{n}", kind, 40 * DAY + n * 90_000, item, float(rng.integers(1, 6)) if kind == "rating"
                             else None)
        query = vectors[int(rng.integers(0, n_items))] if kind == "search" else None
        events.append(UserEvent(f"u{int(rng.integers(0, 9))}", event, query))
    return catalogue, events


def learned_states(model: OnlineModel, events: list[UserEvent], batch: int) -> dict[str, UserState]:
    states: dict[str, UserState] = {}
    for start in range(0, len(events), batch):
        states.update(model.learn_and_fold(states, events[start : start + batch]).states)
    return states


def reference_scores(model: OnlineModel, update: WeightUpdate) -> np.ndarray:
    """factors × items: every factor's raw scores over the catalogue, computed the long way."""
    catalogue = model.catalogue
    vectors, n_items = catalogue.vectors, len(catalogue)
    index = catalogue.index
    anchors = [(index[a.item_id], a.weight) for a in update.anchors if a.item_id in index]
    scores = np.zeros((len(FACTORS), n_items))
    for factor, profile in zip((Factor.SHORT_TERM, Factor.LONG_TERM, Factor.QUERY),
                               (update.short_term, update.long_term, update.query), strict=True):
        scores[factor] = vectors @ profile
    scores[Factor.SEQUENCE] = model.sequence.scores(update.sequence[None])[0].numpy()
    scores[Factor.COVISIT] = model.scorer.covisitation.scores([r for r, _ in anchors], [w for _, w in anchors], n_items)
    newest = anchors[:5]
    scores[Factor.TRANSITION] = model.scorer.transitions.scores(
        [r for r, _ in newest], [TRANSITION_RECENCY**age for age in range(len(newest))], n_items)
    scores[Factor.POPULARITY] = model.scorer.popularity.at(np.arange(n_items))
    ages = np.maximum(update.ts - catalogue.first_seen(), 0)
    scores[Factor.FRESHNESS] = 0.5 ** (ages / model.scorer.freshness_half_life_ms)
    return scores


def test_candidates_are_every_factors_top_unseen_items_and_fused_as_calibrated() -> None:
    catalogue, events = random_stream(1500, seed=7)
    model = OnlineModel(catalogue, WeightingConfig(candidates_per_factor=12, sequence_train_every=64))
    states = learned_states(model, events, 100)
    assert model.sequence.steps > 0
    now = 40 * DAY + 1500 * 90_000
    updates = [model.weight_update(user, state, now) for user, state in sorted(states.items())]
    top, batch = model.scorer.top_k(updates, 10)
    recommendations = model.recommend(updates, 10)
    searched = 0
    for b, update in enumerate(updates):
        reference = reference_scores(model, update)
        seen = [catalogue.index[i] for i in update.seen.recent]
        mine = batch.of_user(b)
        for factor in range(len(FACTORS)):
            listed = set(mine.rows[mine.list_position[:, factor] < 12].tolist())
            scores = reference[factor].copy()
            scores[seen] = -np.inf
            if scores[np.isfinite(scores)].std() == 0:
                assert not listed  # a constant factor (no search, say) lists nothing
                continue
            if factor in (Factor.COVISIT, Factor.TRANSITION):
                scores[scores <= 0] = -np.inf  # they list only what they counted
            kth = np.sort(scores)[::-1][min(11, int(np.isfinite(scores).sum()) - 1)]
            above, at_least = set(np.flatnonzero(scores > kth + 1e-6)), set(np.flatnonzero(scores >= kth - 1e-6))
            assert above <= listed <= at_least and len(listed) == min(12, int(np.isfinite(scores).sum()))
        assert (mine.list_position < 12).any(axis=1).all()  # every candidate is some factor's listed item
        searched += update.query.any()
        assert mine.raw == pytest.approx(reference[:, mine.rows].T.astype(np.float32), rel=1e-4, abs=1e-5)
        calibrated = calibrate(reference[:, mine.rows].T, np.array([0, len(mine.rows)]), list(COUNT_FACTORS))
        fused = calibrated @ update.weights
        best = np.argsort(-fused, kind="stable")[:10]
        assert [item.item_id for item in recommendations[b].items] == [catalogue.items[r].item_id
                                                                       for r in mine.rows[best]]
        assert top.scores[b] == pytest.approx(fused[best], abs=1e-4)
        for item in recommendations[b].items:
            assert sum(item.contributions.values()) == pytest.approx(item.score, abs=1e-4)
    assert searched >= 3  # the query factor was exercised


def test_a_factor_constant_over_a_users_candidates_calibrates_to_exactly_zero() -> None:
    rng = np.random.default_rng(3)
    raw = np.stack([np.full(300, 17.3, np.float32), rng.normal(size=300).astype(np.float32)], axis=1)
    raw = np.concatenate([raw, np.array([[2.0, 1.0], [4.0, 3.0]], np.float32)])
    calibrated = calibrate(raw, np.array([0, 300, 302]), count_factors=[])
    assert not calibrated[:300, 0].any()
    assert calibrated[:300, 1].std() == pytest.approx(1.0, abs=1e-5)
    assert calibrated[300:].tolist() == [[-1.0, -1.0], [1.0, 1.0]]


def test_feedback_steps_the_residual_and_the_prior_along_the_judged_rankings_gradient() -> None:
    model = OnlineModel(small_catalogue())
    config = model.config
    state = model.learn("u", model.new_state(), ProfileEvent("e1", "view", 0, "a1"))
    for kind, sign in (("view", 1.0), ("skip", -1.0)):
        judgements: list[Judgement] = []
        prior = model.weights.log_weights.copy()
        states, *_ = model.learn_and_fold({"u": state}, [UserEvent("u", ProfileEvent(f"e-{kind}", kind, 1000, "a2"))],
                                      judgements)
        [judgement] = judgements
        assert judgement.candidates.rows[judgement.target] == model.catalogue.index["a2"]
        assert judgement.wanted == (sign > 0)
        gradient = listwise_gradient(judgement.candidates.calibrated, judgement.weights, judgement.target,
                                     config.fusion_sharpness)
        assert states["u"].log_weights == pytest.approx(sign * config.learning_rate * gradient)
        assert model.weights.log_weights - prior == pytest.approx(sign * config.prior_learning_rate * gradient)
        assert states["u"].n_feedback == 1
        # a2 is the unseen item closest to a1: short-term favoured it over the fused ranking's expectation
        z = judgement.candidates.calibrated
        assert z[judgement.target, Factor.SHORT_TERM] == z[:, Factor.SHORT_TERM].max()
        assert judgement.weights[Factor.QUERY] == judgement.weights[Factor.FRESHNESS] == 0.0  # never searched, undated


def test_a_rating_of_any_value_is_a_consumption_everywhere() -> None:
    """A low or a centre rating moves the profiles toward the item, as it counts in popularity, anchors the
    item-kNN and is a wanted target for the feedback; a value above the centre counts more."""
    model = OnlineModel(small_catalogue())
    state = model.learn("u", model.new_state(), ProfileEvent("e1", "view", 0, "b1"))
    a2 = model.catalogue.vectors[model.catalogue.index["a2"]]
    for n, value in enumerate((1.0, 3.0)):
        judgements: list[Judgement] = []
        learned = model.learn_and_fold({"u": state}, [UserEvent("u", ProfileEvent(f"r{n}", "rating", DAY, "a2",
                                                                                  value))], judgements)
        rated = learned.states["u"]
        assert float(rated.long_term @ a2) > float(state.long_term @ a2)
        assert [a.item_id for a in anchors_of(rated)] == ["a2", "b1"]
        [judgement] = judgements
        assert judgement.wanted and learned.increments[0].amount == 1.0
    assert model.config.strengths.of("rating", 4.5) == 2.5


def test_a_batch_applies_what_one_event_at_a_time_applies() -> None:
    """Rankings in a batch see the shared counts as the batch began, so the learned weights may differ slightly;
    each user's own state and the shared counts end the same, and redelivered events count once."""
    catalogue, events = random_stream(400, seed=3)
    one_by_one, batched = OnlineModel(catalogue), OnlineModel(catalogue)
    sequential = learned_states(one_by_one, events, 1)
    states: dict[str, UserState] = {}
    applied = 0
    for start in range(0, 400, 50):
        redelivered = events[max(start - 20, 0) : start]  # at-least-once delivery: applied events come again
        changed, count, _ = batched.learn_and_fold(states, [*redelivered, *events[start : start + 50]])
        states.update(changed)
        applied += count
    assert applied == 400
    assert states.keys() == sequential.keys()
    assert sum(state.n_feedback for state in states.values()) > 250
    for user_id, state in sequential.items():
        assert states[user_id].n_feedback == state.n_feedback
        assert states[user_id].long_term == pytest.approx(state.long_term)
        assert states[user_id].seen == state.seen
    for model in (one_by_one, batched):
        assert model.sequence.buffer.added == sum(
            1 for e in events if e.event.item_id is not None and e.event.kind not in ("skip", "search"))
    assert batched.scorer.popularity.counts == pytest.approx(one_by_one.scorer.popularity.counts)
    assert batched.scorer.covisitation.counts.pairs()[2] == pytest.approx(
        one_by_one.scorer.covisitation.counts.pairs()[2])


def test_shared_factors_that_rank_nothing_get_no_weight_in_effect() -> None:
    """Popularity before any interaction and freshness over an undated catalogue give every item one score."""
    model = OnlineModel(small_catalogue())  # every item entered at ts 0
    state = model.learn("u", model.new_state(), ProfileEvent("e1", "view", 1000, "a1"))
    weights = model.weight_update("u", state, 2000).weights
    assert weights[Factor.FRESHNESS] == weights[Factor.QUERY] == 0.0 and weights.sum() == pytest.approx(1.0)
    assert weights[Factor.POPULARITY] > 0  # the view counted
    judgements: list[Judgement] = []
    model.learn_and_fold({"u": state}, [UserEvent("u", ProfileEvent("e2", "view", 3000, "b1"))], judgements)
    listed = judgements[0].candidates.list_position
    unlisted = min(model.scorer.depth, len(model.catalogue))
    assert (listed[:, Factor.FRESHNESS] == unlisted).all()  # a constant factor lists nothing
    assert (listed[:, Factor.POPULARITY] < unlisted).sum() == 0  # the one item acted on, a1, is the user's own
    assert OnlineModel(small_catalogue()).scorer.constant_shared() == (Factor.POPULARITY, Factor.FRESHNESS)
    dated = small_catalogue()
    dated.upsert([CatalogueItem("c1", "title c1", ("c",), 5 * DAY)], {"c1": np.asarray([0, 0, 1], np.float32)})
    assert OnlineModel(dated).scorer.constant_shared() == (Factor.POPULARITY,)


def test_text_scores_skip_zero_profiles_and_equal_the_plain_product() -> None:
    catalogue = small_catalogue()
    scorer = OnlineModel(catalogue).scorer
    profiles = np.random.default_rng(1).standard_normal((4, 3, 3)).astype(np.float32)  # users × text factors × dim
    profiles[0, 2] = profiles[3] = 0.0
    out = torch.full((3, 4, len(catalogue)), 7.0)
    scorer._text_scores(profiles, out)
    plain = torch.from_numpy(np.ascontiguousarray(profiles.transpose(1, 0, 2))) @ catalogue.matrix.T
    assert torch.allclose(out, plain, atol=1e-6) and not out[2, 0].any() and not out[:, 3].any()


def test_varying_top_lists_the_rows_that_vary_as_topk_does() -> None:
    scores = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 3, 20)).astype(np.float32))
    scores[1, 2] = 0.5
    varies = scores.amax(dim=2) > scores.amin(dim=2)
    values, rows = varying_top(scores, varies, 5)
    expected_values, expected_rows = scores.topk(5, dim=2)
    assert torch.equal(values[varies], expected_values[varies]) and torch.equal(rows[varies], expected_rows[varies])
    assert torch.isinf(values[1, 2]).all() and values.shape == rows.shape == (2, 3, 5)
    assert torch.equal(varying_top(scores, torch.ones_like(varies), 5)[1], expected_rows)
