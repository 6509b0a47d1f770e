import math
from dataclasses import replace

import numpy as np
import orjson
import pytest

from weighting.config import WeightingConfig
from weighting.context import CONTEXT_FEATURES, FactorEvidence, user_context
from weighting.context_weights import CONTEXT_CLIP, ContextWeights, residual_step
from weighting.decay import decay_factor
from weighting.entropy import normalised_entropy
from weighting.factors import FACTORS, Factor
from weighting.fusion_learning import feedback_gradient, listwise_gradient, softmax
from weighting.interest_profile import decayed_profiles
from weighting.user_state import UserState, event_fingerprint
from weighting.user_update import EventInputs, ProfileEvent, apply_event, interest_drift, interest_entropy
from weighting.weight_update import in_effect

CONFIG = WeightingConfig()


def test_entropy_of_hand_checked_distributions() -> None:
    assert normalised_entropy([("a", 1.0)]) == 0.0
    assert normalised_entropy([("a", 1.0), ("b", 1.0), ("c", 1.0)]) == pytest.approx(1.0)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert normalised_entropy([("a", 3.0), ("b", 1.0)]) == pytest.approx(expected)
    assert normalised_entropy([("a", 2.0), ("a", 2.0), ("b", -5.0)]) == 0.0


def test_context_of_a_user_hand_checked() -> None:
    state = UserState.empty(2)
    east, north = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    for n, (vector, tag) in enumerate([(east, "a"), (east, "a"), (north, "b")]):
        state = apply_event(state, ProfileEvent(f"e{n}", "view", 60_000 * n, f"i{n}"), EventInputs(vector, (tag,)),
                            CONFIG)
    context = dict(zip(CONTEXT_FEATURES, user_context(state, CONFIG, 120_000 + 9_000,
                                                      FactorEvidence(covisit=math.e - 1, transition=0.0)),
                       strict=True))
    assert context["entropy"] == pytest.approx(normalised_entropy([("a", 2.0), ("b", 1.0)]))
    assert context["drift"] == pytest.approx(interest_drift(state)) and 0 < context["drift"] < 0.5
    assert context["log_gap_s"] == pytest.approx(math.log1p(9.0))
    assert context["session_position"] == pytest.approx(math.log1p(3))  # three events a minute apart
    assert context["log_history"] == pytest.approx(math.log1p(3))
    assert context["search_recency"] == 0.0  # never searched
    assert context["covisit_evidence"] == pytest.approx(1.0) and context["transition_evidence"] == 0.0
    later = dict(zip(CONTEXT_FEATURES, user_context(state, CONFIG, 10 * 3_600_000, FactorEvidence()), strict=True))
    assert later["session_position"] == 0.0  # a gap longer than a session: the next event starts a new one


def test_context_weights_standardise_by_running_moments() -> None:
    weights = ContextWeights(n_factors=2, n_context=2)
    assert weights.standardised(np.array([5.0, 1.0])).tolist() == [0.0, 0.0]  # nothing observed yet
    for context in ([1.0, 2.0], [3.0, 2.0], [5.0, 2.0]):
        weights.observe(np.array(context))
    # mean 3 and sample std 2 in the first feature; the second never varied
    assert weights.standardised(np.array([7.0, 9.0])).tolist() == [2.0, 0.0]
    assert weights.standardised(np.array([100.0, 2.0]))[0] == CONTEXT_CLIP


def test_context_weights_learn_which_factor_a_context_calls_for() -> None:
    """Users in context +1 act on what factor 0 ranks first, users in context −1 on what factor 1 ranks first."""
    weights = ContextWeights(n_factors=2, n_context=1, learning_rate=0.0, context_learning_rate=0.5)
    z = np.array([[2.0, -1.0], [-1.0, 2.0], [0.0, 0.0]])  # candidates × factors
    for _ in range(50):
        for context, target in ((1.0, 0), (-1.0, 1)):
            served = weights.weights(np.zeros(2), np.array([context]))
            weights.step(listwise_gradient(z, served, target, 3.0), np.array([context]))
    assert weights.weights(np.zeros(2), np.array([1.0]))[0] > 0.9
    assert weights.weights(np.zeros(2), np.array([-1.0]))[1] > 0.9
    assert weights.prior() == pytest.approx([0.5, 0.5])  # θ did not move (its rate was 0)


def test_listwise_gradient_judges_factors_against_the_fused_ranking() -> None:
    z = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, -2.0]])
    w = np.array([0.5, 0.5])
    p = softmax(3.0 * z @ w)
    raw = 3.0 * (z[0] - p @ z)
    gradient = listwise_gradient(z, w, 0, 3.0)
    assert gradient == pytest.approx(w * (raw - w @ raw))  # through the softmax of the logits
    assert gradient[0] > 0 > gradient[1] and gradient.sum() == pytest.approx(0.0)
    assert feedback_gradient(z, w, 0, 3.0, wanted=False) == pytest.approx(-gradient)  # a skip pushes away


