"""The whole online model for one partition of users: learn from an event, then rank. Live and replay share it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from sinks.catalogue import Catalogue
from sinks.covisitation import CoVisitation
from sinks.decayed_counts import PopularityCounts
from sinks.fed_events import FedEvents
from sinks.recommendation import UserRecommendation
from sinks.scorer import CatalogueScorer, ContentScores
from weighting.config import WeightingConfig
from weighting.factors import FACTORS
from weighting.fusion_learning import listwise_gradient, log_weight_step
from weighting.global_prior import GlobalPrior
from weighting.user_state import UserState, Vector, event_fingerprint
from weighting.user_update import EventInputs, ProfileEvent, apply_event, served_weights, tilt_directions
from weighting.weight_update import (
    WeightUpdate,
    anchors_of,
    content_profiles,
    in_effect,
    query_presence,
    weight_update_for,
)

USER_LOG_WEIGHT_BOUND = 8.0
"""A user's own log-weights stay within ±this of the prior."""
FED_EVENTS_REMEMBERED = 200_000
"""Events whose ids the shared signals remember, to feed each of them once (`FedEvents`)."""


class UserEvent(NamedTuple):
    """One behaviour event of a user, with its query's vector when it is a search."""

    user_id: str
    event: ProfileEvent
    query_vector: Vector | None = None


@dataclass(frozen=True)
class _Step:
    """An event that changed its user's state, with the state just before it."""

    user_id: str
    event: ProfileEvent
    row: int | None
    before: UserState
    strength: float
    feedback: bool


