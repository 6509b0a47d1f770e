"""`driftrec replay`: loads a log, replays it over one or more seeds, prints the tables with paired intervals,
writes JSON results and PNG plots."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.drift_scenarios import SCENARIOS
from streams.events import BehaviorEvent, InvalidRecordError, Item, parse_event, parse_item
from streams.settings import Settings


@dataclass
class LoadReport:
    """Lines that could not be read, by reason."""

    rejected: Counter[str] = field(default_factory=Counter)

    def reject(self, path: Path, number: int, reason: str) -> None:
        self.rejected[reason] += 1
        print(f"{path}:{number}: skipped: {reason}", file=sys.stderr)


def _records(path: Path, report: LoadReport, parse: Any, now: int) -> Iterator[Any]:
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield parse(line, now)
        except InvalidRecordError as error:
            report.reject(path, number, str(error))


def load_jsonl(items_path: Path, events_path: Path, report: LoadReport) -> tuple[list[Item], list[BehaviorEvent]]:
    """Items and events in the wire format, validated as a worker validates them (against the current time); a bad
    line is reported on stderr with its reason and left out, and the rest is read."""
    now = int(time.time() * 1000)
    items = list(_records(items_path, report, parse_item, now))
    events = list(_records(events_path, report, parse_event, now))
    return items, sorted(events, key=lambda e: (e.ts, e.event_id))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", type=Path, help="a MovieLens directory (ml-latest-small, ml-100k, ml-1m)")
    source.add_argument("--jsonl", nargs=2, type=Path, metavar=("ITEMS", "EVENTS"), help="wire-format JSONL files")
    source.add_argument("--synthetic", choices=sorted(SCENARIOS),
                        help="a drift scenario over the built-in catalogue (a new log per seed)")
    parser.add_argument("--sample", type=float, default=1.0, help="share of events evaluated after the tuning part")
    parser.add_argument("--tune-share", type=float, default=0.2, help="first share of the log used for tuning")
    parser.add_argument("--max-events", type=int, default=0, help="replay only the first N events (0 = all)")
    parser.add_argument("--k", type=int, default=0, help="list length (0 = DRIFTREC_TOP_K)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", type=int, default=1, help="replays with seeds seed, seed+1, ...")
    parser.add_argument("--config", default=None, metavar="TOML",
                        help="weighting config file (default: DRIFTREC_WEIGHTING_CONFIG, as the worker reads it)")
    parser.add_argument("--experiment", default=None, metavar="ID:ARM=SHARE,...",
                        help="also evaluate these serving arms on every event (default: DRIFTREC_EXPERIMENT, else the "
                             "weighting config's [experiment])")
    parser.add_argument("--out", type=Path, default=Path("replay-results"))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from encoders.backends import make_encoder
    from encoders.vector_cache import VectorCache
    from replay.drift_scenarios import AFTER_SHIFT, drift_log, recovery, scenario_items
    from replay.movielens import load_movielens
    from replay.prequential import ReplayOptions, build_catalogue, query_vectors, replay
    from streams.catalogue_data import builtin_catalogue

    report = LoadReport()
    if args.synthetic:
        items, events = scenario_items(args.synthetic, builtin_catalogue()), list[BehaviorEvent]()
    elif args.movielens:
        items, events = load_movielens(args.movielens)
    else:
        items, events = load_jsonl(args.jsonl[0], args.jsonl[1], report)
    if report.rejected:
        print(f"{sum(report.rejected.values())} lines skipped: " + ", ".join(
            f"{count} {reason}" for reason, count in report.rejected.most_common(5)), file=sys.stderr)
    k = args.k or settings.top_k
    encoder = make_encoder(settings.encoder_model, settings.encoder_backend, settings.encoder_device or None,
                           settings.encoder_batch_size, Path(settings.data_dir))
    catalogue = build_catalogue(items, encoder,
                                VectorCache(Path(settings.data_dir) / "item-vectors", encoder.model_name))
    results, recoveries = [], []
    for seed in range(args.seed, args.seed + args.seeds):
        log = drift_log(args.synthetic, items, seed) if args.synthetic else None
        seed_events = (log.events if log else events)[: args.max_events or None]
        if seed == args.seed:
            describe(seed_events, catalogue, args)
        active = [user for user, _ in Counter(e.user_id for e in seed_events).most_common(4)]
        options = ReplayOptions(k=k, sample=args.sample, tune_share=args.tune_share, seed=seed)
        result = replay(catalogue, seed_events, options, settings.weighting, tracked_users=active,
                        queries=query_vectors(seed_events, encoder), experiment=settings.serving_experiment)
        print_seed(result, seed, k)
        if log and log.shifted:
            recoveries.append(recovery(result, log.shifted, k))
            print(f"HR@{k} over the first {AFTER_SHIFT} events after a shift of interest "
                  f"({int(recoveries[-1]['evaluations'])} evaluated): "
                  + ", ".join(f"{name} {hr:.4f}" for name, hr in recoveries[-1].items() if name != "evaluations"))
        results.append(result)
    summary = seeds_summary(results, k, recoveries)
    print(format_summary(summary, k))
    write_results(args.out, results, summary, k)
    return 0


def describe(events: Sequence[BehaviorEvent], catalogue: Any, args: argparse.Namespace) -> None:
    unknown = [e for e in events if e.item_id is not None and e.item_id not in catalogue]
    if unknown:
        print(f"{len(unknown)} events name items not in the catalogue (first: {unknown[0].item_id!r}); "
              "they count in no factor and are not evaluated", file=sys.stderr)
    print(f"replaying {len(events)} events over {len(catalogue)} items, {args.seeds} seed(s) "
          f"(evaluating {args.sample:.0%} of the events after the first {args.tune_share:.0%}, where the static "
          "fusion is tuned)", flush=True)


def print_seed(result: Any, seed: int, k: int) -> None:
    from replay.prequential import format_table
    from replay.weight_ceiling import format_ceiling

    print(f"\nseed {seed}: {result.events} events, {1000 * result.seconds / max(result.events, 1):.2f} ms per "
          f"event ({result.seconds:.0f} s)")
    print(format_table(result, k))
    if result.cold_start:
        cold = result.cold_start
        n_cold = int(next(iter(cold.values()))["evaluations"])
        print(f"cold-start events (item acted on fewer than 5 times before): {n_cold}; HR@{k}: "
              + ", ".join(f"{name} {m[f'HR@{k}']:.4f}" for name, m in cold.items()))
    if result.ceiling:
        print(format_ceiling(result.ceiling, 4000))
    print(f"static weights (tuned on the first part, HR@{k} there {result.tuning_hr}): {result.static_weights}")
    print(f"dynamic model's prior at the end: {result.learned['prior']}")


def seeds_summary(results: Sequence[Any], k: int, recoveries: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Per method: HR@k on each seed (overall, on cold-start events, after a shift), and the paired comparison
    with the dynamic model on each seed."""
    methods = list(results[0].metrics)
    return {name: {"hr": [r.metrics[name][f"HR@{k}"] for r in results],
                   "after_shift_hr": [rec.get(name) for rec in recoveries],
                   "cold_hr": [r.cold_start.get(name, {}).get(f"HR@{k}") for r in results],
                   "ratio": [r.paired[name]["ratio"] for r in results] if name in results[0].paired else [],
                   "interval_above_0": [r.paired[name]["difference_interval"][0] > 0 for r in results]
                   if name in results[0].paired else []}
            for name in methods}


