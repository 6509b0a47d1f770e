"""The whole online model for one partition of users: learn from an event, then rank. Live and replay share it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from sinks.catalogue import Catalogue
from sinks.covisitation import CoVisitation
from sinks.decayed_counts import PopularityCounts
from sinks.recommendation import UserRecommendation
from sinks.scorer import CatalogueScorer
from weighting.config import DAY_MS, WeightingConfig
from weighting.global_prior import GlobalPrior
from weighting.user_state import UserState, Vector
from weighting.user_update import EventInputs, ProfileEvent, apply_event
from weighting.weight_update import WeightUpdate, weight_update_for


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
        self,
        user_id: str,
        state: UserState,
        event: ProfileEvent,
        query_vector: Vector | None = None,
        scores: torch.Tensor | None = None,
    ) -> UserState:
        """Applies one event: the feedback step (ranks before the event), the profiles, the shared signals.

        `scores` are the user's factor scores before the event, when the caller already computed them.
        """
        if event.event_id in state.applied_event_ids:
            return state
        item_vector: Vector | None = None
        tags: tuple[str, ...] = ()
        ranks = None
        row = self.catalogue.index.get(event.item_id) if event.item_id is not None else None
        if row is not None and event.item_id is not None:
            item_vector = self.catalogue.vectors[row]
            tags = self.catalogue.items[row].tags
            if self.learn_weights and state.n_events:
                update = self.weight_update(user_id, state, event.ts)
                ranks = self.scorer.rank_losses(update, event.item_id, scores)
        inputs = EventInputs(item_vector, tags, query_vector, ranks)
        new_state, losses = apply_event(state, event, inputs, self.config)
        if losses is not None:
            self.prior.update(losses)
        if row is not None:
            strengths = self.config.strengths
            amount = strengths.interaction(event.kind, strengths.of(event.kind, event.value))
            previous = [self.catalogue.index[r.item_id] for r in state.recent
                        if strengths.interaction(r.kind, r.strength) > 0 and r.item_id in self.catalogue.index]
            if amount > 0:
                self.scorer.popularity.add(row, amount, event.ts)
                self.scorer.covisitation.add(row, previous, amount, event.ts)
        return new_state

    def recommend(self, updates: Sequence[WeightUpdate], k: int) -> list[UserRecommendation]:
        return self.scorer.rank(updates, k)

    def prior_weights(self) -> npt.NDArray[np.float64]:
        return self.prior.weights()
