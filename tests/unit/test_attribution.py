"""Attribution of actions to the lists shown, the per-arm totals and the interval of the difference of rates."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.arm_statistics import ArmTotals, ExperimentTotals, RateSums, difference, experiment_report
from sinks.attribution import REMEMBERED_SHOWN, Exposures
from weighting.experiment import parse_experiment

WINDOW = 60_000
ARM_A, ARM_B = "e/dynamic", "e/static"


def shown(record: Exposures, event_id: str = "imp-1", list_id: str = "u/e1", ts: int = 1_000) -> None:
    record.impression(event_id, list_id, ["i1", "i2", "i3"], ts, user_arm=ARM_B, window_ms=WINDOW)


def test_an_action_on_a_shown_item_within_the_window_credits_the_list_once() -> None:
    record = Exposures()
    assert record.served("u/e1", ARM_A, 900)
    shown(record)
    assert record.action("c1", "click", "i2", 1_000 + WINDOW, window_ms=WINDOW)  # the last moment of the window
    assert not record.action("c2", "click", "i3", 2_000, window_ms=WINDOW)  # the list was clicked already
    assert record.action("p1", "purchase", "i2", 3_000, window_ms=WINDOW)  # a conversion is counted on its own
    assert not record.action("p2", "cart", "i1", 3_000, window_ms=WINDOW)
    assert record.tallies == {ARM_A: [1, 1, 1, 1]}  # lists, impressions, clicks, conversions: the list's arm


@pytest.mark.parametrize(("kind", "item", "ts"), [
    ("click", "i2", 1_000 + WINDOW + 1),  # after the window
    ("click", "i2", 999),  # before the impression
    ("click", "i9", 2_000),  # an item not shown
    ("skip", "i2", 2_000),  # not a click-through
    ("search", None, 2_000),
])
def test_actions_outside_the_window_or_the_impression_credit_nothing(kind: str, item: str | None, ts: int) -> None:
    record = Exposures()
    shown(record)
    assert not record.action("a", kind, item, ts, window_ms=WINDOW)
    assert record.tallies == {ARM_B: [0, 1, 0, 0]}  # an impression of a list not seen: the user's arm


def test_a_shown_item_is_forgotten_once_the_window_passed() -> None:
    record = Exposures()
    shown(record, "imp-1", "u/e1", 1_000)
    record.impression("imp-2", "u/e2", ["i7"], 1_000 + 2 * WINDOW, user_arm=ARM_B, window_ms=WINDOW)
    assert set(record.shown) == {"i7"}


def test_redelivered_records_change_nothing_even_after_a_round_trip() -> None:
    record = Exposures()
    record.served("u/e1", ARM_A, 900)
    shown(record)
    record.action("c1", "view", "i1", 1_500, window_ms=WINDOW)
    again = Exposures.from_json(record.to_json())
    assert again == record
    assert not again.served("u/e1", ARM_A, 900)
    shown(again)
    assert not again.action("c1", "view", "i1", 1_500, window_ms=WINDOW)
    assert again.tallies == {ARM_A: [1, 1, 1, 0]}


def test_the_difference_of_two_rates_has_the_delta_method_interval_over_users() -> None:
    # arm: users with (clicks, impressions) (1, 4), (3, 4), (0, 2): R = 4/10 = 0.4;
    # residuals c − R·n: −0.6, 1.4, −0.8; Σ² = 0.36 + 1.96 + 0.64 = 2.96; n̄ = 10/3;
    # var = 2.96 / (n̄² · 3 · 2) = 2.96 / 66.667 = 0.0444.
    # control: (0, 5), (1, 5): R = 0.1; residuals −0.5, 0.5; Σ² = 0.5; n̄ = 5; var = 0.5 / (25 · 2) = 0.01.
    arm, control = RateSums(), RateSums()
    for hits, trials in ((1, 4), (3, 4), (0, 2)):
        arm.add(hits, trials)
    for hits, trials in ((0, 5), (1, 5)):
        control.add(hits, trials)
    assert arm.variance() == pytest.approx(0.0444)
    assert control.variance() == pytest.approx(0.01)
    d = difference(arm, control)
    half = 1.959963984540054 * math.sqrt(0.0544)
    assert (d.value, d.low, d.high) == pytest.approx((0.3, 0.3 - half, 0.3 + half))


def test_one_user_is_no_interval() -> None:
    one = RateSums()
    one.add(1, 2)
    assert math.isinf(one.variance()) and math.isinf(difference(one, one).high)


def test_totals_follow_each_users_change_exactly() -> None:
    totals = ExperimentTotals()
    totals.replace({}, {ARM_A: [2, 4, 1, 0]})
    totals.replace({}, {ARM_A: [1, 4, 3, 1]})
    totals.replace({ARM_A: [1, 4, 3, 1]}, {ARM_A: [1, 2, 0, 0]})
    direct = ArmTotals()
    direct.add([2, 4, 1, 0])
    direct.add([1, 2, 0, 0])
    assert totals.arms[ARM_A] == direct
    assert (direct.lists, direct.impressions, direct.clicks, direct.ctr.users) == (3, 6, 1, 2)


def test_the_report_compares_every_arm_with_the_control() -> None:
    experiment = parse_experiment("e:dynamic=0.5,static=0.5")
    assert experiment is not None
    totals = ExperimentTotals()
    for tally in ([1, 4, 1, 0], [1, 4, 3, 1], [1, 2, 0, 0]):
        totals.replace({}, {ARM_A: tally})
    totals.replace({}, {ARM_B: [1, 5, 0, 0]})
    dynamic, static = experiment_report(experiment, totals)
    assert (dynamic["arm"], dynamic["impressions"], dynamic["clicks"], dynamic["ctr"]) == ("dynamic", 10, 4, 0.4)
    assert "ctr_difference" not in dynamic
    assert static["ctr"] == 0.0 and static["ctr_difference"] == {"value": -0.4, "low": None, "high": None}


def test_an_action_read_before_the_impression_that_showed_its_item_earns_nothing() -> None:
    record = Exposures()
    assert not record.action("c1", "click", "i2", 1_000, window_ms=WINDOW)
    shown(record)
    assert record.tallies == {ARM_B: [0, 1, 0, 0]}


def test_an_item_shown_again_belongs_to_the_newest_list_and_the_shown_items_stay_bounded() -> None:
    record = Exposures()
    shown(record, "imp-1", "u/e1", 1_000)
    shown(record, "imp-2", "u/e2", 2_000)
    assert record.action("c1", "click", "i1", 2_500, window_ms=WINDOW)
    assert record.clicked == ["u/e2"]
    record.impression("imp-3", "u/e3", [f"x{n}" for n in range(REMEMBERED_SHOWN + 5)], 3_000, user_arm=ARM_B,
                      window_ms=WINDOW)
    assert len(record.shown) == REMEMBERED_SHOWN and "x5" in record.shown and "x4" not in record.shown


def test_an_arm_without_impressions_has_no_difference() -> None:
    experiment = parse_experiment("e:dynamic=0.5,static=0.5")
    assert experiment is not None
    totals = ExperimentTotals()
    totals.replace({}, {ARM_A: [1, 4, 1, 0]})
    _, static = experiment_report(experiment, totals)
    assert static["ctr_difference"] == {"value": None, "low": None, "high": None}


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32))
def test_totals_moved_by_every_change_equal_the_sum_of_the_records_after_any_sequence(seed: int) -> None:
    rng = random.Random(seed)
    records: dict[str, Exposures] = {}
    totals = ExperimentTotals()
    for n in range(200):
        user = f"u{rng.randrange(6)}"
        record = records.setdefault(user, Exposures())
        before = {arm: list(t) for arm, t in record.tallies.items()}
        ts, step = 1_000 * n, rng.random()
        list_id = f"{user}/e{rng.randrange(12)}"
        if step < 0.3:
            record.served(list_id, rng.choice((ARM_A, ARM_B)), ts)
        elif step < 0.6:
            record.impression(f"imp{rng.randrange(40)}", list_id, rng.sample(["i1", "i2", "i3", "i4"], 2), ts,
                              user_arm=ARM_B, window_ms=WINDOW)
        else:
            record.action(f"a{rng.randrange(60)}", rng.choice(("click", "cart", "view", "skip")),
                          rng.choice(("i1", "i2", "i3", "i4")), ts, window_ms=WINDOW)
        totals.replace(before, record.tallies)
    recount = ExperimentTotals()
    for record in records.values():
        recount.replace({}, Exposures.from_json(record.to_json()).tallies)
    assert totals.arms.keys() == recount.arms.keys()
    for arm, sums in recount.arms.items():
        assert totals.arms[arm] == sums
