"""The model thread's work on the throughput benchmark's backlog, without Kafka, against its bare arithmetic.

    python -m bench.model_work [--users 10000] [--items 10000] [--events-per-user 3] [--batch 256] [--no-freeze]

The events are `bench.pipeline throughput`'s, taken in batches of one-event windows and weighed as a worker that
runs every stage weighs them (`streams.agents.apply_windows`: the states read, learning), then each state is written,
the WeightUpdates are made and ranked (`streams.agents.rank_applied`), and each update and list serialised. Random unit
vectors stand in for the encoder's (the work does not depend on their values). The bare arithmetic is the
products this work needs (`bench.model_floor`), timed in the same run. Like a worker, the run freezes the objects
alive before it starts (`streams.worker.freeze_startup_objects`) unless `--no-freeze`.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import orjson

from bench.live_pipeline import scaled_catalogue
from bench.model_floor import FeedbackWork, product_seconds
from bench.pipeline import backlog_events
from sinks.catalogue import Catalogue, CatalogueItem
from sinks.online_model import OnlineModel
from sinks.shared_increments import SharedIncrement
from streams.agents import apply_windows, rank_applied
from streams.app import runtime, settings
from streams.dead_letter import SourcePosition
from streams.events import BehaviorEvent, Item
from streams.windowing import EncodedWindow, WindowedEvent

DIM = 384


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def model_over(items: Sequence[Item], rng: np.random.Generator) -> OnlineModel:
    """A worker's model (its settings) over `items`, each with a random unit vector."""
    catalogue = Catalogue(DIM)
    catalogue.upsert([CatalogueItem(i.item_id, i.title, tuple(i.tags), 0) for i in items],
                     dict(zip((i.item_id for i in items), random_unit(rng, len(items)), strict=True)))
    return OnlineModel(catalogue, settings.weighting)


def encoded_windows(events: Sequence[BehaviorEvent], rng: np.random.Generator) -> list[EncodedWindow]:
    """One encoded one-event window per event, a random vector for each query."""
    searches = [event for event in events if event.kind == "search"]
    queries = dict(zip((e.event_id for e in searches), random_unit(rng, len(searches)), strict=True))
    return [
        EncodedWindow.of(event.user_id, [WindowedEvent.read_at(event, SourcePosition("events", 0, n), 0.0)],
                         {event.event_id: queries[event.event_id]} if event.event_id in queries else {})
        for n, event in enumerate(events)
    ]


def run(windows: Sequence[EncodedWindow], batch: int) -> tuple[dict[str, float], int]:
    """Seconds per phase over all the windows, and how many lists were ranked."""
    stored: dict[str, bytes] = {}
    seconds: defaultdict[str, float] = defaultdict(float)
    lists = 0
    for start in range(0, len(windows), batch):
        chunk = windows[start : start + batch]
        began = time.perf_counter()
        applied = apply_windows({window.user_id: stored.get(window.user_id) for window in chunk}, chunk)
        runtime.model.fold(SharedIncrement.from_json(increment.to_json()) for increment in applied.increments)
        learned = time.perf_counter()
        for user_id in applied.last:
            stored[user_id] = applied.states[user_id].to_bytes()
        written = time.perf_counter()
        ranked_users = rank_applied(applied)
        if ranked_users.error is not None:
            raise ranked_users.error
        ranked = time.perf_counter()
        for update in ranked_users.updates.values():
            update.to_json()
        for recommendation in ranked_users.lists:
            orjson.dumps(recommendation.to_dict())
        done = time.perf_counter()
        lists += len(ranked_users.lists)
        phases = {"learn, fold the shared log": (began, learned), "write states": (learned, written),
                  "weight updates and rank": (written, ranked), "serialise updates and lists": (ranked, done)}
        for phase, (a, b) in phases.items():
            seconds[phase] += b - a
        assert applied.applied == sum(len(window.events) for window in chunk)
    return seconds, lists


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events-per-user", type=int, default=3)
    parser.add_argument("--batch", type=int, default=settings.batch_size)
    parser.add_argument("--no-freeze", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    items = scaled_catalogue(args.items)
    runtime.__dict__["model"] = model_over(items, rng)
    events = backlog_events(args.users, args.events_per_user, items)
    windows = encoded_windows(events, rng)
    if not args.no_freeze:
        gc.freeze()
    started = time.perf_counter()
    seconds, lists = run(windows, args.batch)
    total = time.perf_counter() - started
    per_profile, per_list = product_seconds(len(items), DIM, settings.top_k)
    bare = FeedbackWork.of(events).profiles * per_profile + lists * per_list
    print(f"{len(events)} events from {args.users} users over {len(items)} items, batches of {args.batch} "
          f"one-event windows, startup objects {'collectable' if args.no_freeze else 'frozen'}")
    print("  ".join(f"{phase} {s:.2f}s" for phase, s in seconds.items()))
    print(f"model work: {total:.2f}s, {len(events) / total:,.0f} events/s; its bare products: {bare:.2f}s "
          f"({bare / total:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
