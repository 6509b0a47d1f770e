"""Each stage against its raw library ceiling, measured in the same run.

    python -m bench.stage_ceilings [--items 10000 100000] [--users 256]

Encoder stage (driftrec's encoder, length-bucketed) vs a bare `SentenceTransformer.encode` on the same texts
and batch size, and search queries through the recent-query cache vs without it; the weighting stage learning
one event at a time and in batches, vs the bare product of the batch's profiles with the catalogue; the scorer
(all factors, fusion, seen-item exclusion, top-k) vs a bare matmul + top-k on the same matrices.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from encoders.cached_encoding import RecentQueries
from encoders.process_encoder import ProcessEncoder
from encoders.sentence_encoder import SentenceTransformerEncoder
from sinks.catalogue import Catalogue, CatalogueItem
from sinks.online_model import OnlineModel, UserEvent
from streams.catalogue_data import builtin_catalogue
from streams.settings import Settings
from weighting.factors import FACTORS
from weighting.seen_items import SeenItems
from weighting.user_state import UserState
from weighting.user_update import ProfileEvent
from weighting.weight_update import Anchor


def best_of(repeats: int, function: Callable[[], object]) -> float:
    """The fastest of `repeats` runs, in seconds (after one warm-up run)."""
    function()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def encoder_ceiling(encoder: SentenceTransformerEncoder, n_texts: int, batch_size: int, cache_dir: Path) -> None:
    """driftrec's torch encoder vs a bare `model.encode`; then the int8 ONNX backend vs torch on the CPU."""
    items = builtin_catalogue()
    texts = [f"{items[i % len(items)].title}. {items[i % len(items)].text} #{i}" for i in range(n_texts)]
    ours = best_of(2, lambda: encoder.encode(texts))
    bare_model = encoder.model  # the same loaded model, called directly
    bare = best_of(2, lambda: bare_model.encode(texts, batch_size=batch_size, normalize_embeddings=True))
    print(f"encoder [{encoder.device}] {n_texts} texts, batch {batch_size}: driftrec {n_texts / ours:.0f} sentences/s, "
          f"bare model.encode {n_texts / bare:.0f} sentences/s, ratio {bare / ours:.2f}x")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # for the child, which loads torch on import of this module
    in_child = ProcessEncoder(partial(SentenceTransformerEncoder, device=encoder.device, batch_size=batch_size))
    child = best_of(2, lambda: in_child.encode(texts))
    in_child.close()
    print(f"  the same in a child process (encoder_host=process): {n_texts / child:.0f} "
          f"sentences/s, ratio to bare {bare / child:.2f}x")
    try:
        from encoders.onnx_encoder import OnnxInt8Encoder
    except ImportError:
        print("onnx-int8 backend: not installed (pip install driftrec[onnx])")
        return
    cpu = encoder if encoder.device == "cpu" else SentenceTransformerEncoder(device="cpu", batch_size=batch_size)
    torch_cpu = best_of(2, lambda: cpu.encode(texts))
    int8 = OnnxInt8Encoder(batch_size=batch_size, cache_dir=cache_dir)
    quantised = best_of(2, lambda: int8.encode(texts))
    agreement = (int8.encode(texts) * cpu.encode(texts)).sum(axis=1)
    print(f"onnx-int8 [cpu]: {n_texts / quantised:.0f} sentences/s vs torch cpu {n_texts / torch_cpu:.0f} sentences/s, "
          f"{torch_cpu / quantised:.2f}x; cosine with torch mean {agreement.mean():.4f}, min {agreement.min():.4f}")


def query_cache_ceiling(encoder: SentenceTransformerEncoder, n_queries: int, batch: int) -> None:
    """The encode stage's queries through the recent-query cache vs without it (each batch's duplicates still
    encoded once), on a stream whose queries repeat as search traffic does: Zipf-distributed (s = 1.1) over
    1,000 distinct queries built from the catalogue's titles, `batch` queries per encoder call."""
    items = builtin_catalogue()
    distinct = [f"{items[i % len(items)].tags[0]} {items[i % len(items)].title} {i // len(items)}" for i in range(1000)]
    ranks = np.random.default_rng(3).zipf(1.1, size=4 * n_queries)
    stream = [distinct[r - 1] for r in ranks[ranks <= len(distinct)][:n_queries]]
    batches = [stream[start : start + batch] for start in range(0, len(stream), batch)]

    def encode_all(capacity: int) -> RecentQueries:
        recent = RecentQueries(capacity)
        for queries in batches:
            recent.encode(queries, encoder)
        return recent

    hits = encode_all(10_000).hits
    cached, uncached = best_of(1, lambda: encode_all(10_000)), best_of(1, lambda: encode_all(0))
    print(f"query encoding, {len(stream)} Zipf-distributed queries in batches of {batch}: recent-query cache "
          f"{len(stream) / cached:.0f} queries/s ({hits} distinct-per-batch hits), without it "
          f"{len(stream) / uncached:.0f} queries/s, {uncached / cached:.2f}x")


