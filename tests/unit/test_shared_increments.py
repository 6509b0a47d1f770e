"""The shared signals as a log of increments: learning leaves them alone, folding in one order gives one state."""

import asyncio
import random

import numpy as np
import pytest

from sinks.online_model import OnlineModel, UserEvent
from sinks.shared_increments import JudgedContext, SharedIncrement
from sinks.shared_snapshot import shared_digest
from tests.unit.test_shared_snapshot import ITEMS, catalogue, events
from weighting.user_state import UserState
from weighting.user_update import ProfileEvent


def increments_of(model: OnlineModel, log: list, batch: int = 16) -> list[SharedIncrement]:  # type: ignore[type-arg]
    """What `model` emits for `log` while it folds its own increments after each batch, as a lone worker does."""
    states: dict[str, UserState] = {}
    emitted: list[SharedIncrement] = []
    for start in range(0, len(log), batch):
        learned = model.learn_and_fold(states, log[start : start + batch])
        states.update(learned.states)
        emitted.extend(learned.increments)
    return emitted


def test_an_increment_travels_as_json_exactly() -> None:
    judged = JudgedContext(np.array([0.1, 1 / 3, -2.5e-17]), np.array([0.0, 3.0, -1.25]),
                           np.array([1e-300, -0.7, 2 / 7]))
    for increment in (SharedIncrement(-(2**63), "a1", 123, 1.5, ("b2", "c3"), judged),
                      SharedIncrement(7, "a2", 0, -1.0, (), JudgedContext(judged.context, judged.standardised, None)),
                      SharedIncrement(8, "a3", 5, 5.0, ())):
        back = SharedIncrement.from_json(increment.to_json())
        assert back.to_json() == increment.to_json()
        assert (back.fingerprint, back.item_id, back.ts, back.amount, back.previous) == \
            (increment.fingerprint, increment.item_id, increment.ts, increment.amount, increment.previous)
        if increment.judged is not None:
            assert back.judged is not None
            assert back.judged.context.tolist() == increment.judged.context.tolist()
            assert (back.judged.gradient is None) == (increment.judged.gradient is None)


def test_learning_changes_no_shared_signal_until_the_increments_are_folded() -> None:
    model, log = OnlineModel(catalogue(ITEMS)), events(100)
    increments_of(model, log[:60])
    before = shared_digest(model)
    learned = model.learn_batch({}, log[60:])
    assert learned.increments and shared_digest(model) == before
    assert model.fold(learned.increments) == len(learned.increments)
    after = shared_digest(model)
    assert after["events"] == before["events"] + len(learned.increments)
    assert after["covisit_pairs"] > before["covisit_pairs"] and after["prior_updates"] > before["prior_updates"]


def test_every_worker_that_folds_the_log_in_its_order_holds_the_same_signals() -> None:
    """Two workers, each applying its own users' events, send increments to one log; a third folds only the log.
    Whatever order of items their catalogues have, all three end with the same counts, prior and context map."""
    log = events(400)
    shuffled = ITEMS[:]
    random.Random(2).shuffle(shuffled)
    workers = [OnlineModel(catalogue(ITEMS)), OnlineModel(catalogue(shuffled))]
    follower = OnlineModel(catalogue(list(reversed(ITEMS))))
    states: list[dict[str, UserState]] = [{}, {}]
    shared_log: list[bytes] = []
    folded = [0, 0, 0]
    for start in range(0, len(log), 20):
        for n, worker in enumerate(workers):  # users u0, u2, u4 on the first worker, the others on the second
            mine = [event for event in log[start : start + 20] if int(event.user_id[1:]) % 2 == n]
            learned = worker.learn_batch(states[n], mine)
            states[n].update(learned.states)
            shared_log.extend(increment.to_json() for increment in learned.increments)
        for n, model in enumerate([*workers, follower]):
            model.fold(SharedIncrement.from_json(raw) for raw in shared_log[folded[n]:])
            folded[n] = len(shared_log)
    digests = [shared_digest(model) for model in (*workers, follower)]
    assert digests[0] == digests[1] == digests[2]
    assert digests[0]["events"] == sum(event.event.item_id is not None for event in log) == len(shared_log)
    assert digests[0]["prior_updates"] > 100


def test_an_increment_sent_twice_counts_once() -> None:
    model, twice = OnlineModel(catalogue(ITEMS)), OnlineModel(catalogue(ITEMS))
    increments = increments_of(model, events(120))
    assert twice.fold(increments[:70]) == 70
    assert twice.fold(increments[50:]) == len(increments) - 70  # a worker died after sending 50..69, sent them again
    assert shared_digest(twice) == shared_digest(model)


def test_an_increment_from_a_model_with_other_factors_is_refused_before_the_fold() -> None:
    model = OnlineModel(catalogue(ITEMS))
    [good] = [increment for increment in increments_of(model, events(30)) if increment.judged is not None][:1]
    assert good.judged is not None
    model.check_increment(good)
    other = SharedIncrement(1, "a1", 0, 1.0, (), JudgedContext(good.judged.context, good.judged.standardised,
                                                                np.zeros(3)))
    with pytest.raises(ValueError, match="gradient has 3 values"):
        model.check_increment(other)


def test_a_wait_for_offsets_already_folded_returns_at_once_even_without_time() -> None:
    from streams.shared_log import SharedLog

    async def waits() -> tuple[bool, bool, bool]:
        log = SharedLog()
        await log.advanced_to(10)
        late = asyncio.create_task(log.wait_folded(12, timeout_s=5))
        await asyncio.sleep(0)
        await log.advanced_to(13)
        return await log.wait_folded(9, timeout_s=0), await log.wait_folded(13, 0.01), await late

    assert asyncio.run(waits()) == (True, False, True)


def test_users_that_number_their_events_alike_all_feed_the_shared_signals() -> None:
    """Event ids are unique per user only (a producer may number each user's events 1, 2, 3 ...): every user's
    events count in popularity and co-visitation, and a resent event still counts once."""
    model = OnlineModel(catalogue(ITEMS))
    log = [UserEvent(f"u{user}", ProfileEvent(str(n), "view", (10 * user + n) * 1000, ITEMS[(user + n) % len(ITEMS)]))
           for user in range(5) for n in range(3)]
    increments = increments_of(model, log)
    assert len(increments) == 15 and model.fed.total == 15
    assert float(model.scorer.popularity.counts.sum()) == pytest.approx(15 * model.config.strengths.view, rel=1e-3)
    assert model.fold(increments) == 0  # folded again: nothing counts twice
