"""Experiment arms: a stable assignment within the shares, the weights each arm serves, and the arm on the lists."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sinks.online_model import OnlineModel, UserEvent
from tests.unit.test_scorer import small_catalogue
from weighting.experiment import Arm, Experiment, experiment_from, fixed_weights, load_experiment, parse_experiment
from weighting.factors import FACTORS, Factor
from weighting.user_update import ProfileEvent

THREE_ARMS = "fusion-1:dynamic=0.5,static=0.3,covisit-only=0.2"


def test_arms_are_stable_and_within_two_points_of_their_shares_on_100000_users() -> None:
    experiment = parse_experiment(THREE_ARMS)
    assert experiment is not None
    users = [f"user-{n}" for n in range(100_000)]
    arms = [experiment.arm_of(user).name for user in users]
    counts = Counter(arms)
    for arm in experiment.arms:
        assert abs(counts[arm.name] / len(users) - arm.share) <= 0.02, counts


def test_the_assignment_is_pinned_so_that_no_release_reshuffles_a_running_experiment() -> None:
    experiment = parse_experiment(THREE_ARMS)
    assert experiment is not None
    assert [experiment.arm_of(f"user-000{n}").name for n in range(6)] == \
        ["static", "dynamic", "covisit-only", "covisit-only", "static", "static"]


def test_another_experiment_id_draws_the_users_afresh() -> None:
    first, second = parse_experiment("a:dynamic=0.5,static=0.5"), parse_experiment("b:dynamic=0.5,static=0.5")
    assert first is not None and second is not None
    users = [f"u{n}" for n in range(2000)]
    same = sum(first.arm_of(u).name == second.arm_of(u).name for u in users) / len(users)
    assert 0.45 < same < 0.55  # independent draws agree half the time


def test_each_arm_serves_its_weights() -> None:
    dynamic = np.array([0.3, 0.1, 0.2, 0.2, 0.1, 0.05, 0.05, 0.0])
    assert Arm("dynamic", 1.0, fixed_weights("dynamic")).served(dynamic, 0.5) is dynamic
    static = Arm("static", 1.0, fixed_weights("static")).served(dynamic, 0.5, [Factor.FRESHNESS])
    expected = np.array([1, 1, 0.5, 1, 1, 1, 1, 0]) / 6.5  # the query's scaled by its presence, freshness constant
    assert static == pytest.approx(expected)
    only = Arm("popularity-only", 1.0, fixed_weights("popularity-only")).served(dynamic, 0.0)
    assert only.tolist() == [float(f == Factor.POPULARITY) for f in Factor]
    fixed = fixed_weights("tuned", {"covisit": 3.0, "transition": 1.0})
    assert fixed == tuple(3.0 if f == "covisit" else 1.0 if f == "transition" else 0.0 for f in FACTORS)


@pytest.mark.parametrize(("setting", "reason"), [
    ("e:dynamic=0.5,static=0.4", "sum to 0.9"),
    ("e:dynamic=0.5,dynamic=0.5", "names an arm twice"),
    ("e:dynamic=1.5,static=-0.5", "must be positive"),
    ("e:dynamic=0.5,bogus=0.5", "'bogus' is not dynamic"),
    (":dynamic=1", "needs an id"),
    ("e:=1", "an arm needs a name"),
])
def test_a_bad_experiment_setting_says_what_is_wrong(setting: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_experiment(setting)


def test_the_weighting_toml_declares_arms_with_their_own_weights_and_the_setting_wins(tmp_path: Path) -> None:
    path = tmp_path / "weighting.toml"
    path.write_text('learning_rate = 0.1\n[experiment]\nid = "t"\nattribution_minutes = 10\n'
                    '[[experiment.arms]]\nname = "dynamic"\nshare = 0.5\n'
                    '[[experiment.arms]]\nname = "tuned"\nshare = 0.5\nweights = {covisit = 1.0}\n')
    experiment = load_experiment(str(path))
    assert experiment == Experiment("t", (Arm("dynamic", 0.5), Arm("tuned", 0.5, fixed_weights("covisit-only"))),
                                    attribution_ms=600_000)
    assert load_experiment(str(path), "s:static=1") == Experiment("s", (Arm("static", 1.0, (1.0,) * 8),))
    assert load_experiment("") is None
    with pytest.raises(ValueError, match=r"unknown field experiment\.arms\.colour"):
        experiment_from({"id": "x", "arms": [{"name": "dynamic", "share": 1, "colour": "red"}]})
    with pytest.raises(ValueError, match="a fixed arm needs another name"):
        experiment_from({"id": "x", "arms": [{"name": "dynamic", "share": 1, "weights": {"covisit": 1}}]})


def test_a_users_list_is_ranked_by_the_weights_of_the_users_arm_and_names_it() -> None:
    experiment = parse_experiment("e:dynamic=0.5,covisit-only=0.5")
    assert experiment is not None
    model = OnlineModel(small_catalogue(), experiment=experiment)
    users = {name: experiment.arm_of(name).name for name in (f"u{n}" for n in range(20))}
    events = [UserEvent(user, ProfileEvent(f"{user}-{n}", "view", 1_000 + n, item), None)
              for user in users for n, item in enumerate(("a1", "b1", "a2"))]
    learned = model.learn_and_fold({}, events)
    updates = model.weight_updates({user: (state, 2_000) for user, state in learned.states.items()})
    lists = {rec.user_id: rec for rec in model.recommend(list(updates.values()), 2)}
    for user, arm in users.items():
        assert (updates[user].experiment, updates[user].arm) == ("e", arm)
        assert (lists[user].experiment, lists[user].arm) == ("e", arm)
        assert lists[user].to_dict()["list_id"] == f"{user}/{updates[user].trigger_event_id}"
        if arm == "covisit-only":
            assert updates[user].weights.tolist() == [float(f == Factor.COVISIT) for f in Factor]
        else:
            assert np.count_nonzero(updates[user].weights) > 1
    assert set(users.values()) == {"dynamic", "covisit-only"}
