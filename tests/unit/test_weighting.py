import math
from dataclasses import replace

import numpy as np
import orjson
import pytest

from weighting.config import WeightingConfig
from weighting.decay import decay_factor
from weighting.entropy import drift_direction, entropy_direction, normalised_entropy
from weighting.factors import FACTORS, Factor
from weighting.fusion_learning import listwise_gradient, log_weight_step
from weighting.global_prior import GlobalPrior
from weighting.interest_profile import decayed_profiles
from weighting.user_state import UserState, event_fingerprint
from weighting.user_update import (
    EventInputs,
    ProfileEvent,
    apply_event,
    interest_entropy,
    served_weights,
    tilt_directions,
    user_weights,
)

CONFIG = WeightingConfig()


def test_entropy_of_hand_checked_distributions() -> None:
    assert normalised_entropy([("a", 1.0)]) == 0.0
    assert normalised_entropy([("a", 1.0), ("b", 1.0), ("c", 1.0)]) == pytest.approx(1.0)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert normalised_entropy([("a", 3.0), ("b", 1.0)]) == pytest.approx(expected)
    assert normalised_entropy([("a", 2.0), ("a", 2.0), ("b", -5.0)]) == 0.0


def test_entropy_tilts_focused_users_to_short_term() -> None:
    prior = GlobalPrior(entropy_strength=0.5, drift_strength=0.0)
    focused, scattered = entropy_direction(0.0), entropy_direction(1.0)
    assert focused[Factor.SHORT_TERM] == focused[Factor.QUERY] == 1.0
    assert focused[Factor.LONG_TERM] == focused[Factor.POPULARITY] == -1.0
    assert scattered == pytest.approx(-focused) and entropy_direction(0.5) == pytest.approx(np.zeros(len(FACTORS)))
    state = UserState.empty(2)
    for n in range(3):  # three items of one tag: entropy 0, a focused user
        state = apply_event(state, ProfileEvent(f"e{n}", "view", n, f"i{n}"),
                            EventInputs(np.ones(2, np.float32), ("a",)), CONFIG)
    assert interest_entropy(state) == 0.0
    weights = user_weights(state, prior)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[Factor.SHORT_TERM] / weights[Factor.LONG_TERM] == pytest.approx(math.e)


def test_listwise_gradient_judges_factors_against_the_fused_ranking() -> None:
    z = np.array([[2.0, 0.0, -2.0], [0.0, 2.0, -2.0]])
    # equal weights: items 0 and 1 tie at the top, p = (e^2, e^2, e^-4) / Σ
    p = np.exp([2.0, 2.0, -4.0]) / np.exp([2.0, 2.0, -4.0]).sum()
    gradient = listwise_gradient(z, np.ones(2), np.ones(2), np.ones(3, bool), 0)
    assert gradient == pytest.approx(z[:, 0] - z @ p)
    assert gradient[0] > 0 > gradient[1]
    # raw scores on other scales and offsets: z-scored by `scale`, the means cancel
    raw = z * np.array([[0.5], [4.0]]) + np.array([[3.0], [-7.0]])
    assert listwise_gradient(raw, np.array([2.0, 0.25]), np.ones(2), np.ones(3, bool), 0) == pytest.approx(gradient)
    # an item that is not a candidate (already seen) takes no part in the expectation
    alone = listwise_gradient(z, np.ones(2), np.ones(2), np.array([True, False, False]), 0)
    assert alone == pytest.approx([0.0, 0.0])


def test_log_weight_step_is_scaled_by_the_weight_and_clipped() -> None:
    stepped = log_weight_step(np.zeros(3), np.array([1.0, -20.0, 0.0]), np.array([2.0, 1.0, 1.0]), 0.1, 5.0)
    assert stepped == pytest.approx([0.2, -0.5, 0.0])