class OnlineModel:
    """Per-user states live with the caller (a Faust table, a dict); shared signals live here."""

    def __init__(
        self,
        catalogue: Catalogue,
        config: WeightingConfig | None = None,
        *,
        learn_weights: bool = True,
        candidates: int = 0,
    ) -> None:
        """`candidates` > 0 ranks among that many candidates per source (`CatalogueScorer.top_k`)."""
        self.config = config or WeightingConfig()
        self.catalogue = catalogue
        self.prior = GlobalPrior(self.config.prior_learning_rate, self.config.gradient_clip,
                                 self.config.entropy_strength, self.config.drift_strength)
        self.scorer = CatalogueScorer(
            catalogue, PopularityCounts(self.config.popularity_half_life_ms),
            CoVisitation(self.config.covisit_half_life_ms, self.config.covisit_span),
            candidates=candidates,
        )
        self.learn_weights = learn_weights
        self.fed = FedEvents(FED_EVENTS_REMEMBERED)

    def new_state(self) -> UserState:
        return UserState.empty(self.catalogue.dim)

    def weight_update(self, user_id: str, state: UserState, now_ts: int) -> WeightUpdate:
        return weight_update_for(user_id, state, self.prior, self.config, now_ts,
                                 constant=self.scorer.constant_shared())

    def learn(
        self, user_id: str, state: UserState, event: ProfileEvent, query_vector: Vector | None = None
    ) -> UserState:
        """Applies one event; `learn_batch` with a single event."""
        states, _ = self.learn_batch({user_id: state}, [UserEvent(user_id, event, query_vector)])
        return states.get(user_id, state)

    def learn_batch(
        self, states: Mapping[str, UserState], events: Sequence[UserEvent]
    ) -> tuple[dict[str, UserState], int]:
        """Applies events in order as one `learn` after another would (the same result up to the float32 rounding
        of a batched matrix product); returns the new state of every user whose state changed, and how many events
        were applied (already-applied event ids are skipped).

        Each feedback event judges every factor against the fused ranking the user had just before it
        (`weighting.fusion_learning`) and steps the user's and the prior's log-weights. The content factors'
        scores depend only on the user's own profiles, so for the whole batch they come from one pass over the
        catalogue; co-visitation, popularity and freshness are shared signals that every event moves, so they
        are scored in event order.
        """
        config, catalogue = self.config, self.catalogue
        current: dict[str, UserState] = {}
        steps: list[_Step] = []
        for user_id, event, query_vector in events:
            before = current.get(user_id) or states.get(user_id) or self.new_state()
            row = catalogue.index.get(event.item_id) if event.item_id is not None else None
            inputs = EventInputs(
                catalogue.vectors[row] if row is not None else None,
                catalogue.items[row].tags if row is not None else (),
                query_vector,
            )
            after = apply_event(before, event, inputs, config)
            if after is before:
                continue
            strength = config.strengths.of(event.kind, event.value)
            judged_item = row is not None and not (event.kind == "search" and query_vector is not None)
            feedback = self.learn_weights and judged_item and before.n_events > 0 and strength != 0.0
            steps.append(_Step(user_id, event, row, before, strength, feedback))
            current[user_id] = after

        judged = [step for step in steps if step.feedback]
        content = self.scorer.content_scores(
            np.stack([np.stack(content_profiles(step.before, config, step.event.ts)) for step in judged])
            if judged else np.zeros((0, 3, catalogue.dim), np.float32)
        )
        learned = {user_id: (state.log_weights, state.n_feedback) for user_id, state in current.items()}
        for step in steps:
            if step.row is None:
                continue
            first_time = self.fed.first_time(event_fingerprint(step.event.event_id))
            if step.feedback:
                log_weights, n_feedback = learned[step.user_id]
                before = replace(step.before, log_weights=log_weights)
                directions = tilt_directions(before)
                weights = in_effect(served_weights(before, self.prior, directions),
                                    query_presence(before, config, step.event.ts), self.scorer.constant_shared())
                gradient = self._feedback_gradient(step, before, weights, next(content))
                stepped = log_weight_step(log_weights * (1.0 - config.user_shrinkage), gradient, weights,
                                          config.learning_rate, config.gradient_clip)
                learned[step.user_id] = (np.clip(stepped, -USER_LOG_WEIGHT_BOUND, USER_LOG_WEIGHT_BOUND),
                                         n_feedback + 1)
                if first_time:
                    self.prior.update(gradient, weights, directions)
            if first_time:
                self._add_to_shared_signals(step.row, step.event, step.strength, step.before)
        new_states = {
            user_id: replace(state, log_weights=learned[user_id][0], n_feedback=learned[user_id][1])
            for user_id, state in current.items()
        }
        return new_states, len(steps)

    def _feedback_gradient(
        self, step: _Step, before: UserState, weights: npt.NDArray[np.float64], content: ContentScores
    ) -> npt.NDArray[np.float64]:
        """The listwise gradient of one feedback event at the `weights` the user was served.

        An event that is no consumption (a skip) says the user did not want the item: its gradient is negated.
        """
        assert step.row is not None
        config = self.config
        scores = np.zeros((len(FACTORS), len(self.catalogue)))
        scores[content.factors] = content.scores
        signal_scale = self.scorer.signal_scores(anchors_of(before, config), step.event.ts,
                                                 scores[len(content.scale) :])
        candidates = np.ones(len(self.catalogue), dtype=bool)
        candidates[self.scorer.seen_rows(before.seen)] = False
        candidates[step.row] = True
        gradient = listwise_gradient(scores, np.concatenate([content.scale, signal_scale]), weights, candidates,
                                     step.row)
        wanted = config.strengths.interaction(step.event.kind, step.strength) > 0
        return gradient if wanted else -gradient

    def _add_to_shared_signals(self, row: int, event: ProfileEvent, strength: float, before: UserState) -> None:
        strengths = self.config.strengths
        amount = strengths.interaction(event.kind, strength)
        if amount > 0:
            previous = [self.catalogue.index[r.item_id] for r in before.recent
                        if strengths.interaction(r.kind, r.strength) > 0 and r.item_id in self.catalogue.index]
            self.scorer.popularity.add(row, amount, event.ts)
            self.scorer.covisitation.add(row, previous, amount, event.ts)

    def recommend(self, updates: Sequence[WeightUpdate], k: int) -> list[UserRecommendation]:
        return self.scorer.rank(updates, k)
