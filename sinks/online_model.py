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
from sinks.recommendation import UserRecommendation
from sinks.scorer import CatalogueScorer, scaled_ranks
from weighting.config import DAY_MS, WeightingConfig
from weighting.global_prior import GlobalPrior
from weighting.hedge import hedge_step, rank_losses
from weighting.user_state import UserState, Vector
from weighting.user_update import EventInputs, ProfileEvent, apply_event
from weighting.weight_update import WeightUpdate, anchors_of, content_profiles, weight_update_for


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
        popularity_half_life_ms: float = 7 * DAY_MS,
        covisit_half_life_ms: float = 60 * DAY_MS,
        covisit_span: int = 20,
        learn_weights: bool = True,
    ) -> None:
        self.config = config or WeightingConfig()
        self.catalogue = catalogue
        self.prior = GlobalPrior(self.config.prior_smoothing, self.config.prior_temperature)
        self.scorer = CatalogueScorer(
            catalogue, PopularityCounts(popularity_half_life_ms), CoVisitation(covisit_half_life_ms, covisit_span),
        )
        self.learn_weights = learn_weights

    def new_state(self) -> UserState:
        return UserState.empty(self.catalogue.dim)

    def weight_update(self, user_id: str, state: UserState, now_ts: int) -> WeightUpdate:
        return weight_update_for(user_id, state, self.prior.weights(), self.config, now_ts)

    def learn(
        self, user_id: str, state: UserState, event: ProfileEvent, query_vector: Vector | None = None
    ) -> UserState:
        """Applies one event; `learn_batch` with a single event."""
        states, _ = self.learn_batch({user_id: state}, [UserEvent(user_id, event, query_vector)])
        return states.get(user_id, state)

    def learn_batch(
        self, states: Mapping[str, UserState], events: Sequence[UserEvent]
    ) -> tuple[dict[str, UserState], int]:
        """Applies events in order, exactly as one `learn` after another would; returns the new state of every
        user whose state changed, and how many events were applied (already-applied event ids are skipped).

        Each event's feedback step judges every factor by where it ranked the event's item just before the
        event. The content factors depend only on the user's own profiles, so their ranks for the whole batch
        come from one pass over the catalogue; co-visitation, popularity and freshness are shared signals that
        every event moves, so they are ranked in event order.
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
            after, _ = apply_event(before, event, inputs, config)
            if after is before:
                continue
            strength = config.strengths.of(event.kind, event.value)
            judged_item = row is not None and not (event.kind == "search" and query_vector is not None)
            feedback = self.learn_weights and judged_item and before.n_events > 0 and strength != 0.0
            steps.append(_Step(user_id, event, row, before, strength, feedback))
            current[user_id] = after

        judged = [step for step in steps if step.feedback]
        seen_rows = [self.scorer.seen_rows(step.before.seen) for step in judged]
        content = self.scorer.content_ranks(
            np.stack([np.stack(content_profiles(step.before, config, step.event.ts)) for step in judged])
            if judged else np.zeros((0, 3, catalogue.dim), np.float32),
            seen_rows, [step.row for step in judged if step.row is not None],
        )
        learned = {user_id: (state.log_weights, state.n_feedback) for user_id, state in current.items()}
        ranked = iter(zip(content, seen_rows, strict=True))
        for step in steps:
            if step.row is None:
                continue
            event, before = step.event, step.before
            if step.feedback:
                content_rank, seen = next(ranked)
                signals = self.scorer.signal_ranks(anchors_of(before, config), seen, step.row, event.ts)
                n_candidates = len(catalogue) - len(seen) - int(event.item_id not in before.seen)
                ranks = scaled_ranks(np.concatenate([content_rank, signals]), n_candidates)
                losses = rank_losses(ranks, step.strength)
                log_weights, n_feedback = learned[step.user_id]
                learned[step.user_id] = (hedge_step(log_weights, losses, config.learning_rate), n_feedback + 1)
                self.prior.update(losses)
            self._add_to_shared_signals(step.row, event, step.strength, before)
        new_states = {
            user_id: replace(state, log_weights=learned[user_id][0], n_feedback=learned[user_id][1])
            for user_id, state in current.items()
        }
        return new_states, len(steps)

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

    def prior_weights(self) -> npt.NDArray[np.float64]:
        return self.prior.weights()
