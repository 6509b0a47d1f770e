"""The live pipeline on the real local broker, one worker, against a bare aiokafka loop in the same run.

    python -m bench.pipeline throughput [--users 10000 --items 10000 --events-per-user 3 --workers 1 --profile 25]
    python -m bench.pipeline latency [--rate 1000 --seconds 60]
    python -m bench.pipeline framework [--users 10000 --items 10000 --events-per-user 3]

throughput: a backlog of events is produced first; a bare aiokafka consumer loop (getmany + orjson.loads of
each value) reads it, then the worker processes it end to end (ingest, windows, encode, weigh, rank). Figures,
timed from the moment the worker has its catalogue (when its agents start): events/s ingested and events/s
fully applied and ranked, each against the bare loop, and end to end against the model's arithmetic for the same
backlog timed bare (`bench.model_floor`: what one worker could reach doing nothing but encode, learn and rank).
With `--workers N`, N workers of one consumer group share the backlog (figures over all of them).
latency: events at a steady rate; for each recommendation, the time from sending the event that triggered it to
receiving the recommendation (p50/p95/p99), read from the recommendations topic, and the part of it in the worker
(the list's `latency_ms`, from the trigger's arrival at ingest, its window's wait included); and how far the
worker's fold of the shared signals trails the shared log (from an increment's send to its fold, the worker's
histogram).
framework: the throughput backlog through Faust alone (`bench.faust_floor`): the worker's app with an agent that
only parses its batches, and with each piece of per-event plumbing added, against the bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from itertools import islice
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer

from bench import faust_floor, model_floor, worker_profile
from bench.live_pipeline import LivePipeline, pss_mib, rss_mib, send_events, worker_process
from streams.events import BehaviorEvent
from streams.kafka_clients import aiokafka_config, client_config
from streams.settings import Settings
from streams.synthetic import behaviour_stream, make_users
from streams.topics_admin import topic_partitions

STAGE_LAG = "driftrec_consumer_lag"
BARE_LOOP_MIN_S = 3.0


async def bare_loop(settings: Settings, backlog: int) -> tuple[float, int]:
    """Events/s of a bare aiokafka consumer loop (getmany + orjson.loads of each value) over the `backlog`
    records, timed from the first record and read from the start again until it ran for BARE_LOOP_MIN_S (one pass
    over a backlog of 30,000 takes hundredths of a second, too short to time). Returns the rate and the passes."""
    topic = settings.behaviour_topics[0]
    consumer = AIOKafkaConsumer(**aiokafka_config(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in sorted(topic_partitions(settings, topic))]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    count, passes, first = 0, 0, 0.0
    try:
        while not passes or time.perf_counter() - first < BARE_LOOP_MIN_S:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                first = first or time.perf_counter()
                for record in records:
                    orjson.loads(record.value)
                count += len(records)
            if count >= (passes + 1) * backlog:
                passes += 1
                await consumer.seek_to_beginning(*partitions)
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - first), passes


def backlog_events(users: int, events_per_user: int, items: list) -> list[BehaviorEvent]:  # type: ignore[type-arg]
    """The throughput benchmark's events: `users` synthetic users, `events_per_user` each, over the last hour."""
    people = make_users(users, sorted({item.tags[0] for item in items}), seed=9)
    return list(behaviour_stream(people, items, events_per_user, int(time.time() * 1000) - 3_600_000, seed=9))


def produce_backlog(settings: Settings, users: int, events_per_user: int, items: list) -> list[BehaviorEvent]:  # type: ignore[type-arg]
    events = backlog_events(users, events_per_user, items)
    send_events(settings, events)
    return events


