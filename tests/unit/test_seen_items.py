"""A user's seen items in bounded space: exact for the newest, Bloom filters for the older, a flat state record."""

import numpy as np
import pytest

from sinks.catalogue import Catalogue, CatalogueItem
from sinks.online_model import OnlineModel
from weighting.config import WeightingConfig
from weighting.seen_items import FILTER_BITS, FILTER_CAPACITY, SeenItems
from weighting.user_state import UserState
from weighting.user_update import EventInputs, ProfileEvent, apply_event


def seen_of(ids: list[str], remembered: int = 200) -> SeenItems:
    seen = SeenItems()
    for item_id in ids:
        seen = seen.added(item_id, remembered)
    return seen


def test_the_newest_are_exact_and_older_ones_are_held_by_a_filter() -> None:
    ids = [f"item-{n}" for n in range(5000)]
    seen = seen_of(ids)
    assert seen.recent == tuple(ids[-200:])
    assert len(seen.filters) == 2 and all(len(f) == FILTER_BITS // 8 for f in seen.filters)
    assert all(item_id in seen for item_id in ids[-(200 + FILTER_CAPACITY + 1000):])  # no false negatives
    strangers = [f"other-{n}" for n in range(20_000)]
    assert sum(item_id in seen for item_id in strangers) / len(strangers) < 0.02


def test_the_oldest_items_age_out_of_the_filters() -> None:
    ids = [f"item-{n}" for n in range(200 + 3 * FILTER_CAPACITY)]
    seen = seen_of(ids)
    assert len(seen.filters) == 2
    oldest = ids[:FILTER_CAPACITY]
    assert sum(item_id in seen for item_id in oldest) / len(oldest) < 0.05  # dropped with the third filter


def test_a_long_lived_users_state_record_stays_flat() -> None:
    config = WeightingConfig()
    vector = np.array([1.0, 0.0], np.float32)
    state, sizes = UserState.empty(2), {}
    for n in range(1, 5001):
        state = apply_event(state, ProfileEvent(f"e{n}", "view", n * 1000, f"item-{n:05d}"), EventInputs(vector),
                            config)
        if n in (1000, 5000):
            sizes[n] = len(state.to_bytes())
    assert abs(sizes[5000] - sizes[1000]) <= FILTER_BITS // 8 + 64  # at most the second filter and a few digits
    assert sizes[5000] < 24_000
    restored = UserState.from_bytes(state.to_bytes())
    assert restored.seen == state.seen and "item-00100" in restored.seen and "item-09999" not in restored.seen


def test_a_state_stored_with_every_seen_id_reads_and_bounds_them_on_the_next_item() -> None:
    state = UserState.empty(2)
    old = state.to_bytes().replace(b'"seen":[],"seen_filters":[0,0],',
                                   b'"seen":[' + b",".join(b'"i%d"' % n for n in range(300)) + b"],")
    restored = UserState.from_bytes(old)
    assert len(restored.seen.recent) == 300 and "i0" in restored.seen
    bounded = restored.seen.added("i300", 200)
    assert len(bounded.recent) == 200 and "i0" in bounded and "i300" in bounded


@pytest.mark.parametrize("exclude", [True, False])
def test_ranking_leaves_out_what_the_filters_hold_unless_repeats_are_allowed(exclude: bool) -> None:
    rng = np.random.default_rng(1)
    catalogue = Catalogue(8)
    items = [CatalogueItem(f"item-{n}", f"title {n}") for n in range(1200)]
    catalogue.upsert(items, {i.item_id: rng.normal(size=8).astype(np.float32) for i in items})
    model = OnlineModel(catalogue, WeightingConfig(exclude_seen=exclude, candidates_per_factor=400))
    seen = seen_of([i.item_id for i in items[:1000]])
    profile = catalogue.vectors[:1000].mean(axis=0)  # the user's taste points at what they saw
    state = UserState(dim=8, n_events=1000, long_term=profile, short_term=profile,
                      velocity=np.zeros(8, np.float32), query=np.zeros(8, np.float32), seen=seen)
    [recommendation] = model.recommend([model.weight_update("u", state, 0)], 100)
    listed = {item.item_id for item in recommendation.items}
    old = {i.item_id for i in items[:800]}  # only in the filters
    if exclude:
        assert len(listed) == 100 and not listed & {i.item_id for i in items[:1000]}
    else:
        assert len(listed & old) > 50
