"""The demo: a local broker, a worker, the built-in catalogue and synthetic users whose tastes shift."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from deploy.local_kafka import LocalBroker, start, stop
from streams.catalogue_data import builtin_catalogue
from streams.events import BehaviorEvent, Item
from streams.kafka_clients import idempotent_producer
from streams.metrics import scrape
from streams.produce import publish_lines
from streams.settings import Settings, settings_env
from streams.synthetic import Shopper, SyntheticUser, behaviour_stream, make_users
from streams.tail import follow, format_recommendation
from streams.topics_admin import ensure_topics


def run_settings(base: Settings, run_id: str) -> Settings:
    """Fresh topics, consumer group and state directory for one run."""
    prefix = f"driftrec-{run_id}"
    return replace(
        base, app_id=prefix, behaviour_topics=(f"{prefix}-events",), items_topic=f"{prefix}-items",
        windows_topic=f"{prefix}-windows", encoded_topic=f"{prefix}-encoded", weights_topic=f"{prefix}-weights",
        recommendations_topic=f"{prefix}-recommendations", dead_letter_topic=f"{prefix}-dead-letter",
        ticks_topic=f"{prefix}-ticks", shared_topic=f"{prefix}-shared-signals",
        data_dir=str(Path(base.data_dir) / run_id),
    )


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env={**os.environ, **settings_env(settings), "HF_HUB_OFFLINE": "1"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


DEMO_EXPERIMENT = "demo:dynamic=0.5,static=0.25,popularity-only=0.25"
"""The demo's experiment when none is set: the model against fixed weights and popularity alone."""


