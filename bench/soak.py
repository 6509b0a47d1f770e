"""Soak benchmark: sustained load on the live pipeline, reporting throughput, consumer lag and worker memory.

    python -m bench.soak --minutes 10 --rate 300

Starts the local broker (unless KAFKA_BOOTSTRAP is set) and one worker on fresh topics; a producer thread
sends synthetic events at a steady rate; every interval it prints events produced and committed by the
worker's consumer group, the lag, recommendations written and the worker's resident memory.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from bench.live_pipeline import rss_mib, send_events
from deploy.local_kafka import LocalBroker, start
from streams.catalogue_data import builtin_catalogue
from streams.demo import run_settings, start_worker, stop_worker
from streams.kafka_clients import client_config, idempotent_producer
from streams.produce import publish_lines
from streams.settings import Settings
from streams.synthetic import behaviour_stream, make_users
from streams.topics_admin import ensure_topics


def committed_and_end(settings: Settings, admin: KafkaAdminClient, consumer: KafkaConsumer) -> tuple[int, int]:
    topic = settings.behaviour_topics[0]
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    end = sum(consumer.end_offsets(partitions).values())
    offsets = admin.list_group_offsets(settings.app_id)[settings.app_id]
    committed = sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0)
    return committed, end


def produce_steadily(settings: Settings, rate: float, seconds: float, users: int, stop: threading.Event) -> None:
    items = builtin_catalogue()
    people = make_users(users, sorted({t for i in items for t in i.tags}), seed=5, drift_share=0.3)
    per_user = int(rate * seconds / users) + 1
    send_events(settings, behaviour_stream(people, items, per_user, int(time.time() * 1000), seed=5), rate=rate,
                stop=stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--interval", type=float, default=30.0)
    args = parser.parse_args()
    base = Settings.from_env()
    if "KAFKA_BOOTSTRAP" not in os.environ:
        base = replace(base, bootstrap=start(LocalBroker()))
    settings = run_settings(base, time.strftime("soak-%Y%m%d-%H%M%S"))
    ensure_topics(settings)
    producer = idempotent_producer(settings)
    publish_lines(producer, settings.items_topic, (orjson.dumps(i.to_dict()) for i in builtin_catalogue()), items=True)
    producer.close()
    worker = start_worker(settings, Path(settings.data_dir) / "worker.log")
    admin = KafkaAdminClient(**client_config(settings))
    offsets = KafkaConsumer(**client_config(settings))
    recs = KafkaConsumer(settings.recommendations_topic, **client_config(settings), auto_offset_reset="earliest")
    seconds = args.minutes * 60
    stop = threading.Event()
    feeder = threading.Thread(target=produce_steadily, args=(settings, args.rate, seconds, args.users, stop))
    time.sleep(15)  # let the worker load the model and the catalogue before the clock starts
    first_rss = rss_mib(worker.pid)
    feeder.start()
    started = time.monotonic()
    recommendations = 0
    samples = []
    print(f"soak: {args.rate:.0f} events/s for {args.minutes:.0f} min, {args.users} users; worker pid {worker.pid}")
    print(f"{'t(s)':>6} {'produced':>9} {'committed':>10} {'lag':>7} {'recs':>8} {'rss MiB':>8}")
    try:
        while feeder.is_alive() or time.monotonic() - started < seconds + 30:
            deadline = time.monotonic() + args.interval
            while time.monotonic() < deadline:
                recommendations += sum(len(batch) for batch in recs.poll(timeout_ms=500).values())
            committed, end = committed_and_end(settings, admin, offsets)
            sample = (time.monotonic() - started, end, committed, end - committed, recommendations,
                      rss_mib(worker.pid))
            samples.append(sample)
            print(f"{sample[0]:6.0f} {sample[1]:9d} {sample[2]:10d} {sample[3]:7d} {sample[4]:8d} {sample[5]:8.0f}",
                  flush=True)
            if not feeder.is_alive() and sample[3] == 0:
                break
    finally:
        stop.set()
        feeder.join()
        stop_worker(worker)
    elapsed, produced, committed = samples[-1][0], samples[-1][1], samples[-1][2]
    print(f"summary: {produced} events produced, {committed} committed in {elapsed:.0f}s "
          f"({committed / elapsed:.0f} events/s processed), max lag {max(s[3] for s in samples)}, "
          f"final lag {samples[-1][3]}, {samples[-1][4]} recommendations, "
          f"worker RSS {first_rss:.0f} -> {samples[-1][5]:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