def throughput(args: argparse.Namespace) -> int:
    run = LivePipeline.create("throughput", args.items)
    events = produce_backlog(run.settings, args.users, args.events_per_user, run.items)
    sent, item_events = len(events), sum(event.item_id is not None for event in events)
    bare, passes = asyncio.run(bare_loop(run.settings, sent))
    print(f"backlog: {sent} events from {args.users} users over {len(run.items)} items")
    print(f"bare aiokafka loop: {bare:,.0f} events/s ({passes} passes over the backlog)")
    print(faust_floor.describe(faust_floor.rates(run.settings, sent, ("parse", "stage")), bare))
    floor = model_floor.measure(run.settings, events, len(run.items))
    run.start(args.workers)
    try:
        print(f"{args.workers} worker(s) ready in {run.wait_ready():.0f}s (model and {len(run.items)} item vectors "
              "loaded)", flush=True)
        profile = Path(run.settings.data_dir) / "worker-profile.txt"
        spy = worker_profile.record(worker_process(run.workers[0].pid), args.profile, profile) \
            if args.profile else None
        first, ingested_at = time.perf_counter(), None  # the agents start on the backlog once the catalogue is in
        while True:
            try:
                metrics = run.metrics()
            except OSError as error:  # a worker restarting (its stall exit) or its web server busy
                print(f"metrics not read ({error}); trying again", flush=True)
                time.sleep(1.0)
                continue
            now = time.perf_counter()
            if run.total(metrics, "driftrec_events_in_total") >= sent and ingested_at is None:
                ingested_at = now
            if run.total(metrics, STAGE_LAG) == 0 and all_applied(run, metrics, sent, item_events):
                break
            time.sleep(0.25)
        done = now
        ingested_at = ingested_at or done  # a worker restarted meanwhile: its counts began again
        rss = sum(rss_mib(worker.pid) for worker in run.workers)
        pss = sum(pss_mib(worker.pid) for worker in run.workers)
        if spy is not None:
            spy.wait(timeout=args.profile + 60)
            print(f"py-spy, worker 0, the first {args.profile}s after ready (raw stacks: {profile}):")
            print("\n".join(worker_profile.summary(profile.read_text().splitlines(), args.profile)))
    finally:
        run.stop()
    ingest_rate, end_to_end = sent / (ingested_at - first), sent / (done - first)
    lists = int(metrics.get("driftrec_recommendations_total", 0))
    ceiling = floor.events_per_s(sent, lists)
    print(floor.describe(sent, lists, len(run.items), run.settings.encoder_backend))
    print(f"pipeline ingest: {ingest_rate:,.0f} events/s, {ingest_rate / bare:.3f}x the bare loop")
    print(f"pipeline end to end (applied and ranked): {end_to_end:,.0f} events/s, "
          f"{end_to_end / bare:.3f}x the bare loop, {end_to_end / ceiling:.2f}x the model floor; "
          f"{lists} recommendation lists; workers' RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")
    return 0


def all_applied(run: LivePipeline, metrics: dict[str, float], sent: int, item_events: int) -> bool:
    """Every event applied: by the workers' counts, or, where a worker restarted (its counts began again), by every
    worker's shared signals holding every item event of the backlog."""
    if metrics.get("driftrec_events_applied_total", 0) >= sent:
        return True
    return all(run.worker_metrics(n).get("driftrec_shared_signal_events", 0) >= item_events
               for n in range(len(run.workers)))


def framework(args: argparse.Namespace) -> int:
    run = LivePipeline.create("framework", args.items)
    try:
        sent = len(produce_backlog(run.settings, args.users, args.events_per_user, run.items))
        bare, passes = asyncio.run(bare_loop(run.settings, sent))
        print(f"backlog: {sent} events; bare aiokafka loop: {bare:,.0f} events/s ({passes} passes)")
        print(faust_floor.describe(faust_floor.rates(run.settings, sent), bare))
    finally:
        run.stop()
    return 0


