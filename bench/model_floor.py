"""The model's arithmetic for a backlog, timed bare: the events/s a worker could reach if it did nothing else.

Per backlog: the configured encoder on the distinct search queries (batches of `encoder_batch_size`, no cache);
per feedback event (an event on an item after the user's first), one product of each nonzero content profile with
the catalogue matrix (short- and long-term, and the query once the user has searched); per recommendation list,
one product of a user vector with the catalogue matrix and a top-k. Products run in batches of 256 on random
vectors of the encoder's dimension (their cost does not depend on the values), on the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.stage_ceilings import best_of
from encoders.backends import make_encoder
from streams.events import BehaviorEvent
from streams.settings import Settings

BATCH = 256


@dataclass(frozen=True)
class FeedbackWork:
    """How many content-profile products with the catalogue the backlog's feedback events need."""

    events: int
    profiles: int

    @classmethod
    def of(cls, events: Sequence[BehaviorEvent]) -> FeedbackWork:
        """Counts, in log order, the events on an item after each user's first, and their nonzero profiles."""
        seen: set[str] = set()
        searched: set[str] = set()
        feedback = profiles = 0
        for event in events:
            if event.item_id is not None and event.user_id in seen:
                feedback += 1
                profiles += 3 if event.user_id in searched else 2
            if event.kind == "search":
                searched.add(event.user_id)
            seen.add(event.user_id)
        return cls(feedback, profiles)


@dataclass(frozen=True)
class ModelFloor:
    """Bare seconds for each part of a backlog's arithmetic."""

    queries: int
    encode_s: float
    feedback: FeedbackWork
    feedback_s: float
    rank_s_per_list: float

    def events_per_s(self, n_events: int, lists: int) -> float:
        return n_events / (self.encode_s + self.feedback_s + lists * self.rank_s_per_list)

    def describe(self, n_events: int, lists: int, n_items: int, backend: str) -> str:
        return (f"model arithmetic floor: {self.events_per_s(n_events, lists):,.0f} events/s (bare, this run: "
                f"{self.queries} distinct queries encoded [{backend}] in {self.encode_s:.1f}s; "
                f"{self.feedback.profiles} profile products for {self.feedback.events} feedback events in "
                f"{self.feedback_s:.1f}s; {lists} ranking products + top-k in {lists * self.rank_s_per_list:.1f}s, "
                f"each against {n_items} items)")


def measure(settings: Settings, events: Sequence[BehaviorEvent], n_items: int) -> ModelFloor:
    encoder = make_encoder(settings.encoder_model, settings.encoder_backend, "cpu", settings.encoder_batch_size,
                           Path(settings.data_dir))
    queries = list(dict.fromkeys(event.query for event in events if event.kind == "search" and event.query))
    encoder.encode(queries[: settings.encoder_batch_size])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(queries), settings.encoder_batch_size):
        encoder.encode(queries[start : start + settings.encoder_batch_size])
    encode_s = time.perf_counter() - started
    per_profile, per_list = product_seconds(n_items, encoder.dim, settings.top_k)
    feedback = FeedbackWork.of(events)
    return ModelFloor(len(queries), encode_s, feedback, feedback.profiles * per_profile, per_list)


def product_seconds(n_items: int, dim: int, k: int) -> tuple[float, float]:
    """Bare seconds of one content profile's product with the catalogue, and of one ranking product + top-k."""
    matrix = torch.nn.functional.normalize(torch.randn(n_items, dim), dim=1)
    profiles = torch.randn(3 * BATCH, dim)
    users = torch.randn(BATCH, dim)
    per_profile = best_of(3, lambda: profiles @ matrix.T) / len(profiles)
    per_list = best_of(3, lambda: (users @ matrix.T).topk(min(k, n_items), dim=1)) / BATCH
    return per_profile, per_list