def test_cold_start_uses_the_prior_then_the_user() -> None:
    prior = GlobalPrior(entropy_strength=0.0, drift_strength=0.0)
    prior.log_weights = np.log(np.array([0.5, 0.25, 0.25, 1e-9, 1e-9, 1e-9]))
    cold = UserState.empty(2)
    assert user_weights(cold, prior)[:3] == pytest.approx([0.5, 0.25, 0.25], abs=1e-6)
    taught = replace(cold, log_weights=np.array([0.0, math.log(2.0), 0.0, 0.0, 0.0, 0.0]))
    assert user_weights(taught, prior)[:3] == pytest.approx([0.4, 0.4, 0.2], abs=1e-6)
    assert served_weights(taught, prior, tilt_directions(taught))[:3] == pytest.approx([0.5, 0.5, 0.25], abs=1e-6)


def test_global_prior_steps_toward_the_factor_that_was_right_and_learns_the_tilt() -> None:
    prior = GlobalPrior(learning_rate=0.5, clip=5.0, entropy_strength=0.5, drift_strength=4.0)
    assert prior.weights() == pytest.approx(np.full(len(FACTORS), 1 / len(FACTORS)))
    gradient = np.zeros(len(FACTORS))
    gradient[Factor.COVISIT] = 2.0
    no_tilt = np.zeros((2, len(FACTORS)))
    prior.update(gradient, np.ones(len(FACTORS)), no_tilt)
    assert prior.weights().argmax() == Factor.COVISIT
    assert prior.weights()[Factor.COVISIT] / prior.weights()[Factor.POPULARITY] == pytest.approx(math.e)
    assert prior.tilt_strengths == pytest.approx([0.5, 4.0])
    # a focused user (entropy 0) acted on what long-term favoured: the entropy tilt was wrong, so it weakens
    gradient = np.zeros(len(FACTORS))
    gradient[Factor.LONG_TERM] = 1.0
    prior.update(gradient, np.ones(len(FACTORS)), np.stack([entropy_direction(0.0), drift_direction(0.0)]))
    assert prior.tilt_strengths == pytest.approx([0.0, 4.0])
    prior.update(np.full(len(FACTORS), -1e6), np.ones(len(FACTORS)), no_tilt)
    assert prior.log_weights.min() >= -8.0


def test_prior_starts_from_tuned_weights_at_its_scale_with_a_floor() -> None:
    prior = GlobalPrior()
    prior.log_weights = np.log(np.full(len(FACTORS), 0.5))  # learned scale: the weights sum to 3
    tuned = np.zeros(len(FACTORS))
    tuned[Factor.COVISIT], tuned[Factor.SHORT_TERM] = 3.0, 1.0
    prior.start_from(tuned, floor=0.1)
    # direction max(tuned / 4, 0.1) = 0.75, 0.25 and four times 0.1, renormalised over 1.4; the sum stays 3
    expected = np.full(len(FACTORS), 0.1 / 1.4)
    expected[Factor.COVISIT], expected[Factor.SHORT_TERM] = 0.75 / 1.4, 0.25 / 1.4
    assert prior.weights() == pytest.approx(expected)
    assert np.exp(prior.log_weights).sum() == pytest.approx(3.0)


def test_decay_and_session_reset() -> None:
    assert decay_factor(7200_000, 3600_000) == pytest.approx(0.25)
    assert decay_factor(-5, 100) == 1.0
    one = np.ones(2, np.float32)
    config = WeightingConfig(short_half_life_events=1.0, short_half_life_ms=1e18, long_half_life_events=1e18,
                             long_half_life_ms=1e18, session_gap_ms=1000, session_reset=0.1)
    long_term, short_term, velocity = decayed_profiles(one, one, one, 10.0, config)
    assert short_term == pytest.approx([0.5, 0.5]) and long_term == pytest.approx([1, 1])
    assert velocity == pytest.approx([1, 1])
    _, short_term, velocity = decayed_profiles(one, one, one, 5000.0, config)
    assert short_term == pytest.approx([0.05, 0.05]) and velocity == pytest.approx([0, 0])


def test_apply_event_updates_profiles_and_is_idempotent() -> None:
    state = UserState.empty(2)
    vector = np.array([1.0, 0.0], np.float32)
    inputs = EventInputs(vector, ("jazz",), None)
    state = apply_event(state, ProfileEvent("e1", "purchase", 1000, "i1"), inputs, CONFIG)
    assert state.long_term == pytest.approx([5.0, 0.0]) and state.short_term == pytest.approx([5.0, 0.0])
    assert state.seen == {"i1"} and state.n_events == 1
    assert state.applied == (event_fingerprint("e1"),)
    again = apply_event(state, ProfileEvent("e1", "purchase", 1000, "i1"), inputs, CONFIG)
    assert again is state


