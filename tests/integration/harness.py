"""Helpers for tests that run the real pipeline: a worker subprocess, producing events, reading topics."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.catalogue_data import builtin_catalogue
from streams.demo import run_settings, start_worker, stop_worker
from streams.events import BehaviorEvent, Item
from streams.kafka_clients import idempotent_producer
from streams.metrics import scrape
from streams.produce import publish_lines
from streams.settings import Settings
from streams.topics_admin import ensure_topics


@dataclass
class PipelineRun:
    """One pipeline on fresh topics: its settings, its worker process and what was produced."""

    settings: Settings
    workdir: Path
    items: list[Item] = field(default_factory=builtin_catalogue)
    worker: subprocess.Popen[bytes] | None = None
    produced: dict[str, int] = field(default_factory=dict)
    acted: dict[str, set[str]] = field(default_factory=dict)
    last_event: dict[str, str] = field(default_factory=dict)
    event_ids: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def create(cls, bootstrap: str, name: str, workdir: Path, **overrides: Any) -> PipelineRun:
        base = Settings(bootstrap=bootstrap, data_dir=str(workdir), window_max_wait_ms=200, **overrides)
        run = cls(run_settings(base, name), workdir)
        ensure_topics(run.settings)
        producer = idempotent_producer(run.settings)
        report = publish_lines(producer, run.settings.items_topic, (orjson.dumps(i.to_dict()) for i in run.items),
                               items=True)
        producer.close()
        assert report.sent == len(run.items) and not report.rejected
        return run

    def start(self) -> None:
        self.worker = start_worker(self.settings, self.workdir / "worker.log")

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def log_tail(self, chars: int = 3000) -> str:
        path = self.workdir / "worker.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def produce(self, events: Iterable[BehaviorEvent], raw: Iterable[tuple[bytes, bytes]] = ()) -> None:
        producer = idempotent_producer(self.settings)
        topic = self.settings.behaviour_topics[0]
        for event in events:
            producer.send(topic, key=event.user_id.encode(), value=orjson.dumps(event.to_dict()))
            self.produced[event.user_id] = self.produced.get(event.user_id, 0) + 1
            if event.item_id:
                self.acted.setdefault(event.user_id, set()).add(event.item_id)
            self.last_event[event.user_id] = event.event_id
            self.event_ids.setdefault(event.user_id, []).append(event.event_id)
        for key, value in raw:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()

    def latest_by_user(self, topic: str, done: Any, timeout_s: float) -> dict[str, dict[str, Any]]:
        """Reads `topic` from the start, keeping each user's record of highest version (or latest), until
        `done(latest)` holds or the timeout passes."""
        latest: dict[str, dict[str, Any]] = {}
        consumer = KafkaConsumer(topic, bootstrap_servers=self.settings.bootstrap, auto_offset_reset="earliest")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and not done(latest):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        value = orjson.loads(record.value)
                        user = value["user_id"]
                        if user not in latest or value.get("version", 0) >= latest[user].get("version", 0):
                            latest[user] = value
        finally:
            consumer.close()
        return latest

    def final_recommendations(self, timeout_s: float) -> dict[str, dict[str, Any]]:
        """Each user's latest list, waiting until it was triggered by that user's last event."""
        return self.latest_by_user(
            self.settings.recommendations_topic,
            lambda latest: all(latest.get(u, {}).get("trigger_event_id") == e for u, e in self.last_event.items()),
            timeout_s,
        )

    def applied_counts(self, timeout_s: float) -> dict[str, int]:
        """Each user's applied-event count (the state version carried by the weights topic), waiting until every
        user reached what was produced for them."""
        latest = self.latest_by_user(
            self.settings.weights_topic,
            lambda latest: all(latest.get(u, {}).get("version") == n for u, n in self.produced.items()),
            timeout_s,
        )
        return {user: value["version"] for user, value in latest.items()}

    def wait_for_metric(self, name: str, value: float, timeout_s: float) -> float:
        """Scrapes the worker's /metrics until the unlabelled metric `name` equals `value`; returns the last seen."""
        deadline = time.monotonic() + timeout_s
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = scrape(self.settings.web_port).get((name, ()))
            except OSError:
                seen = None  # the web server is not up yet
            if seen == value:
                break
            time.sleep(0.5)
        return -1.0 if seen is None else seen

    def group_lag(self) -> dict[str, int]:
        """Per input topic, how many records the worker's consumer group has not committed yet."""
        admin = KafkaAdminClient(bootstrap_servers=self.settings.bootstrap)
        consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap)
        try:
            committed = admin.list_group_offsets(self.settings.app_id)[self.settings.app_id]
            lag = {}
            inputs = (*self.settings.behaviour_topics, self.settings.windows_topic, self.settings.encoded_topic,
                      self.settings.weights_topic)
            for topic in inputs:
                partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                ends = consumer.end_offsets(partitions)
                lag[topic.rsplit("-", 1)[-1]] = sum(
                    end - max(committed.get(tp).offset if committed.get(tp) else 0, 0) for tp, end in ends.items()
                )
            return lag
        finally:
            consumer.close()
            admin.close()

    def read_all(self, topic: str) -> list[dict[str, Any]]:
        return [value for _, value in self.read_all_timed(topic)]

    def read_all_timed(self, topic: str) -> list[tuple[int, dict[str, Any]]]:
        """Every record of `topic` with its timestamp (ms, the producer's clock), partition by partition."""
        consumer = KafkaConsumer(topic, bootstrap_servers=self.settings.bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000)
        records = [(r.timestamp, orjson.loads(r.value)) for r in consumer]
        consumer.close()
        return records

    def where_events_stopped(self, users: Iterable[str]) -> dict[str, dict[str, list[str]]]:
        """For each user, the produced event ids that never reached the windows topic, and those that never
        reached the encoded topic: the stage where a lost event was dropped."""
        in_windows = {e["event_id"] for window in self.read_all(self.settings.windows_topic) for e in window}
        in_encoded = {e["event_id"] for payload in self.read_all(self.settings.encoded_topic)
                      for e in payload["events"]}
        return {
            user: {"not windowed": [e for e in self.event_ids.get(user, []) if e not in in_windows],
                   "not encoded": [e for e in self.event_ids.get(user, []) if e not in in_encoded]}
            for user in users
        }