def latency(args: argparse.Namespace) -> int:
    run = LivePipeline.create("latency", args.items)
    sent_at: dict[str, float] = {}
    run.start()
    try:
        print(f"worker ready in {run.wait_ready():.0f}s", flush=True)
        consumer = KafkaConsumer(run.settings.recommendations_topic, **client_config(run.settings),
                                 auto_offset_reset="latest")
        consumer.poll(timeout_ms=1000)
        feeder = threading.Thread(target=produce_steadily, args=(run, args.rate, args.seconds, args.users, sent_at))
        feeder.start()
        latencies: list[float] = []
        in_worker: list[float] = []
        deadline = time.time() + args.seconds + 30
        while time.time() < deadline and (feeder.is_alive() or not latencies or time.time() < deadline - 20):
            received = time.time()
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    recommendation = orjson.loads(record.value)
                    if recommendation["trigger_event_id"] in sent_at:
                        latencies.append(1000 * (received - sent_at[recommendation["trigger_event_id"]]))
                        in_worker.append(recommendation["latency_ms"])
        feeder.join()
        metrics = run.metrics()
        consumer.close()
    finally:
        run.stop()
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    print(f"{len(sent_at)} events at {args.rate:.0f}/s for {args.seconds:.0f}s, {len(latencies)} recommendations; "
          f"event -> recommendation p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms")
    w50, w95, w99 = np.percentile(in_worker, [50, 95, 99])
    print(f"of which in the worker (the trigger's arrival at ingest -> its list ranked, its window's wait included): "
          f"p50 {w50:.0f} ms, p95 {w95:.0f} ms, p99 {w99:.0f} ms")
    print(f"worker: {int(run.total(metrics, 'driftrec_events_in_total'))} events in, "
          f"{int(metrics.get('driftrec_window_flushes_total', 0))} windows, final stage lag "
          f"{int(run.total(metrics, STAGE_LAG))} ({stage_lags(run, metrics)})")
    print(f"windows: {histogram_summary(metrics, 'driftrec_window_wait_seconds', 'windows')} from the first "
          f"event's arrival to the flush; weigh steps: {histogram_summary(metrics, 'driftrec_weigh_step_seconds')}")
    print(f"shared signals: folded {histogram_summary(metrics, SHARED_STALENESS)} after their increments were "
          f"sent; {int(metrics.get('driftrec_shared_wait_timeouts_total', 0))} weigh steps ranked before their own "
          "increments were folded")
    return 0


SHARED_STALENESS = "driftrec_shared_log_staleness_seconds"


def histogram_summary(metrics: dict[str, float], name: str, what: str = "batches") -> str:
    """Mean and bucket bounds of the 50th, 95th and 99th percentiles of a Prometheus histogram, in ms."""
    count = metrics.get(f"{name}_count", 0.0)
    if not count:
        return "nothing"
    buckets = sorted((float(key.split("le=")[1].rstrip("}")), value) for key, value in metrics.items()
                     if key.startswith(f"{name}_bucket{{"))
    bounds = [next(bound for bound, seen in buckets if seen >= q * count) for q in (0.5, 0.95, 0.99)]
    quantiles = ", ".join(f"p{q} ≤ {1000 * bound:.0f} ms" for q, bound in zip((50, 95, 99), bounds, strict=True))
    return f"{count:.0f} {what}, mean {1000 * metrics[f'{name}_sum'] / count:.1f} ms, {quantiles}"


def stage_lags(run: LivePipeline, metrics: dict[str, float]) -> str:
    """Each stage input's lag (records not yet committed), by topic name without the run's prefix."""
    prefix = f"{STAGE_LAG}{{topic={run.settings.app_id}-"
    return ", ".join(f"{name[len(prefix):-1]} {int(value)}" for name, value in sorted(metrics.items())
                     if name.startswith(prefix))


def produce_steadily(run: LivePipeline, rate: float, seconds: float, users: int, sent_at: dict[str, float]) -> None:
    people = make_users(users, sorted({item.tags[0] for item in run.items}), seed=4)
    per_user = int(rate * seconds / users) + 1
    events = behaviour_stream(people, run.items, per_user, int(time.time() * 1000), seed=4)
    send_events(run.settings, islice(events, int(rate * seconds)), rate=rate, sent_at=sent_at)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benches = parser.add_subparsers(dest="bench", required=True)
    for name, run in (("throughput", throughput), ("framework", framework)):
        backlog = benches.add_parser(name)
        backlog.add_argument("--users", type=int, default=10_000)
        backlog.add_argument("--items", type=int, default=10_000)
        backlog.add_argument("--events-per-user", type=int, default=3)
        backlog.set_defaults(run=run, workers=1)
    benches.choices["throughput"].add_argument("--workers", type=int, default=1)
    benches.choices["throughput"].add_argument("--profile", type=int, default=0, metavar="SECONDS",
                                               help="profile worker 0 with py-spy for this long once it is ready")
    steady = benches.add_parser("latency")
    steady.add_argument("--rate", type=float, default=1000.0)
    steady.add_argument("--seconds", type=float, default=60.0)
    steady.add_argument("--users", type=int, default=10_000)
    steady.add_argument("--items", type=int, default=10_000)
    steady.set_defaults(run=latency)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
