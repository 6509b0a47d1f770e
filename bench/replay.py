"""Prequential replay: before each sampled event, rank for that user and score the hit; then learn the event.

Runs the same `weighting/` and `sinks/` code as the live pipeline (through `sinks.online_model.OnlineModel`),
in-process and without a broker. Baselines share the model's factor scores, so they differ only in weights.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from bench.metrics import MethodMetrics, ranks_of_target
from bench.static_tuning import RANDOM_CANDIDATES, candidate_hit_rates, candidate_hits, candidate_weights
from bench.weight_ceiling import CeilingSamples
from encoders.text_encoder import TextEncoder
from encoders.vector_cache import VectorCache
from sinks.catalogue import Catalogue
from sinks.online_model import OnlineModel
from streams.catalogue_data import upsert_items
from streams.events import BehaviorEvent, Item
from weighting.config import WeightingConfig
from weighting.factors import FACTORS
from weighting.user_state import UserState
from weighting.user_update import interest_drift, interest_entropy
from weighting.weight_update import WeightUpdate

STATIC, DYNAMIC = "static fusion (tuned)", "dynamic (driftrec)"


@dataclass(frozen=True)
class ReplayOptions:
    k: int = 10
    sample: float = 0.2
    tune_share: float = 0.2
    max_tuning_samples: int = 3000
    seed: int = 0
    progress: bool = True


@dataclass
class ReplayResult:
    metrics: dict[str, dict[str, float]]
    static_weights: dict[str, float]
    tuning_hr: float
    tuning_factor_hr: dict[str, float]
    """Each single factor's HR@k on the tuning part: what choices of a factor's form may be judged by."""
    learned_prior: dict[str, float]
    """The dynamic model's global prior at the end: weights summing to 1, and the learned tilt strengths."""
    events: int
    seconds: float
    weight_history: dict[str, list[tuple[int, list[float]]]] = field(default_factory=dict)
    hits: dict[str, list[str]] = field(default_factory=dict)
    """Per method, the ids of the evaluated events that were hits (for analyses such as drift recovery)."""
    ceiling: dict[str, float] = field(default_factory=dict)
    """What fixed or context-dependent weights could reach on the evaluation part (`bench.weight_ceiling`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "static_weights": self.static_weights, "tuning_hr": self.tuning_hr,
                "tuning_factor_hr": self.tuning_factor_hr,
                "learned_prior": self.learned_prior, "ceiling": self.ceiling,
                "events": self.events, "seconds": self.seconds, "ms_per_event": 1000 * self.seconds / self.events,
                "weight_history": self.weight_history}


def build_catalogue(items: Sequence[Item], encoder: TextEncoder, cache: VectorCache | None) -> Catalogue:
    catalogue = Catalogue(encoder.dim)
    upsert_items(catalogue, items, encoder, cache, progress=True)
    return catalogue


def replay(
    catalogue: Catalogue,
    events: Sequence[BehaviorEvent],
    options: ReplayOptions,
    config: WeightingConfig | None = None,
    tracked_users: Sequence[str] = (),
) -> ReplayResult:
    """Runs the prequential protocol; the static fusion is tuned on the first `tune_share` of events only, and the
    dynamic model's prior starts from the tuned weights there (a warm start from the same data)."""
    started = time.monotonic()
    model = OnlineModel(catalogue, config)
    rng = random.Random(options.seed)
    split = int(len(events) * options.tune_share)
    names = [*FACTORS, STATIC, DYNAMIC]
    metrics = {name: MethodMetrics(options.k) for name in names}
    weights = torch.zeros(len(names), len(FACTORS))
    weights[: len(FACTORS)] = torch.eye(len(FACTORS))
    tuning: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    candidates = candidate_weights(len(FACTORS), RANDOM_CANDIDATES, options.seed)
    ceiling = CeilingSamples()
    tuned, best, tuning_rates = False, len(FACTORS), torch.zeros(len(candidates))
    states: dict[str, UserState] = {}
    hits: dict[str, list[str]] = {}
    history: dict[str, list[tuple[int, list[float]]]] = {user: [] for user in tracked_users}
    for index, event in enumerate(tqdm(events, disable=not options.progress, unit=" events", mininterval=2)):
        if index >= split and not tuned:
            if tuning:  # else the uniform candidate
                tuning_rates = candidate_hit_rates(tuning, options.k, candidates)
                best = int(tuning_rates.argmax())
            weights[len(FACTORS)] = candidates[best]
            model.prior.start_from(candidates[best].double().numpy())
            tuned, tuning = True, []
        state = states.get(event.user_id) or model.new_state()
        row = catalogue.index.get(event.item_id) if event.item_id else None
        if row is not None and state.n_events and rng.random() < options.sample:
            update = model.weight_update(event.user_id, state, event.ts)
            scores = model.scorer.factor_scores([update])[0]
            seen = model.scorer.seen_mask([update])[0]
            if index < split:
                if len(tuning) < options.max_tuning_samples:
                    tuning.append((scores.half(), seen, row))
            else:
                weights[-1] = torch.from_numpy(update.weights).float()
                fused = weights @ scores
                ranks = ranks_of_target(fused, seen, row).tolist()
                tops = fused.masked_fill(seen.unsqueeze(0), float("-inf")).topk(options.k, dim=1).indices.tolist()
                for name, rank, top in zip(names, ranks, tops, strict=True):
                    metrics[name].add(int(rank), top)
                    if rank < options.k:
                        hits.setdefault(name, []).append(event.event_id)
                context = (event.ts - state.last_ts, state.n_events, interest_entropy(state), interest_drift(state))
                ceiling.add(candidate_hits(candidates, scores, seen, row, options.k).numpy(), context)
            if event.user_id in history:
                history[event.user_id].append((event.ts, update.weights.round(4).tolist()))
        states[event.user_id] = model.learn(event.user_id, state, event.profile_event())
    return ReplayResult(
        metrics={name: m.summary(len(catalogue)) for name, m in metrics.items()},
        static_weights={f: round(float(w), 4) for f, w in zip(FACTORS, weights[len(FACTORS)], strict=True)},
        tuning_hr=round(float(tuning_rates[best]), 4),
        tuning_factor_hr={f: round(float(hr), 4) for f, hr in zip(FACTORS, tuning_rates[: len(FACTORS)], strict=True)},
        learned_prior=learned_prior(model), events=len(events),
        seconds=time.monotonic() - started, weight_history=history,
        hits=hits, ceiling=ceiling.report(best),
    )


