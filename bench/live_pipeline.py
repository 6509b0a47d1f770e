"""A live pipeline for benchmarks: fresh topics on the real broker, a catalogue of any size, one worker or several
in one consumer group, and the workers' own Prometheus metrics as the instrument panel."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from subprocess import Popen
from typing import Any

import orjson

from deploy.local_kafka import LocalBroker, start
from streams.catalogue_data import builtin_catalogue
from streams.demo import run_settings, start_worker, stop_worker
from streams.events import BehaviorEvent, Item
from streams.kafka_clients import idempotent_producer
from streams.metrics import scrape
from streams.produce import publish_lines
from streams.settings import Settings
from streams.topics_admin import delete_topics_containing, ensure_topics


def scaled_catalogue(n_items: int) -> list[Item]:
    """`n_items` items: the built-in catalogue's items, repeated as numbered editions (same topics as tags)."""
    base = builtin_catalogue()
    return [
        replace(item, item_id=f"{item.item_id}-{n // len(base)}", title=f"{item.title}, edition {n // len(base)}")
        for n, item in ((n, base[n % len(base)]) for n in range(n_items))
    ]


def send_events(
    settings: Settings, events: Iterable[BehaviorEvent], rate: float | None = None,
    stop: threading.Event | None = None, sent_at: dict[str, float] | None = None,
) -> int:
    """Sends events keyed by user to the first behaviour topic, at `rate` per second (or as fast as possible),
    until they run out or `stop` is set; records each send time in `sent_at`; returns how many were sent."""
    producer = idempotent_producer(settings)
    topic = settings.behaviour_topics[0]
    started = time.monotonic()
    sent = 0
    for event in events:
        if stop is not None and stop.is_set():
            break
        ahead = sent / rate - (time.monotonic() - started) if rate else 0.0
        if ahead > 0:
            time.sleep(ahead)
        if sent_at is not None:
            sent_at[event.event_id] = time.time()
        producer.send(topic, key=event.user_id.encode(), value=orjson.dumps(event.to_dict()))
        sent += 1
    producer.flush()
    producer.close()
    return sent


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants (`driftrec worker` supervises a child worker, which runs
    its encoder in a child of its own with `encoder_host=process`), whichever of its threads started them. Pages
    that several of them map (the libraries torch loads in the worker and in its encoder process) count once per
    process."""
    return tree_memory_mib(pid, "status", "VmRSS:")


def pss_mib(pid: int) -> float:
    """Proportional memory of a process and its descendants: each page they share is split between the processes
    that map it, so a shared library counts once in the sum (what the tree costs the machine)."""
    return tree_memory_mib(pid, "smaps_rollup", "Pss:")


def tree_memory_mib(pid: int, proc_file: str, field: str) -> float:
    """The sum of a /proc/<pid>/`proc_file` `field` (in kB) over a process and its descendants, in MiB."""
    lines = Path(f"/proc/{pid}/{proc_file}").read_text().splitlines()
    own = next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field)), 0.0)
    return own + sum(tree_memory_mib(child, proc_file, field) for child in child_pids(pid))


def child_pids(pid: int) -> list[int]:
    """The children of a process, whichever of its threads started them."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def worker_process(supervisor_pid: int) -> int:
    """The pid of the worker that `driftrec worker` (pid `supervisor_pid`) runs: its child `worker --once`."""
    for child in child_pids(supervisor_pid):
        if b"--once" in Path(f"/proc/{child}/cmdline").read_bytes():
            return child
    raise LookupError(f"process {supervisor_pid} runs no worker")


@dataclass
class LivePipeline:
    """Fresh topics and its workers (each on the next web port, with its own state); `metrics()` scrapes them."""

    settings: Settings
    items: list[Item]
    workers: list[Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, name: str, n_items: int, **overrides: Any) -> LivePipeline:
        base = Settings.from_env(**overrides)
        if "KAFKA_BOOTSTRAP" not in os.environ:
            base = replace(base, bootstrap=start(LocalBroker()))
        settings = run_settings(base, time.strftime(f"{name}-%Y%m%d-%H%M%S"))
        ensure_topics(settings)
        items = scaled_catalogue(n_items)
        producer = idempotent_producer(settings)
        publish_lines(producer, settings.items_topic, (orjson.dumps(i.to_dict()) for i in items), items=True)
        producer.close()
        return cls(settings, items)

    def start(self, workers: int = 1) -> None:
        for n in range(workers):
            settings = self.worker_settings(n)
            self.workers.append(start_worker(settings, Path(settings.data_dir) / "worker.log"))

    def worker_settings(self, n: int) -> Settings:
        if n == 0:
            return self.settings
        return replace(self.settings, web_port=self.settings.web_port + n,
                       data_dir=str(Path(self.settings.data_dir) / f"worker-{n}"))

    def stop(self) -> None:
        """Stops the workers and deletes the run's topics."""
        for worker in self.workers:
            stop_worker(worker)
        delete_topics_containing(self.settings, self.settings.app_id)

    def metrics(self) -> dict[str, float]:
        """Every sample of every worker, labels folded into the name (`name{label=value}`), summed over the workers
        and over partitions for the lag."""
        samples: dict[str, float] = {}
        for n in range(max(len(self.workers), 1)):
            for name, value in self.worker_metrics(n).items():
                samples[name] = samples.get(name, 0.0) + value
        return samples

    def worker_metrics(self, n: int) -> dict[str, float]:
        samples: dict[str, float] = {}
        for (sample, labels), value in scrape(self.worker_settings(n).web_port).items():
            kept = [(k, v) for k, v in labels if k != "partition"]
            name = sample + ("{" + ",".join(f"{k}={v}" for k, v in kept) + "}" if kept else "")
            samples[name] = samples.get(name, 0.0) + value
        return samples

    def total(self, metrics: dict[str, float], prefix: str) -> float:
        return sum(value for name, value in metrics.items() if name.startswith(prefix))

    def wait_ready(self, timeout_s: float = 600) -> float:
        """Waits until every worker serves metrics with the whole catalogue loaded; returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                if all(self.worker_metrics(n).get("driftrec_catalogue_items", 0) >= len(self.items)
                       for n in range(max(len(self.workers), 1))):
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"worker not ready after {timeout_s:.0f}s; see {self.settings.data_dir}/worker.log")
