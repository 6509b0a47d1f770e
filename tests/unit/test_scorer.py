import numpy as np
import pytest
import torch

from sinks.catalogue import Catalogue, CatalogueItem
from sinks.covisitation import CoVisitation, NeighbourCounts
from sinks.decayed_counts import PopularityCounts
from sinks.online_model import OnlineModel, UserEvent
from sinks.scorer import CatalogueScorer, standardise
from weighting.factors import FACTORS, Factor
from weighting.user_state import UserState
from weighting.user_update import ProfileEvent
from weighting.weight_update import WeightUpdate, anchors_of, content_profiles

DAY = 86_400_000


def small_catalogue() -> Catalogue:
    vectors = {"a1": [1, 0, 0], "a2": [0.9, 0.1, 0], "a3": [0.8, 0.2, 0], "b1": [0, 1, 0], "b2": [0, 0.9, 0.1]}
    catalogue = Catalogue(3)
    catalogue.upsert(
        [CatalogueItem(i, f"title {i}", (i[0],), 0) for i in vectors],
        {i: np.asarray(v, np.float32) / np.linalg.norm(v) for i, v in vectors.items()},
    )
    return catalogue


def test_standardise_zeroes_constant_rows() -> None:
    scores = np.array([[[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]])
    out = standardise(scores)
    assert out[0, 0].tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert out[0, 1].tolist() == [0.0, 0.0, 0.0]


def test_forward_decayed_popularity_and_covisitation() -> None:
    popularity = PopularityCounts(half_life_ms=DAY)
    popularity.add(0, 1.0, 0)
    popularity.add(1, 1.0, DAY)
    assert popularity.counts[1] / popularity.counts[0] == pytest.approx(2.0)
    covisit = CoVisitation(half_life_ms=DAY)
    covisit.add(1, [0], 1.0, 0)
    covisit.add(2, [0], 1.0, 0)
    scores = covisit.scores([0], [1.0], 4)
    assert scores.tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])


def test_covisitation_weighs_pairs_by_gap_over_the_last_span_items() -> None:
    covisit = CoVisitation(span=3, gap_decay=0.5)
    covisit.add(4, [0, 1, 2, 3], 1.0, 0)  # 0 lies beyond the span; 3 came right before 4
    assert covisit.scores([4], [1.0], 5).tolist() == pytest.approx([0.0, 0.25 / 1.75, 0.5 / 1.75, 1.0 / 1.75, 0.0])
    assert covisit.scores([1], [1.0], 5).tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 1.0])
    covisit.add(4, [3], 1.0, 10 * DAY)  # without a half-life, counts do not age
    assert covisit.counts.value(4, 3) == pytest.approx(2.0)


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
    total = sum(rec.items[0].contributions.values())
    assert total == pytest.approx(rec.items[0].score, abs=1e-4)


def test_feedback_scores_and_scales_match_the_dense_reference() -> None:
    model = OnlineModel(small_catalogue())
    state = model.learn("u", model.new_state(), ProfileEvent("e1", "purchase", 0, "a1"))
    state = model.learn("u", state, ProfileEvent("e2", "view", DAY, "b1"))
    update = model.weight_update("u", state, DAY)
    profiles = np.stack(content_profiles(state, model.config, DAY))[None]
    [content] = list(model.scorer.content_scores(profiles))
    scores = np.zeros((len(FACTORS), 5))
    scores[content.factors] = content.scores
    signal_scale = model.scorer.signal_scores(anchors_of(state, model.config), DAY, scores[3:])
    scale = np.concatenate([content.scale, signal_scale])
    reference = model.scorer.factor_scores([update])[0].numpy()
    assert (scores - scores.mean(axis=1, keepdims=True)) * scale[:, None] == pytest.approx(reference, abs=1e-4)
    assert content.factors.tolist() == [Factor.SHORT_TERM, Factor.LONG_TERM]  # no search: the query is left out
    assert scale[Factor.QUERY] == 0.0 and np.abs(reference[Factor.QUERY]).sum() == 0.0
    assert scale[Factor.COVISIT] > 0  # a1 and b1 were acted on together: co-visitation moves
    assert scale[Factor.FRESHNESS] == 0.0  # every item entered at once: constant


