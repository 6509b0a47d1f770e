"""The whole online model for one partition of users: learn from an event, then rank. Live and replay share it."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from sinks.candidates import CandidateBatch
from sinks.catalogue import Catalogue
from sinks.covisitation import CoVisitation, Transitions
from sinks.decayed_counts import PopularityCounts
from sinks.fed_events import FedEvents
from sinks.recommendation import UserRecommendation
from sinks.scorer import CatalogueScorer, RankingInputs
from sinks.sequence_model import SequenceModel, SequenceSettings
from sinks.shared_increments import JudgedContext, SharedIncrement, increment_fingerprint
from weighting.config import WeightingConfig
from weighting.context import CONTEXT_FEATURES, Context, user_context
from weighting.context_weights import ContextWeights, residual_step
from weighting.experiment import Experiment
from weighting.factors import FACTORS
from weighting.fusion_learning import Weights, feedback_gradient
from weighting.user_state import UserState, Vector
from weighting.user_update import EventInputs, ProfileEvent, apply_event, query_presence
from weighting.weight_update import Anchor, WeightUpdate, anchors_of, content_profiles, in_effect

USER_LOG_WEIGHT_BOUND = 8.0
"""A user's residual logits stay within ±this."""
FED_EVENTS_REMEMBERED = 200_000
"""Events whose ids the shared signals remember, to feed each of them once (`FedEvents`)."""


class UserEvent(NamedTuple):
    """One behaviour event of a user, with its query's vector when it is a search."""

    user_id: str
    event: ProfileEvent
    query_vector: Vector | None = None


@dataclass(frozen=True)
class Judgement:
    """The fused ranking a feedback event was judged against: the user's candidates just before the event, the
    weights served and the context they came from."""

    user_id: str
    event_id: str
    candidates: CandidateBatch
    target: int
    """The event's item among the candidates (−1: not a candidate)."""
    weights: Weights
    context: Context
    standardised: Context
    wanted: bool
    """Whether the event says the user wanted the item (a skip does not)."""
    item_count: float
    """How often the item had been acted on before (decayed popularity count)."""


class LearnedBatch(NamedTuple):
    """What `OnlineModel.learn_batch` gives back: the new state of every user whose state changed, how many events
    were applied, and what they teach the shared signals (to be folded, here or on every worker)."""

    states: dict[str, UserState]
    applied: int
    increments: list[SharedIncrement]


@dataclass(frozen=True)
class _Step:
    """An event that changed its user's state, with the state just before it."""

    user_id: str
    event: ProfileEvent
    row: int | None
    before: UserState
    strength: float
    feedback: bool


def sequence_settings(config: WeightingConfig) -> SequenceSettings:
    return SequenceSettings(
        dim=config.sequence_dim, length=min(config.sequence_length, config.recent_items),
        train_every=config.sequence_train_every, train_steps=config.sequence_train_steps, batch=config.sequence_batch,
        learning_rate=config.sequence_learning_rate, negatives=config.sequence_negatives,
        buffer=config.sequence_buffer, seed=config.seed,
    )