def learned_prior(model: OnlineModel) -> dict[str, float]:
    entropy, drift = model.prior.tilt_strengths
    return {**{f: round(float(w), 4) for f, w in zip(FACTORS, model.prior.weights(), strict=True)},
            "entropy_tilt": round(float(entropy), 4), "drift_tilt": round(float(drift), 4)}


def format_table(result: ReplayResult, k: int) -> str:
    header = (f"{'method':28s} {'HR@' + str(k):>8s} {'NDCG@' + str(k):>9s} {'MRR@' + str(k):>8s} "
              f"{'coverage':>9s} {'n':>7s}")
    lines = [header, "-" * len(header)]
    for name, m in result.metrics.items():
        lines.append(f"{name:28s} {m[f'HR@{k}']:8.4f} {m[f'NDCG@{k}']:9.4f} {m[f'MRR@{k}']:8.4f} "
                     f"{m['coverage']:9.4f} {int(m['evaluations']):7d}")
    return "\n".join(lines)


def recommendation_trace(
    catalogue: Catalogue, events: Sequence[BehaviorEvent], k: int, config: WeightingConfig | None = None
) -> list[tuple[str, list[str]]]:
    """After each event, the acting user's top-k item ids: what the live pipeline emits with one-event windows.

    The WeightUpdate goes through its wire codec (float16 vectors), exactly as it travels on the weights topic.
    """
    model = OnlineModel(catalogue, config)
    states: dict[str, UserState] = {}
    trace = []
    for event in events:
        state = model.learn(
            event.user_id, states.get(event.user_id) or model.new_state(),
            event.profile_event(),
        )
        states[event.user_id] = state
        update = WeightUpdate.from_json(model.weight_update(event.user_id, state, event.ts).to_json())
        [recommendation] = model.recommend([update], k)
        trace.append((event.event_id, [item.item_id for item in recommendation.items]))
    return trace