def test_freshness_scores_match_the_decay_of_each_item_age() -> None:
    catalogue = Catalogue(2)
    catalogue.upsert([CatalogueItem(f"i{n}", "t", (), n * DAY) for n in range(3)],
                     {f"i{n}": np.array([1.0, 0.0], np.float32) for n in range(3)})
    model = OnlineModel(catalogue)
    half_life = model.scorer.freshness_half_life_ms
    for now in (DAY // 2, 2 * DAY, 30 * DAY, 31 * DAY):  # before the newest item's entry, then after it (cached)
        ages = np.maximum(now - np.arange(3) * DAY, 0)
        assert model.scorer.shared_scores(now)[1] == pytest.approx(0.5 ** (ages / half_life), rel=1e-12)


def test_feedback_moves_weight_to_the_factor_that_ranked_the_item() -> None:
    model = OnlineModel(small_catalogue())
    state = model.learn("u", model.new_state(), ProfileEvent("e1", "view", 0, "a1"))
    learned = model.learn("u", state, ProfileEvent("e2", "view", 1000, "a2"))
    # a2 is the unseen item closest to a1: short-term favoured it over the fused ranking's expectation, while
    # the constant factors (query, co-visitation before any pair, freshness) have no gradient and keep 0
    assert learned.n_feedback == 1
    assert learned.log_weights[Factor.SHORT_TERM] > 0
    for constant in (Factor.QUERY, Factor.COVISIT, Factor.FRESHNESS):
        assert learned.log_weights[constant] == 0.0
    assert model.prior.updates == 1 and model.prior.log_weights[Factor.SHORT_TERM] > 0
    skipped = model.learn("u", state, ProfileEvent("e3", "skip", 1000, "a2"))
    assert skipped.log_weights[Factor.SHORT_TERM] < 0


def random_stream(n_events: int, seed: int) -> tuple[Catalogue, list[UserEvent]]:
    """A catalogue of 300 random unit vectors and a stream of views, purchases, skips, ratings and searches."""
    rng = np.random.default_rng(seed)
    n_items, dim = 300, 16
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


def test_a_batch_learns_what_one_event_at_a_time_learns() -> None:
    catalogue, events = random_stream(400, seed=3)
    one_by_one, batched = OnlineModel(catalogue), OnlineModel(catalogue)
    sequential: dict[str, UserState] = {}
    for user_id, event, query in events:
        sequential[user_id] = one_by_one.learn(user_id, sequential.get(user_id, one_by_one.new_state()), event, query)
    states: dict[str, UserState] = {}
    applied = 0
    for start in range(0, 400, 50):
        redelivered = events[max(start - 20, 0) : start]  # at-least-once delivery: applied events come again
        changed, count = batched.learn_batch(states, [*redelivered, *events[start : start + 50]])
        states.update(changed)
        applied += count
    assert applied == 400
    assert states.keys() == sequential.keys()
    assert sum(state.n_feedback for state in states.values()) > 250
    for user_id, state in sequential.items():
        assert states[user_id].n_feedback == state.n_feedback
        assert states[user_id].log_weights == pytest.approx(state.log_weights, abs=1e-6)  # float32 products
        assert states[user_id].long_term == pytest.approx(state.long_term)
        assert states[user_id].seen == state.seen
    assert batched.prior.log_weights == pytest.approx(one_by_one.prior.log_weights, abs=1e-6)
    assert batched.scorer.popularity.counts == pytest.approx(one_by_one.scorer.popularity.counts)


def trained_model(n_items: int, seed: int) -> tuple[OnlineModel, list[str], list[WeightUpdate]]:
    """A model taught 600 views, clicks, purchases and searches of 12 users over random unit vectors; their
    updates (three users only searched)."""
    rng = np.random.default_rng(seed)
    dim = 16
    vectors = rng.normal(size=(n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"i{n}" for n in range(n_items)]
    catalogue = Catalogue(dim)
    catalogue.upsert([CatalogueItem(i, i, (), int(rng.integers(0, 30)) * DAY) for i in ids],
                     dict(zip(ids, vectors, strict=True)))
    model = OnlineModel(catalogue)
    states = {}
    for n in range(600):
        user = f"u{n % 12}"
        item = ids[int(rng.integers(0, 60)) if n % 3 else int(rng.integers(0, n_items))]
        kind = ["view", "click", "purchase", "search"][n % 4]
        query = vectors[int(rng.integers(0, n_items))] if kind == "search" else None
        event = ProfileEvent(f"e{n}", kind, 40 * DAY + n * 60_000, None if kind == "search" else item)
        states[user] = model.learn(user, states.get(user, model.new_state()), event, query)
    return model, ids, [model.weight_update(user, state, 40 * DAY + 600 * 60_000) for user, state in states.items()]


def test_fused_ranking_equals_the_dense_reference_fusion() -> None:
    model, ids, updates = trained_model(400, seed=7)
    assert sum(bool(u.anchors) for u in updates) == 9  # three users only searched
    assert sum(bool(u.query.any()) for u in updates) == 3

    recommendations = model.recommend(updates, k=15)

    scores = model.scorer.factor_scores(updates)
    weights = torch.from_numpy(np.stack([u.weights for u in updates])).float()
    reference = torch.einsum("bf,bfn->bn", weights, scores).masked_fill(model.scorer.seen_mask(updates), -np.inf)
    top_scores, top_rows = reference.topk(15, dim=1)
    for b, rec in enumerate(recommendations):
        assert [item.item_id for item in rec.items] == [ids[r] for r in top_rows[b].tolist()]
        assert [item.score for item in rec.items] == pytest.approx(top_scores[b].tolist(), abs=1e-4)
        for item, row in zip(rec.items, top_rows[b].tolist(), strict=True):
            expected = (weights[b] * scores[b, :, row]).tolist()
            assert [item.contributions[f] for f in FACTORS] == pytest.approx(expected, abs=1e-4)


def test_catalogue_moments_follow_upserts() -> None:
    rng = np.random.default_rng(1)
    catalogue = Catalogue(4)
    first = {f"i{n}": rng.normal(size=4).astype(np.float32) for n in range(30)}
    catalogue.upsert([CatalogueItem(i, i) for i in first], first)
    replaced = {"i3": rng.normal(size=4).astype(np.float32), "new": rng.normal(size=4).astype(np.float32)}
    catalogue.upsert([CatalogueItem(i, i) for i in replaced], replaced)
    mean, cov = catalogue.moments
    assert mean.numpy() == pytest.approx(catalogue.vectors.mean(axis=0), abs=1e-5)
    assert cov.numpy() == pytest.approx(np.cov(catalogue.vectors, rowvar=False), abs=1e-5)


def test_candidate_ranking_scores_exactly_and_recalls_the_exact_top_k() -> None:
    model, _, updates = trained_model(3000, seed=5)
    exact = model.scorer.top_k(updates, 15)
    approximate = CatalogueScorer(model.catalogue, model.scorer.popularity, model.scorer.covisitation,
                                  candidates=100).top_k(updates, 15)
    scores = model.scorer.factor_scores(updates)
    weights = torch.from_numpy(np.stack([u.weights for u in updates])).float()
    reference = torch.einsum("bf,bfn->bn", weights, scores)
    seen = model.scorer.seen_mask(updates)
    found = 0
    for b in range(len(updates)):
        rows = approximate.rows[b].tolist()
        assert not seen[b, rows].any()
        assert approximate.scores[b] == pytest.approx(reference[b, rows].tolist(), abs=1e-4)
        found += len(set(rows) & set(exact.rows[b].tolist()))
    recall = found / exact.rows.size
    print(f"recall@15 with 100 candidates per source over 3,000 items: {recall:.3f}")
    assert recall >= 0.95


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


def test_shared_factors_that_rank_nothing_get_no_weight_in_effect() -> None:
    """Popularity before any interaction and freshness over an undated catalogue give every item one score."""
    model = OnlineModel(small_catalogue())  # every item entered at ts 0
    state = model.learn("u", model.new_state(), ProfileEvent("e1", "view", 1000, "a1"))
    weights = model.weight_update("u", state, 2000).weights
    assert weights[Factor.FRESHNESS] == weights[Factor.QUERY] == 0.0 and weights.sum() == pytest.approx(1.0)
    assert weights[Factor.POPULARITY] > 0  # the view counted
    assert OnlineModel(small_catalogue()).scorer.constant_shared() == (Factor.POPULARITY, Factor.FRESHNESS)
    dated = small_catalogue()
    dated.upsert([CatalogueItem("c1", "title c1", ("c",), 5 * DAY)], {"c1": np.asarray([0, 0, 1], np.float32)})
    assert OnlineModel(dated).scorer.constant_shared() == (Factor.POPULARITY,)