def test_residual_steps_and_shrinks_toward_zero() -> None:
    residual = np.zeros(len(FACTORS))
    gradient = np.zeros(len(FACTORS))
    gradient[Factor.COVISIT] = 1.0
    for _ in range(3):
        residual = residual_step(residual, gradient, 0.5, 0.1, 8.0)
    assert residual[Factor.COVISIT] == pytest.approx(0.5 * (1 + 0.9 + 0.81))
    for _ in range(200):  # no more feedback: it returns to the prior
        residual = residual_step(residual, np.zeros(len(FACTORS)), 0.5, 0.1, 8.0)
    assert abs(residual).max() < 1e-6


def test_cold_start_user_is_served_the_prior() -> None:
    weights = ContextWeights(len(FACTORS), len(CONTEXT_FEATURES))
    weights.log_weights = np.log(np.array([0.4, 0.1, 0.01, 0.3, 0.1, 0.05, 0.05, 0.01]))
    served = weights.weights(np.zeros(len(FACTORS)), np.zeros(len(CONTEXT_FEATURES)))
    assert served == pytest.approx(weights.prior()) and served.sum() == pytest.approx(1.0)
    assert served[Factor.SHORT_TERM] / served[Factor.COVISIT] == pytest.approx(4 / 3)
    assert served[Factor.QUERY] == pytest.approx(served[Factor.FRESHNESS])


def test_the_query_weight_is_in_effect_as_much_as_the_last_search_still_counts() -> None:
    weights = np.full(len(FACTORS), 1 / len(FACTORS))
    never = in_effect(weights, 0.0)
    assert never[Factor.QUERY] == 0.0 and never.sum() == pytest.approx(1.0)
    half = in_effect(weights, 0.5, [Factor.FRESHNESS])
    assert half[Factor.QUERY] / half[Factor.SHORT_TERM] == pytest.approx(0.5) and half[Factor.FRESHNESS] == 0.0


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
    assert state.seen.recent == ("i1",) and state.n_events == 1
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
    state = replace(state, log_weights=np.arange(len(FACTORS), dtype=np.float64))
    restored = UserState.from_bytes(state.to_bytes())
    assert restored.recent == state.recent and restored.seen == state.seen
    assert restored.session_events == state.session_events == 1
    assert restored.log_weights.tolist() == state.log_weights.tolist()
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


def test_a_residual_stored_over_other_factors_starts_again_from_zero() -> None:
    state = apply_event(UserState.empty(2), ProfileEvent("e1", "view", 5, "i1"),
                        EventInputs(np.ones(2, np.float32)), CONFIG)
    head, _, body = state.to_bytes().partition(b"\n")
    header = {**orjson.loads(head), "log_weights": [1.0] * 6}
    del header["session_events"]
    old = UserState.from_bytes(orjson.dumps(header) + b"\n" + body)
    assert old.log_weights.tolist() == [0.0] * len(FACTORS) and old.session_events == 0


def test_interest_drift_and_entropy() -> None:
    empty = UserState.empty(2)
    east, north = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    assert interest_drift(empty) == 0.0 and interest_entropy(empty) == 0.0
    assert interest_drift(replace(empty, short_term=east, long_term=2 * east)) == pytest.approx(0.0)
    assert interest_drift(replace(empty, short_term=north, long_term=east)) == pytest.approx(0.5)
    assert interest_drift(replace(empty, short_term=-east, long_term=east)) == pytest.approx(1.0)


def test_profiles_decay_from_the_last_item_event_whatever_came_between() -> None:
    """A search after a long gap starts the session, but the profiles' clock is their last item event's: the next
    item decays and resets them as it would without the search."""
    config = WeightingConfig(session_gap_ms=60_000, session_reset=0.1)
    vector = np.array([1.0, 0.0], np.float32)
    first = apply_event(UserState.empty(2), ProfileEvent("e1", "view", 0, "i1"), EventInputs(vector), config)
    later = 10 * 3_600_000
    searched = apply_event(first, ProfileEvent("e2", "search", later), EventInputs(query_vector=vector), config)
    direct = apply_event(first, ProfileEvent("e3", "view", later + 1000, "i2"), EventInputs(vector), config)
    after_search = apply_event(searched, ProfileEvent("e3", "view", later + 1000, "i2"), EventInputs(vector), config)
    assert after_search.short_term == pytest.approx(direct.short_term)
    assert after_search.long_term == pytest.approx(direct.long_term)
    assert float(direct.short_term[0]) < 1.1  # the old interest was decayed and reset: about 1 of the new item
    assert (searched.session_events, after_search.session_events) == (1, 2)