def format_summary(summary: dict[str, Any], k: int) -> str:
    n_seeds = len(next(iter(summary.values()))["hr"])
    lines = [f"\nover {n_seeds} seed(s), per seed: HR@{k}; dynamic ÷ method; on how many seeds the paired 95% "
             f"interval of (dynamic − method) lies above 0; HR@{k} on cold-start events; after a shift"]
    for name, entry in summary.items():
        hr = " ".join(f"{v:.4f}" for v in entry["hr"])
        ratio = " ".join(f"{v:.3f}" for v in entry["ratio"]) or "-"
        above = f"{sum(entry['interval_above_0'])}/{len(entry['interval_above_0'])}" if entry["ratio"] else "-"
        cold = " ".join("-" if v is None else f"{v:.4f}" for v in entry["cold_hr"])
        after = " ".join(f"{v:.4f}" for v in entry["after_shift_hr"] if v is not None)
        lines.append(f"  {name:40s} {hr}  | {ratio} | {above} | cold {cold}" + (f" | after {after}" if after else ""))
    return "\n".join(lines)


def write_results(out: Path, results: Sequence[Any], summary: dict[str, Any], k: int) -> None:
    from replay.plots import plot_metrics, plot_weights

    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps({"summary": summary, "seeds": [r.to_dict() for r in results]}))
    plot_metrics(results[0], k, out / "replay-metrics.png")
    plot_weights(results[0], out / "replay-weights.png")
    print(f"results: {out / 'replay.json'}, plots: {out}/replay-*.png")
