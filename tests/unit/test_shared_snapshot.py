"""The shared signals survive a restart (snapshot and restore, keyed by item id) and are fed each event once."""

import random
import zipfile

import numpy as np
import pytest

from sinks.catalogue import Catalogue, CatalogueItem
from sinks.online_model import OnlineModel, UserEvent
from sinks.shared_snapshot import restore_shared, shared_snapshot
from weighting.user_update import ProfileEvent

ITEMS = [f"{topic}{n}" for topic in "abcd" for n in range(6)]
HOUR = 3_600_000


def catalogue(order: list[str]) -> Catalogue:
    rng = np.random.default_rng(7)
    vectors = {item: rng.normal(size=8).astype(np.float32) for item in sorted(ITEMS)}
    result = Catalogue(8)
    result.upsert([CatalogueItem(item, f"title {item}", (item[0],), 0) for item in order], vectors)
    return result


def events(n: int, seed: int = 3) -> list[UserEvent]:
    rng = random.Random(seed)
    kinds = ("view", "click", "purchase", "skip")
    return [UserEvent(f"u{rng.randrange(6)}", ProfileEvent(f"e{i}", rng.choice(kinds), i * HOUR, rng.choice(ITEMS)))
            for i in range(n)]


def learned(model: OnlineModel, log: list[UserEvent], states: dict | None = None) -> dict:  # type: ignore[type-arg]
    """The users' states after `log`, applied in batches of 16 onto `states`."""
    states = dict(states or {})
    for start in range(0, len(log), 16):
        states.update(model.learn_and_fold(states, log[start : start + 16]).states)
    return states


def test_a_restored_model_ranks_as_the_one_it_was_taken_from() -> None:
    log = events(300)
    original = OnlineModel(catalogue(ITEMS))
    states = learned(original, log)
    shuffled = ITEMS[:]
    random.Random(1).shuffle(shuffled)
    restored = OnlineModel(catalogue(shuffled))  # rows differ: items arrived in another order
    pairs, offset = restore_shared(restored, shared_snapshot(original, 321))
    assert offset == 321
    assert pairs == len(original.scorer.covisitation.counts.pairs()[0]) > 0
    assert len(restored.scorer.transitions.counts.pairs()[0]) == len(original.scorer.transitions.counts.pairs()[0]) > 0
    assert restored.weights.log_weights.tolist() == original.weights.log_weights.tolist()
    assert restored.weights.context_map.tolist() == original.weights.context_map.tolist() and original.weights.updates
    assert restored.sequence.buffer.added == original.sequence.buffer.added > 0
    updates = [(model, [model.weight_update(user, state, 300 * HOUR) for user, state in sorted(states.items())])
               for model in (original, restored)]
    (_, before), (_, after) = updates
    lists = [[[(item.item_id, round(item.score, 5)) for item in rec.items] for rec in model.recommend(ups, 5)]
             for model, ups in updates]
    assert lists[0] == lists[1] and len(lists[0]) == 6
    assert [u.weights.tolist() for u in before] == [u.weights.tolist() for u in after]


def test_events_fed_before_a_snapshot_are_not_counted_again_after_the_restore() -> None:
    """Committed at event 100 (the user states recovered from the changelog are as of then), snapshot at 120,
    then killed: the restored worker is fed events 100 on again and must end with the original's counts."""
    log = events(200)
    original = OnlineModel(catalogue(ITEMS))
    committed = learned(original, log[:100])
    at_snapshot = learned(original, log[100:120], committed)
    snapshot = shared_snapshot(original, 0)
    learned(original, log[120:], at_snapshot)
    restored = OnlineModel(catalogue(ITEMS))
    restore_shared(restored, snapshot)
    learned(restored, log[100:], committed)
    assert restored.weights.updates == original.weights.updates
    assert restored.weights.context_count == original.weights.context_count
    assert restored.sequence.buffer.added == original.sequence.buffer.added
    popularity = [model.scorer.popularity.counts[: len(ITEMS)].tolist() for model in (restored, original)]
    assert popularity[0] == pytest.approx(popularity[1])
    for restored_part, original_part in zip(restored.scorer.covisitation.counts.pairs(),
                                            original.scorer.covisitation.counts.pairs(), strict=True):
        assert sorted(restored_part.tolist()) == pytest.approx(sorted(original_part.tolist()))


def test_a_batch_applied_twice_feeds_the_shared_signals_once() -> None:
    model = OnlineModel(catalogue(ITEMS))
    log = events(50)
    learned(model, log)
    counts, updates = model.scorer.popularity.counts.copy(), model.weights.updates
    examples = model.sequence.buffer.added
    learned(model, log)  # the same windows again, into states that were never written (an aborted batch)
    assert model.scorer.popularity.counts.tolist() == counts.tolist() and model.weights.updates == updates
    assert model.sequence.buffer.added == examples


def test_only_an_empty_model_takes_a_snapshot() -> None:
    model = OnlineModel(catalogue(ITEMS))
    learned(model, events(20))
    with pytest.raises(ValueError, match="learned nothing yet"):
        restore_shared(model, shared_snapshot(model, 0))


def test_a_snapshot_that_cannot_be_read_changes_nothing() -> None:
    source = OnlineModel(catalogue(ITEMS))
    learned(source, events(40))
    good = shared_snapshot(source, 0)
    target = OnlineModel(catalogue(ITEMS))
    for raw in (b"not a snapshot", good[: len(good) // 2]):
        with pytest.raises((ValueError, zipfile.BadZipFile)):
            restore_shared(target, raw)
        assert not target.scorer.covisitation.counts.used and not len(target.scorer.popularity.counts)
        assert target.weights.updates == 0 and target.fed.total == 0 and target.sequence.buffer.added == 0
    assert restore_shared(target, good)[0] > 0
