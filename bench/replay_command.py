"""`driftrec replay`: loads a log, replays it, prints the table, writes JSON results and PNG plots."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from streams.events import BehaviorEvent, Item, parse_event, parse_item
from streams.settings import Settings


def load_jsonl(items_path: Path, events_path: Path) -> tuple[list[Item], list[BehaviorEvent]]:
    now = 2**62
    items = [parse_item(line, now) for line in items_path.read_bytes().splitlines() if line.strip()]
    events = [parse_event(line, now) for line in events_path.read_bytes().splitlines() if line.strip()]
    return items, sorted(events, key=lambda e: (e.ts, e.event_id))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", type=Path, help="a MovieLens directory (ml-latest-small, ml-100k, ml-1m)")
    source.add_argument("--jsonl", nargs=2, type=Path, metavar=("ITEMS", "EVENTS"), help="wire-format JSONL files")
    parser.add_argument("--sample", type=float, default=0.2, help="share of events evaluated (seeded)")
    parser.add_argument("--tune-share", type=float, default=0.2, help="first share of the log used for tuning")
    parser.add_argument("--max-events", type=int, default=0, help="replay only the first N events (0 = all)")
    parser.add_argument("--k", type=int, default=0, help="list length (0 = DRIFTREC_TOP_K)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", default=None, metavar="TOML",
                        help="weighting config file (default: DRIFTREC_WEIGHTING_CONFIG, as the worker reads it)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bench.movielens import load_movielens
    from bench.plots import plot_metrics, plot_weights
    from bench.replay import DYNAMIC, ReplayOptions, build_catalogue, format_table, replay
    from bench.weight_ceiling import format_ceiling
    from encoders.backends import make_encoder
    from encoders.vector_cache import VectorCache

    items, events = load_movielens(args.movielens) if args.movielens else load_jsonl(*args.jsonl)
    if args.max_events:
        events = events[: args.max_events]
    args.k = args.k or settings.top_k
    encoder = make_encoder(settings.encoder_model, settings.encoder_backend, settings.encoder_device or None,
                           settings.encoder_batch_size, Path(settings.data_dir))
    catalogue = build_catalogue(items, encoder,
                                VectorCache(Path(settings.data_dir) / "item-vectors", encoder.model_name))
    active = [user for user, _ in Counter(e.user_id for e in events).most_common(4)]
    print(f"replaying {len(events)} events over {len(catalogue)} items "
          f"(sample {args.sample:.0%}, static fusion tuned on the first {args.tune_share:.0%})", flush=True)
    options = ReplayOptions(k=args.k, sample=args.sample, tune_share=args.tune_share, seed=args.seed)
    result = replay(catalogue, events, options, settings.weighting,
                    tracked_users=active)
    print(format_table(result, args.k))
    print(format_ceiling(result.ceiling, result.metrics[DYNAMIC][f"HR@{args.k}"]))
    print(f"HR@{args.k} on the tuning part: static {result.tuning_hr}, single factors {result.tuning_factor_hr}")
    print(f"static weights (tuned on the first part): {result.static_weights}")
    print(f"dynamic model's learned prior at the end: {result.learned_prior}")
    print(f"{1000 * result.seconds / max(result.events, 1):.2f} ms per event, {result.seconds:.0f}s in all")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replay.json").write_text(json.dumps(result.to_dict(), indent=1))
    plot_metrics(result, args.k, args.out / "replay-metrics.png")
    plot_weights(result, args.out / "replay-weights.png")
    print(f"results: {args.out / 'replay.json'}, plots: {args.out}/replay-*.png")
    return 0