class OnlineModel:
    """Per-user states live with the caller (a Faust table, a dict); shared signals live here."""

    def __init__(
        self, catalogue: Catalogue, config: WeightingConfig | None = None, *, learn_weights: bool = True,
        experiment: Experiment | None = None,
    ) -> None:
        self.config = config or WeightingConfig()
        self.experiment = experiment
        config = self.config
        self.catalogue = catalogue
        self.weights = ContextWeights(len(FACTORS), len(CONTEXT_FEATURES), config.prior_learning_rate,
                                      config.context_learning_rate)
        self.sequence = SequenceModel(catalogue, sequence_settings(config))
        self.scorer = CatalogueScorer(
            catalogue, PopularityCounts(config.popularity_half_life_ms),
            CoVisitation(config.covisit_half_life_ms, config.covisit_span),
            Transitions(config.transition_half_life_ms, config.transition_span), self.sequence,
            depth=config.candidates_per_factor, exclude_seen=config.exclude_seen,
        )
        self.learn_weights = learn_weights
        self.fed = FedEvents(FED_EVENTS_REMEMBERED)

    def new_state(self) -> UserState:
        return UserState.empty(self.catalogue.dim)

    def positive_rows(self, state: UserState) -> list[int]:
        """The catalogue rows of the user's recent consumptions, oldest first (the sequence model's input)."""
        index = self.catalogue.index
        return [index[r.item_id] for r in state.recent if r.strength > 0 and r.item_id in index]

    def weight_update(self, user_id: str, state: UserState, now_ts: int) -> WeightUpdate:
        return self.weight_updates({user_id: (state, now_ts)})[user_id]

    def weight_updates(self, states: Mapping[str, tuple[UserState, int]]) -> dict[str, WeightUpdate]:
        """Each user's WeightUpdate as of their time (event time), the sequence model run once for all."""
        vectors = self.sequence.user_vectors([self.positive_rows(state) for state, _ in states.values()])
        return {user_id: self._update(user_id, state, now_ts, vector)
                for (user_id, (state, now_ts)), vector in zip(states.items(), vectors, strict=True)}

    def _update(self, user_id: str, state: UserState, now_ts: int, sequence: Vector) -> WeightUpdate:
        anchors = anchors_of(state)
        context, _, weights = self._served(state, state.log_weights, now_ts, anchors)
        short_term, long_term, query = content_profiles(state, self.config, now_ts)
        experiment, arm = "", ""
        if self.experiment is not None:
            chosen = self.experiment.arm_of(user_id)
            experiment, arm = self.experiment.id, chosen.name
            weights = chosen.served(weights, query_presence(state, self.config, now_ts), self.scorer.constant_shared())
        return WeightUpdate(
            user_id=user_id, ts=now_ts, version=state.version, weights=weights, short_term=short_term,
            long_term=long_term, query=query, sequence=sequence, anchors=anchors, seen=state.seen, context=context,
            experiment=experiment, arm=arm,
        )

    def _served(self, state: UserState, residual: Weights, now_ts: int, anchors: Sequence[Anchor],
                weights: ContextWeights | None = None) -> tuple[Context, Context, Weights]:
        """The user's context at `now_ts`, standardised, and the weights in effect for it with `residual` (by
        `weights`, the model's own prior and context map unless given)."""
        prior = weights or self.weights
        context = user_context(state, self.config, now_ts, self.scorer.evidence(anchors))
        standardised = prior.standardised(context)
        served = in_effect(prior.weights(residual, standardised),
                           query_presence(state, self.config, now_ts), self.scorer.constant_shared())
        return context, standardised, served

    def learn(
        self, user_id: str, state: UserState, event: ProfileEvent, query_vector: Vector | None = None
    ) -> UserState:
        """Applies one event and folds what it teaches the shared signals at once."""
        learned = self.learn_and_fold({user_id: state}, [UserEvent(user_id, event, query_vector)])
        return learned.states.get(user_id, state)

    def learn_and_fold(
        self, states: Mapping[str, UserState], events: Sequence[UserEvent], judgements: list[Judgement] | None = None
    ) -> LearnedBatch:
        """`learn_batch`, then `fold` of its increments: one worker that is the only writer of its shared signals
        (the replay; the live worker folds what every worker wrote, in the shared log's order)."""
        learned = self.learn_batch(states, events, judgements)
        self.fold(learned.increments)
        return learned

    def learn_batch(
        self, states: Mapping[str, UserState], events: Sequence[UserEvent], judgements: list[Judgement] | None = None
    ) -> LearnedBatch:
        """Applies events in order to their users' states (already-applied event ids are skipped) and returns the
        new states with each applied item event's `SharedIncrement`; the shared signals stay as they are until the
        increments are folded (`fold`). With `judgements`, appends each feedback event's.

        Each feedback event judges the weights by the fused ranking the user had just before it
        (`weighting.fusion_learning`): the user's residual takes a step, and so do the prior and the context map of
        the batch (a copy: their steps travel in the increments), in event order. The rankings are computed at once
        for the batch, from each user's own state just before the event and the shared signals as they were when
        the batch began.
        """
        steps, current = self._steps(states, events)
        judged = [n for n, step in enumerate(steps) if step.feedback]
        inputs = self._inputs([steps[n].before for n in judged], [steps[n].event.ts for n in judged])
        candidates = self.scorer.candidates(inputs) if judged else None
        learned = {user_id: (state.log_weights, state.n_feedback) for user_id, state in current.items()}
        prior = copy.deepcopy(self.weights)
        parts: dict[int, JudgedContext] = {}
        for case, n in enumerate(judged):
            assert candidates is not None
            step = steps[n]
            first_time = not self.fed.knows(increment_fingerprint(step.user_id, step.event.event_id))
            learned[step.user_id], part = self._feedback(step, learned[step.user_id], candidates.of_user(case),
                                                         inputs.anchors[case], prior, first_time=first_time,
                                                         judgements=judgements)
            if part is not None:
                parts[n] = part
        increments = [self._increment(step, parts.get(n)) for n, step in enumerate(steps) if step.row is not None]
        new_states = {
            user_id: replace(state, log_weights=learned[user_id][0], n_feedback=learned[user_id][1])
            for user_id, state in current.items()
        }
        return LearnedBatch(new_states, len(steps), increments)

    def _increment(self, step: _Step, judged: JudgedContext | None) -> SharedIncrement:
        assert step.event.item_id is not None
        return SharedIncrement(
            increment_fingerprint(step.user_id, step.event.event_id), step.event.item_id, step.event.ts,
            max(step.strength, 0.0),
            tuple(self.catalogue.items[row].item_id for row in self.positive_rows(step.before)), judged,
        )

    def check_increment(self, increment: SharedIncrement) -> None:
        """Raises ValueError for an increment this model cannot fold (its context or gradient of other sizes: sent
        by a worker whose model has other factors or context features)."""
        judged = increment.judged
        if judged is None:
            return
        shapes = {"context": (judged.context, len(CONTEXT_FEATURES)),
                  "standardised context": (judged.standardised, len(CONTEXT_FEATURES)),
                  "gradient": (judged.gradient, len(FACTORS))}
        for name, (values, size) in shapes.items():
            if values is not None and values.shape != (size,):
                raise ValueError(f"its {name} has {values.size} values, this model {size}")

    def fold(self, increments: Iterable[SharedIncrement]) -> int:
        """Adds increments to the shared signals in order, each event once (`FedEvents`): its context to the
        context moments and its gradient to the prior and context map, and a consumption to popularity,
        co-visitation, transitions and the sequence model's examples. Returns how many were new."""
        index, new = self.catalogue.index, 0
        for increment in increments:
            if not self.fed.first_time(increment.fingerprint):
                continue
            new += 1
            judged = increment.judged
            if judged is not None:
                self.weights.observe(judged.context)
                if judged.gradient is not None:
                    self.weights.step(judged.gradient, judged.standardised)
            row = index.get(increment.item_id)
            if increment.amount <= 0 or row is None:
                continue
            previous = [index[item_id] for item_id in increment.previous if item_id in index]
            ts, scorer = increment.ts, self.scorer
            scorer.popularity.add(row, increment.amount, ts)
            scorer.covisitation.add(row, previous, increment.amount, ts)
            scorer.transitions.add(row, previous, increment.amount, ts)
            self.sequence.learn(previous, row)
        return new

    def _steps(self, states: Mapping[str, UserState], events: Sequence[UserEvent]) -> tuple[list[_Step],
                                                                                           dict[str, UserState]]:
        """The events that change their user's state, in order, each with the state before it."""
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
        return steps, current

    def _inputs(self, states: Sequence[UserState], times: Sequence[int]) -> RankingInputs:
        """The ranking inputs of states at their times, one case each (ranked as of the latest time)."""
        config = self.config
        profiles = np.zeros((len(states), 3, self.catalogue.dim), np.float32)
        for n, (state, ts) in enumerate(zip(states, times, strict=True)):
            profiles[n] = np.stack(content_profiles(state, config, ts))
        users, rows = self.scorer.excluded_rows([state.seen for state in states])
        anchors = [anchors_of(state) for state in states]
        sequence = self.sequence.user_vectors([self.positive_rows(state) for state in states])
        return RankingInputs(profiles, sequence, anchors, users, rows, max(times, default=0))

    def _feedback(
        self, step: _Step, learned: tuple[Weights, int], batch: CandidateBatch, anchors: Sequence[Anchor],
        prior: ContextWeights, *, first_time: bool, judgements: list[Judgement] | None,
    ) -> tuple[tuple[Weights, int], JudgedContext | None]:
        """Judges one feedback event by the user's candidates just before it (`batch`, of one user) and the weights
        served then by `prior`; steps the user's residual, and `prior` the first time the event is fed (that step
        is returned, for the shared signals)."""
        assert step.row is not None
        config = self.config
        residual, n_feedback = learned
        context, standardised, weights = self._served(step.before, residual, step.event.ts, anchors, prior)
        found = int(np.searchsorted(batch.rows, step.row))
        target = found if found < len(batch.rows) and batch.rows[found] == step.row else -1
        wanted = step.strength > 0
        if judgements is not None:
            count = float(self.scorer.popularity.at(np.array([step.row]))[0])
            judgements.append(Judgement(step.user_id, step.event.event_id, batch, target, weights, context,
                                        standardised, wanted, count))
        if first_time:
            prior.observe(context)
        if target < 0:
            return (residual, n_feedback + 1), JudgedContext(context, standardised, None) if first_time else None
        gradient = feedback_gradient(batch.calibrated, weights, target, config.fusion_sharpness, wanted)
        if first_time:
            prior.step(gradient, standardised)
        stepped = residual_step(residual, gradient, config.learning_rate, config.user_shrinkage,
                                USER_LOG_WEIGHT_BOUND)
        return (stepped, n_feedback + 1), JudgedContext(context, standardised, gradient) if first_time else None

    def recommend(self, updates: Sequence[WeightUpdate], k: int) -> list[UserRecommendation]:
        return self.scorer.rank(updates, k)