def random_catalogue(n_items: int, rng: np.random.Generator, dim: int = 384) -> tuple[Catalogue, list[str]]:
    """Random unit vectors (MiniLM's dimension) around one random topic per 100 items, as sentence embeddings
    cluster (uniformly random vectors are the worst case of an ANN index); 20 tags, one item first seen per ms."""
    topics = rng.normal(size=(max(n_items // 100, 1), dim))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    vectors = (topics[rng.integers(0, len(topics), n_items)]
               + 0.8 * rng.normal(size=(n_items, dim)) / np.sqrt(dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalogue = Catalogue(dim)
    ids = [f"i{n}" for n in range(n_items)]
    catalogue.upsert([CatalogueItem(i, i, (f"t{n % 20}",), n) for n, i in enumerate(ids)],
                     dict(zip(ids, vectors, strict=True)))
    return catalogue, ids


def weighting_ceiling(n_items: int, n_events: int, batch: int) -> None:
    """Learning from views of random items by 3,000 users: one event at a time vs batches of `batch` events,
    against the bare pass the feedback ranks need (the batch's 3 content profiles times the catalogue)."""
    rng = np.random.default_rng(1)
    catalogue, ids = random_catalogue(n_items, rng)
    events = [UserEvent(f"u{rng.integers(0, 3000)}", ProfileEvent(f"e{n}", "view", 10**9 + 1000 * n,
                                                                      ids[rng.integers(0, n_items)]))
              for n in range(n_events)]

    def learn(size: int) -> float:
        model, states = OnlineModel(catalogue), dict[str, UserState]()
        started = time.perf_counter()
        for start in range(0, n_events, size):
            states.update(model.learn_and_fold(states, events[start : start + size]).states)
        return (time.perf_counter() - started) / n_events

    single, batched = learn(1), learn(batch)
    profiles = torch.from_numpy(rng.normal(size=(batch, 3, catalogue.dim)).astype(np.float32))
    bare = best_of(3, lambda: profiles @ catalogue.matrix.T) / batch
    print(f"weighting {n_items} items, {n_events} events: one at a time {1000 * single:.3f} ms/event, batches of "
          f"{batch} {1000 * batched:.3f} ms/event ({single / batched:.1f}x faster, {1 / batched:,.0f} events/s); "
          f"bare profile x catalogue product {1000 * bare:.3f} ms/event, ratio {bare / batched:.2f}x")


def scorer_ceiling(n_items: int, n_users: int, k: int) -> None:
    """Users with 20 anchors (each with 100 co-visited and followed neighbours), 50 seen items, a query and random
    weights; the scorer (every factor over the catalogue, lists, candidates, calibration, fusion, top-k) against the
    bare products and top-k of the same dense work."""
    rng = np.random.default_rng(0)
    catalogue, ids = random_catalogue(n_items, rng)
    vectors, dim = catalogue.vectors, catalogue.dim
    model = OnlineModel(catalogue)
    for row in rng.integers(0, n_items, 20 * n_users):
        neighbours = rng.integers(0, n_items, 100).tolist()
        model.scorer.popularity.add(int(row), 1.0, 0)
        model.scorer.covisitation.add(int(row), neighbours, 1.0, 0)
        model.scorer.transitions.add(int(row), neighbours, 1.0, 0)
    anchors_of = rng.integers(0, n_items, (n_users, 20))
    updates = []
    for u in range(n_users):
        profile = vectors[anchors_of[u, :5]].mean(axis=0)
        state = UserState.empty(dim)
        state = UserState(dim=dim, long_term=profile, short_term=profile, velocity=state.velocity,
                          query=vectors[anchors_of[u, 0]],
                          seen=SeenItems(tuple(ids[j] for j in rng.integers(0, n_items, 50))))
        update = model.weight_update(f"u{u}", state, n_items)
        anchors = tuple(Anchor(ids[row], "view", 0.9**age) for age, row in enumerate(anchors_of[u]))
        updates.append(replace(update, anchors=anchors, weights=rng.dirichlet(np.ones(len(FACTORS)))))
    ours = best_of(3, lambda: model.recommend(updates, k))
    core = best_of(3, lambda: model.scorer.top_k(updates, k))
    matrix, table = catalogue.matrix, model.sequence.item_table()
    profiles = torch.from_numpy(np.stack([np.stack([u.short_term, u.long_term, u.query]) for u in updates]))
    sequence = torch.from_numpy(np.stack([u.sequence for u in updates]))
    depth = model.config.candidates_per_factor
    bare = best_of(3, lambda: (torch.cat([profiles @ matrix.T, (sequence @ table.T).unsqueeze(1)], dim=1)
                               .topk(depth, dim=2)))
    print(f"scorer {n_items} items x {n_users} users, k={k}: bare products and top-{depth} of the four dense "
          f"factors {1000 * bare:.1f} ms; driftrec scoring (eight factors, lists, candidates, calibration, fusion, "
          f"top-k) {1000 * core:.1f} ms, ratio {bare / core:.2f}x; with recommendation records and reasons "
          f"{1000 * ours:.1f} ms ({n_users / ours:.0f} users/s), ratio {bare / ours:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--events", type=int, default=4000, help="events the weighting stage learns from")
    parser.add_argument("--skip-encoder", action="store_true")
    parser.add_argument("--weighting-max-items", type=int, default=100_000,
                        help="largest catalogue the weighting stage is timed on (learning one event at a time "
                             "over 1M items takes about 0.2 s per event)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_encoder:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        encoder = SentenceTransformerEncoder(batch_size=args.batch_size)
        encoder_ceiling(encoder, args.texts, args.batch_size, Path(Settings.from_env().data_dir) / "onnx")
        query_cache_ceiling(encoder, args.texts, 8)
    for n_items in args.items:
        if n_items <= args.weighting_max_items:
            weighting_ceiling(n_items, args.events, args.users)
        else:
            print(f"weighting {n_items} items: skipped (above --weighting-max-items {args.weighting_max_items})")
        scorer_ceiling(n_items, args.users, 10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
