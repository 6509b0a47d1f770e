"""Prequential replay: before each event, the user's ranking is judged; then the model learns the event.

Runs the same `weighting/` and `sinks/` code as the live pipeline (`sinks.online_model.OnlineModel.learn_batch`,
batches of `block` events, as a worker takes batches). Every feedback event's judged ranking (the user's candidates
and calibrated factor scores just before it) is what every method is evaluated on: each single factor, the static
fusion tuned on the first part of the log only, the dynamic model's served weights, and ablations of the dynamic
weights learned side by side (`replay.fusion_arms`); so every comparison is paired on the same events.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from encoders.text_encoder import TextEncoder
from encoders.vector_cache import VectorCache
from replay.fusion_arms import default_arms
from replay.paired_stats import paired_differences
from replay.static_tuning import RankingSamples, tune_static
from replay.weight_ceiling import CeilingSamples
from sinks.catalogue import Catalogue
from sinks.online_model import Judgement, OnlineModel, UserEvent
from streams.catalogue_data import upsert_items
from streams.events import EXPOSURE_KINDS, BehaviorEvent, Item
from weighting.config import WeightingConfig
from weighting.context import CONTEXT_FEATURES
from weighting.experiment import Experiment
from weighting.factors import FACTORS, Factor
from weighting.user_state import UserState, Vector
from weighting.weight_update import WeightUpdate

STATIC, DYNAMIC = "static fusion (tuned)", "dynamic (driftrec)"
MISS = math.inf
SEARCH_RECENCY = CONTEXT_FEATURES.index("search_recency")
QUERY_CHUNK = 1024
"""Distinct search queries encoded per call."""


@dataclass(frozen=True)
class ReplayOptions:
    k: int = 10
    sample: float = 1.0
    """Share of the events after the tuning part that are evaluated (seeded)."""
    tune_share: float = 0.2
    max_tuning_samples: int = 3000
    seed: int = 0
    block: int = 128
    """Events per `learn_batch` call (a worker's batch)."""
    resamples: int = 1000
    cold_below: int = 5
    """An evaluated event is a cold-start event when its item had fewer interactions than this before it."""
    progress: bool = True


@dataclass
class ReplayResult:
    metrics: dict[str, dict[str, float]]
    paired: dict[str, dict[str, Any]]
    """The dynamic model against each other method on the same events (`replay.paired_stats`)."""
    cold_start: dict[str, dict[str, float]]
    static_weights: dict[str, float]
    tuning_hr: float
    learned: dict[str, Any]
    events: int
    seconds: float
    evaluated_ids: list[str] = field(default_factory=list)
    hits: dict[str, list[str]] = field(default_factory=dict)
    """Per method, the ids of the evaluated events that were hits."""
    ceiling: dict[str, float] = field(default_factory=dict)
    weight_history: dict[str, list[tuple[int, list[float]]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "paired": self.paired, "cold_start": self.cold_start,
                "static_weights": self.static_weights, "tuning_hr": self.tuning_hr, "learned": self.learned,
                "ceiling": self.ceiling, "events": self.events, "seconds": self.seconds,
                "ms_per_event": 1000 * self.seconds / max(self.events, 1), "evaluated_ids": self.evaluated_ids,
                "hits": self.hits,
                "weight_history": self.weight_history}


def query_vectors(events: Sequence[BehaviorEvent], encoder: TextEncoder) -> dict[str, Vector]:
    """The vector of every search's query by event id, as the encoded topic carries it to the weigh stage (float16),
    each distinct query encoded once."""
    searches = {event.event_id: event.query for event in events if event.kind == "search" and event.query}
    distinct = list(dict.fromkeys(searches.values()))
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    for start in range(0, len(distinct), QUERY_CHUNK):
        chunk = distinct[start : start + QUERY_CHUNK]
        vectors.update(zip(chunk, encoder.encode(chunk).astype(np.float16).astype(np.float32), strict=True))
    return {event_id: vectors[query] for event_id, query in searches.items()}


def user_events(events: Sequence[BehaviorEvent], queries: Mapping[str, Vector]) -> list[UserEvent]:
    """The events as the weigh stage gets them: each search with its query's vector, exposures left out."""
    return [UserEvent(e.user_id, e.profile_event(), queries.get(e.event_id)) for e in events
            if e.kind not in EXPOSURE_KINDS]


def build_catalogue(items: Sequence[Item], encoder: TextEncoder, cache: VectorCache | None) -> Catalogue:
    catalogue = Catalogue(encoder.dim)
    upsert_items(catalogue, items, encoder, cache, progress=True)
    return catalogue


@dataclass
class MethodRanks:
    """Each method's 0-based rank of the acted-on item (MISS when outside its list) and top rows, per event."""

    k: int
    ranks: dict[str, list[float]] = field(default_factory=dict)
    recommended: dict[str, set[int]] = field(default_factory=dict)

    def add(self, name: str, rank: float, top_rows: npt.NDArray[np.int64]) -> None:
        self.ranks.setdefault(name, []).append(rank)
        self.recommended.setdefault(name, set()).update(top_rows.tolist())

    def hit_matrix(self, names: Sequence[str]) -> npt.NDArray[np.bool_]:
        return np.array([np.asarray(self.ranks[name]) < self.k for name in names])

    def summary(self, name: str, n_items: int, mask: npt.NDArray[np.bool_] | None = None) -> dict[str, float]:
        ranks = np.asarray(self.ranks[name])
        ranks = ranks if mask is None else ranks[mask]
        hit = ranks < self.k
        n = max(len(ranks), 1)
        return {f"HR@{self.k}": float(hit.sum() / n),
                f"NDCG@{self.k}": float((1.0 / np.log2(ranks[hit] + 2)).sum() / n),
                f"MRR@{self.k}": float((1.0 / (ranks[hit] + 1)).sum() / n),
                "coverage": len(self.recommended[name]) / max(n_items, 1), "evaluations": len(ranks)}


def fused_ranks(calibrated: npt.NDArray[np.float32], weights: npt.NDArray[np.float64], target: int, k: int,
                rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """For each fusion (rows of `weights`): the target's 0-based rank (ties count half, rounded down; MISS for
    −1) and the top k rows (fusions × k, in no order)."""
    fused = calibrated @ np.atleast_2d(weights).T.astype(np.float32)  # candidates × fusions
    top = rows[np.argpartition(-fused, k, axis=0)[:k].T] if len(fused) > k else np.tile(rows, (fused.shape[1], 1))
    if target < 0:
        return np.full(fused.shape[1], MISS), top
    at_target = fused[target]
    above = (fused > at_target).sum(axis=0)
    ties = (fused == at_target).sum(axis=0) - 1
    return np.floor(above + 0.5 * ties), top


def query_scaled(judgement: Judgement) -> npt.NDArray[np.float32]:
    """The judged scores with the query factor's scaled by how much the user's last search still counts (as the
    model's own weights are), so that fixed weights rank the same way."""
    scaled = judgement.candidates.calibrated.copy()
    scaled[:, Factor.QUERY] *= judgement.context[SEARCH_RECENCY]
    return scaled


def replay(
    catalogue: Catalogue,
    events: Sequence[BehaviorEvent],
    options: ReplayOptions,
    config: WeightingConfig | None = None,
    *,
    tracked_users: Sequence[str] = (),
    queries: Mapping[str, Vector] | None = None,
    experiment: Experiment | None = None,
) -> ReplayResult:
    """Runs the prequential protocol (see the module docstring); the static fusion is tuned on judged rankings of
    the first `tune_share` of events only, and the dynamic model learns from the first event on, as live. `queries`
    are the searches' vectors by event id (`query_vectors`); a search without one leaves the query factor as it
    was. Each arm of `experiment` is evaluated on every evaluated event (`arm <name>`): the counterfactual view,
    beside the live experiment's split of the users."""
    started = time.monotonic()
    config = replace(config or WeightingConfig(), seed=options.seed)
    model = OnlineModel(catalogue, config)
    arms = default_arms(config)
    rng = random.Random(options.seed)
    split = int(len(events) * options.tune_share)
    position: dict[str, int] = {}
    for index, event in enumerate(events):
        position.setdefault(event.event_id, index)
    ranks = MethodRanks(options.k)
    tuning: list[tuple[npt.NDArray[np.float32], int]] = []
    seen_for_tuning = 0
    static: npt.NDArray[np.float64] | None = None
    tuning_hr = 0.0
    ceiling = CeilingSamples(rng=random.Random(options.seed + 1))
    evaluated_ids: list[str] = []
    cold: list[bool] = []
    item_counts: Counter[str] = Counter()
    states: dict[str, UserState] = {}
    history: dict[str, list[tuple[int, list[float]]]] = {user: [] for user in tracked_users}
    progress = tqdm(total=len(events), disable=not options.progress, unit=" events", mininterval=2)
    for start in range(0, len(events), options.block):
        block = events[start : start + options.block]
        counts_before: dict[str, float] = {}
        for event in block:
            if event.item_id is not None:
                counts_before.setdefault(event.event_id, item_counts[event.item_id])
                item_counts[event.item_id] += 1
        judgements: list[Judgement] = []
        learned = model.learn_and_fold(states, user_events(block, queries or {}), judgements)
        states.update(learned.states)
        for judgement in judgements:
            index = position[judgement.event_id]
            if judgement.user_id in history:
                history[judgement.user_id].append((index, judgement.weights.round(4).tolist()))
            arm_weights = [arm.served(judgement) for arm in arms]
            evaluate = index >= split and rng.random() < options.sample
            if index < split:
                seen_for_tuning += 1
                _reservoir(tuning, (query_scaled(judgement), judgement.target), seen_for_tuning,
                           options.max_tuning_samples, rng)
            elif static is None:
                static, tuning_hr = tune_static(RankingSamples.of(tuning), options.k, len(FACTORS), options.seed)
            if evaluate and judgement.wanted:
                assert static is not None
                twin = [(f"arm {arm.name}", arm.served(judgement.weights, float(judgement.context[SEARCH_RECENCY])))
                        for arm in (experiment.arms if experiment else ())]
                _evaluate(ranks, judgement, static, arms=arms, arm_weights=arm_weights, twin=twin, k=options.k)
                ceiling.add(query_scaled(judgement), judgement.target, judgement.context,
                            ranks.ranks[DYNAMIC][-1] < options.k)
                evaluated_ids.append(judgement.event_id)
                cold.append(counts_before.get(judgement.event_id, 0) < options.cold_below)
            for arm, weights in zip(arms, arm_weights, strict=True):
                arm.learn(judgement, weights)
        progress.update(len(block))
    progress.close()
    return _result(ranks, evaluated_ids, np.asarray(cold, bool), static=static, tuning_hr=tuning_hr, model=model,
                   ceiling=ceiling, options=options, n_events=len(events), seconds=time.monotonic() - started,
                   history=history)


def _reservoir(samples: list[Any], sample: Any, seen: int, capacity: int, rng: random.Random) -> None:
    """Keeps a uniform sample of at most `capacity` of the `seen` items offered so far (Algorithm R)."""
    if len(samples) < capacity:
        samples.append(sample)
    elif (slot := rng.randrange(seen)) < capacity:
        samples[slot] = sample


def _evaluate(ranks: MethodRanks, judgement: Judgement, static: npt.NDArray[np.float64], *, arms: Sequence[Any],
              arm_weights: Sequence[npt.NDArray[np.float64]], twin: Sequence[tuple[str, npt.NDArray[np.float64]]],
              k: int) -> None:
    candidates, target = judgement.candidates, judgement.target
    listed = candidates.list_position
    for f, name in enumerate(FACTORS):
        in_top = np.flatnonzero(listed[:, f] < k)
        ranks.add(name, float(listed[target, f]) if target >= 0 else MISS, candidates.rows[in_top])
    scaled_static = static.copy()
    scaled_static[Factor.QUERY] *= judgement.context[SEARCH_RECENCY]
    names = [STATIC, DYNAMIC, *(arm.spec.name for arm in arms), *(name for name, _ in twin)]
    method_ranks, tops = fused_ranks(
        candidates.calibrated, np.stack([scaled_static, judgement.weights, *arm_weights, *(w for _, w in twin)]),
        target, k, candidates.rows)
    for name, rank, top in zip(names, method_ranks.tolist(), tops, strict=True):
        ranks.add(name, rank, top)


def _result(ranks: MethodRanks, evaluated_ids: list[str], cold: npt.NDArray[np.bool_], *,
            static: npt.NDArray[np.float64] | None, tuning_hr: float, model: OnlineModel, ceiling: CeilingSamples,
            options: ReplayOptions, n_events: int, seconds: float,
            history: dict[str, list[tuple[int, list[float]]]]) -> ReplayResult:
    names = list(ranks.ranks)
    n_items = len(model.catalogue)
    hits = ranks.hit_matrix(names) if names else np.zeros((0, 0), bool)
    paired = {}
    if DYNAMIC in names:
        others = [name for name in names if name != DYNAMIC]
        differences = paired_differences(hits[names.index(DYNAMIC)], hits[[names.index(n) for n in others]],
                                         options.resamples, options.seed)
        paired = {name: d.to_dict() for name, d in zip(others, differences, strict=True)}
    weights = model.weights
    return ReplayResult(
        metrics={name: ranks.summary(name, n_items) for name in names},
        paired=paired,
        cold_start={name: ranks.summary(name, n_items, cold) for name in names} if cold.any() else {},
        static_weights={} if static is None else {f: round(float(w), 4) for f, w in zip(FACTORS, static,
                                                                                        strict=True)},
        tuning_hr=round(tuning_hr, 4),
        learned={"prior": {f: round(float(w), 4) for f, w in zip(FACTORS, weights.prior(), strict=True)},
                 "context_map": {f: {c: round(float(a), 4) for c, a in zip(CONTEXT_FEATURES, row, strict=True)}
                                 for f, row in zip(FACTORS, weights.context_map, strict=True)},
                 "sequence_steps": model.sequence.steps},
        events=n_events, seconds=seconds, evaluated_ids=evaluated_ids,
        hits={name: [evaluated_ids[i] for i in np.flatnonzero(hits[n])] for n, name in enumerate(names)},
        ceiling=ceiling.report(static, options.k) if static is not None else {},
        weight_history=history,
    )


def format_table(result: ReplayResult, k: int) -> str:
    header = (f"{'method':40s} {'HR@' + str(k):>8s} {'NDCG@' + str(k):>9s} {'MRR@' + str(k):>8s} "
              f"{'coverage':>9s} {'n':>7s}  {'dynamic − method, 95% interval':>32s} {'ratio':>6s}")
    lines = [header, "-" * len(header)]
    for name, m in result.metrics.items():
        paired = result.paired.get(name)
        versus = (f"{paired['difference']:+.4f} [{paired['difference_interval'][0]:+.4f}, "
                  f"{paired['difference_interval'][1]:+.4f}] {paired['ratio']:6.3f}") if paired else ""
        lines.append(f"{name:40s} {m[f'HR@{k}']:8.4f} {m[f'NDCG@{k}']:9.4f} {m[f'MRR@{k}']:8.4f} "
                     f"{m['coverage']:9.4f} {int(m['evaluations']):7d}  {versus:>39s}")
    return "\n".join(lines)


def recommendation_trace(
    catalogue: Catalogue, events: Sequence[BehaviorEvent], k: int, config: WeightingConfig | None = None, *,
    queries: Mapping[str, Vector] | None = None,
) -> list[tuple[str, list[str]]]:
    """After each event, the acting user's top-k item ids: what the live pipeline emits with one-event windows.

    The WeightUpdate goes through its wire codec (float16 vectors), exactly as it travels on the weights topic.
    """
    model = OnlineModel(catalogue, config)
    states: dict[str, UserState] = {}
    trace = []
    for event, user_event in zip(events, user_events(events, queries or {}), strict=True):
        state = model.learn(event.user_id, states.get(event.user_id) or model.new_state(), user_event.event,
                            user_event.query_vector)
        states[event.user_id] = state
        update = replace(WeightUpdate.from_json(model.weight_update(event.user_id, state, event.ts).to_json()),
                         seen=state.seen)
        [recommendation] = model.recommend([update], k)
        trace.append((event.event_id, [item.item_id for item in recommendation.items]))
    return trace