def test_skip_pushes_away_and_search_sets_query() -> None:
    state = UserState.empty(2)
    vector = np.array([0.0, 1.0], np.float32)
    state = apply_event(state, ProfileEvent("e1", "skip", 1000, "i1"), EventInputs(vector), CONFIG)
    assert state.short_term[1] < 0
    query = np.array([0.6, 0.8], np.float32)
    state = apply_event(state, ProfileEvent("e2", "search", 2000), EventInputs(query_vector=query), CONFIG)
    assert state.query == pytest.approx(query) and state.query_ts == 2000


def test_state_round_trips_through_bytes() -> None:
    state = UserState.empty(3)
    state = apply_event(state, ProfileEvent("e1", "view", 5, "i1"),
                           EventInputs(np.ones(3, np.float32), ("a", "b")), CONFIG)
    restored = UserState.from_bytes(state.to_bytes())
    assert restored.recent == state.recent and restored.seen == state.seen
    assert restored.long_term == pytest.approx(state.long_term)
    assert restored.applied == (event_fingerprint("e1"),) and restored.to_bytes() == state.to_bytes()


def test_a_state_written_with_event_ids_reads_as_fingerprints() -> None:
    state = apply_event(UserState.empty(2), ProfileEvent("e1", "view", 5, "i1"),
                        EventInputs(np.ones(2, np.float32)), CONFIG)
    head, _, body = state.to_bytes().partition(b"\n")
    header = {**orjson.loads(head), "applied": ["e1"]}
    del header["n_applied"]
    old = UserState.from_bytes(orjson.dumps(header) + b"\n" + body[: 4 * 2 * 4])
    assert old.applied == state.applied and old.long_term == pytest.approx(state.long_term)
    assert apply_event(old, ProfileEvent("e1", "view", 5, "i1"), EventInputs(np.ones(2, np.float32)), CONFIG) is old


def test_drift_moves_weight_from_long_to_short_term() -> None:
    from weighting.user_update import interest_drift

    assert drift_direction(0.0) == pytest.approx(np.zeros(len(FACTORS)))
    moved = drift_direction(0.5)
    assert moved[Factor.SHORT_TERM] - moved[Factor.LONG_TERM] == pytest.approx(1.0)  # ratio e^(4·1) at strength 4
    empty = UserState.empty(2)
    east, north = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    assert interest_drift(empty) == 0.0
    assert interest_drift(replace(empty, short_term=east, long_term=2 * east)) == pytest.approx(0.0)
    assert interest_drift(replace(empty, short_term=north, long_term=east)) == pytest.approx(0.5)
    assert interest_drift(replace(empty, short_term=-east, long_term=east)) == pytest.approx(1.0)


def test_the_query_factor_weighs_as_much_as_the_last_search_still_counts() -> None:
    """Its scores are z-scored, which cancels the decay of the query vector: the weight carries the decay."""
    from weighting.weight_update import weight_update_for

    prior = GlobalPrior()
    state = apply_event(UserState.empty(2), ProfileEvent("e1", "view", 0, "i1"),
                        EventInputs(np.ones(2, np.float32), ("a",)), CONFIG)
    never_searched = weight_update_for("u", state, prior, CONFIG, 1000).weights
    assert never_searched[Factor.QUERY] == 0.0 and never_searched.sum() == pytest.approx(1.0)
    assert never_searched[Factor.SHORT_TERM] == pytest.approx(0.2)  # the other five share what query had
    searched = apply_event(state, ProfileEvent("e2", "search", 1000), EventInputs(query_vector=np.ones(2, np.float32)),
                           CONFIG)
    half_life = CONFIG.query_half_life_ms
    at_once, later = (weight_update_for("u", searched, prior, CONFIG, int(1000 + t)).weights for t in (0, half_life))
    assert at_once == pytest.approx(np.full(len(FACTORS), 1 / 6))
    assert later[Factor.QUERY] / later[Factor.SHORT_TERM] == pytest.approx(0.5)