def people(users: int, events_per_user: int) -> list[SyntheticUser]:
    """The demo's synthetic users: half of them switch topic midway."""
    topics = sorted({t for i in builtin_catalogue() for t in i.tags})
    return make_users(users, topics, seed=1, drift_share=0.5, switch_at=events_per_user // 2)


class ListShoppers:
    """Synthetic users answering the lists they are shown, on the behaviour topic: an impression each, then what
    `shopper` makes of it (`Shopper`); each list answered once, each user's answers numbered on their own."""

    def __init__(self, settings: Settings, users: list[SyntheticUser], items: list[Item], shopper: Shopper,
                 seed: int) -> None:
        self.settings = settings
        self.users = {user.user_id: user for user in users}
        self.topics_of = {item.item_id: item.tags for item in items}
        self.shopper = shopper
        self.rng = random.Random(seed)
        self.answered: set[str] = set()
        self.lists_of: Counter[str] = Counter()
        self.producer = idempotent_producer(settings)

    def answer(self, recommendation: dict[str, Any]) -> list[BehaviorEvent]:
        """Sends the user's answer to a list (nothing for a list answered before or an unknown user); the events."""
        user = self.users.get(recommendation["user_id"])
        if user is None or recommendation["list_id"] in self.answered:
            return []
        self.answered.add(recommendation["list_id"])
        self.lists_of[user.user_id] += 1
        events = self.shopper.respond(user, recommendation, self.topics_of, n=self.lists_of[user.user_id],
                                      ts=int(time.time() * 1000), rng=self.rng)
        self.send(events)
        return events

    def send(self, events: Iterable[BehaviorEvent]) -> None:
        for event in events:
            self.producer.send(self.settings.behaviour_topics[0], key=event.user_id.encode(),
                               value=orjson.dumps(event.to_dict()))

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


def experiment_summary(settings: Settings) -> str:
    """The per-arm figures the worker's /metrics reports, one line per arm."""
    try:
        samples = scrape(settings.web_port)
    except OSError as error:
        return f"experiment: the worker's /metrics could not be read ({error})"
    arms: dict[str, dict[str, float]] = {}
    for (sample, labels), value in samples.items():
        if sample.startswith("driftrec_experiment_"):
            label = dict(labels)
            name = sample.removeprefix("driftrec_experiment_") + "_" * ("bound" in label)
            arms.setdefault(label["arm"], {})[name + label.get("bound", "")] = value
    lines = [f"experiment {settings.serving_experiment.id if settings.serving_experiment else ''} (from /metrics):"]
    for arm, m in arms.items():
        versus = (f"  CTR − control {m['ctr_difference_value']:+.3f} [{m['ctr_difference_low']:+.3f}, "
                  f"{m['ctr_difference_high']:+.3f}]") if "ctr_difference_low" in m else ""
        lines.append(f"  {arm:16s} lists {int(m['lists']):5d}  impressions {int(m['impressions']):5d}  clicks "
                     f"{int(m['clicks']):5d}  CTR {m['ctr']:.3f}  conversion {m['conversion_rate']:.3f}{versus}")
    return "\n".join(lines)


def _produce_events(settings: Settings, users: int, events_per_user: int, rate: float, stop_flag: threading.Event,
                    ) -> None:
    items = builtin_catalogue()
    producer = idempotent_producer(settings)
    topic = settings.behaviour_topics[0]
    try:
        for event in behaviour_stream(people(users, events_per_user), items, events_per_user,
                                      int(time.time() * 1000), seed=1):
            if stop_flag.is_set():
                break
            producer.send(topic, key=event.user_id.encode(), value=orjson.dumps(event.to_dict()))
            time.sleep(1.0 / rate)
    finally:
        producer.flush()
        producer.close()


def run_demo(duration_s: float = 60.0, users: int = 16, rate: float = 30.0, watch: int = 3) -> int:
    started_broker = "KAFKA_BOOTSTRAP" not in os.environ
    base = Settings.from_env()
    if started_broker:
        base = replace(base, bootstrap=start(LocalBroker()))
    settings = run_settings(base, time.strftime("demo-%Y%m%d-%H%M%S"))
    if settings.serving_experiment is None:
        settings = replace(settings, experiment=DEMO_EXPERIMENT)
    ensure_topics(settings)
    worker = start_worker(settings, Path(settings.data_dir) / "worker.log")
    print(f"worker started (pid {worker.pid}); log: {Path(settings.data_dir) / 'worker.log'}", flush=True)
    items = builtin_catalogue()
    titles = {item.item_id: item.title for item in items}
    producer = idempotent_producer(settings)
    for line in publish_lines(producer, settings.items_topic, (orjson.dumps(i.to_dict()) for i in items),
                              items=True).lines("items", settings.items_topic):
        print(line, flush=True)
    producer.close()
    stop_flag = threading.Event()
    events_per_user = int(duration_s * rate / users) + 1
    feeder = threading.Thread(target=_produce_events, args=(settings, users, events_per_user, rate, stop_flag),
                              daemon=True)
    feeder.start()
    print(f"streaming {users} synthetic users at {rate:.0f} events/s for {duration_s:.0f}s; "
          "half of them switch topic midway (Ctrl-C stops)", flush=True)
    watched = {f"user-{i:04d}" for i in range(watch)}
    last_top: dict[str, list[str]] = {}
    deadline = time.monotonic() + duration_s
    shoppers = ListShoppers(settings, people(users, events_per_user), items, Shopper(search_otherwise=False), seed=2)
    try:
        for rec in follow(settings, from_beginning=True, until=deadline):
            shoppers.answer(rec)
            top = [item["item_id"] for item in rec["items"][:3]]
            if rec["user_id"] in watched and top != last_top.get(rec["user_id"]):
                last_top[rec["user_id"]] = top
                print(format_recommendation(rec, titles, top=3), flush=True)
    except KeyboardInterrupt:
        print("stopping…", flush=True)
    finally:
        stop_flag.set()
        feeder.join(timeout=10)
        shoppers.close()
        print(experiment_summary(settings), flush=True)
        stop_worker(worker)
        if started_broker:
            stop(LocalBroker())
        print("demo stopped: worker and broker shut down", flush=True)
    return 0
