"""A worker's Prometheus metrics, in a registry of its own (served at /metrics by the worker's web server)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from streams.dead_letter import reason_category

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WINDOW_WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.2, 0.3, 0.325, 0.35, 0.375, 0.4, 0.45, 0.5, 0.6, 0.8, 1.0, 2.5, 5.0, 10.0)
"""Fine around the default 300 ms window wait, where most windows flush."""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Scraped metrics: (sample name, its labels sorted) -> value."""
ReportReader = Callable[[], tuple[str, list[dict[str, Any]]]]
"""Returns the experiment's id and its per-arm report (`sinks.arm_statistics.experiment_report`)."""
LagReader = Callable[[], Mapping[tuple[str, int], int]]
"""Returns the consumer lag (high watermark minus committed offset) per (topic, partition) this worker owns."""


class ConsumerLagCollector(Collector):
    """Reads the lag at scrape time, so the figure is never stale."""

    def __init__(self, read_lag: LagReader) -> None:
        self.read_lag = read_lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("driftrec_consumer_lag", "Messages behind the high watermark, per partition owned",
                                   labels=["topic", "partition"])
        for (topic, partition), lag in sorted(self.read_lag().items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


class ExperimentCollector(Collector):
    """Per-arm counts, rates and differences from the control (labels `experiment`, `arm`), read at scrape time
    from the attribution stage's totals over the users this worker owns."""

    COUNTS = ("users", "lists", "impressions", "clicks", "conversions")
    RATES = ("ctr", "conversion_rate")
    HELP: ClassVar[dict[str, str]] = {"users": "Arm's users with at least one impression",
                                      "ctr": "Arm's lists clicked through per impression (CTR@k)",
                                      "conversion_rate": "Arm's lists converted (cart, purchase) per impression"}

    def __init__(self, read_report: ReportReader) -> None:
        self.read_report = read_report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        experiment, rows = self.read_report()
        labels = ["experiment", "arm"]
        families = {name: GaugeMetricFamily(f"driftrec_experiment_{name}", self.HELP.get(name, f"Arm's {name}"),
                                            labels=labels)
                    for name in (*self.COUNTS, *self.RATES)}
        differences = {name: GaugeMetricFamily(
            f"driftrec_experiment_{name}_difference",
            f"Arm's {name} minus the control's, with its 95% interval (bound = value, low, high)",
            labels=[*labels, "bound"]) for name in self.RATES}
        for row in rows:
            for name, family in families.items():
                family.add_metric([experiment, row["arm"]], row[name])
            for name, family in differences.items():
                for bound, value in row.get(f"{name}_difference", {}).items():
                    if value is not None:
                        family.add_metric([experiment, row["arm"], bound], value)
        yield from families.values()
        yield from differences.values()


class WorkerMetrics:
    """Every figure a worker reports; `render()` gives the Prometheus text format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("driftrec_events_in", "Valid behaviour events accepted, per kind", ["kind"],
                                 registry=r)
        self.dead_letters = Counter("driftrec_dead_letters", "Records sent to the dead-letter topic, per reason",
                                    ["reason"], registry=r)
        self.window_flushes = Counter("driftrec_window_flushes", "Per-user windows flushed to the encoder",
                                      registry=r)
        self.encoder_batch_size = Histogram("driftrec_encoder_batch_size", "Texts per encoder call",
                                            buckets=BATCH_BUCKETS, registry=r)
        self.encoder_seconds = Histogram("driftrec_encoder_seconds", "Time per encoder call",
                                         buckets=LATENCY_BUCKETS_S, registry=r)
        self.query_cache_hits = Counter("driftrec_query_cache_hits",
                                        "Distinct search queries of a batch answered from the recent-query cache",
                                        registry=r)
        self.items_encoded = Counter("driftrec_items_encoded", "Catalogue items encoded (cache misses)", registry=r)
        self.events_applied = Counter("driftrec_events_applied", "Events applied to user states", registry=r)
        self.events_duplicate = Counter("driftrec_events_duplicate",
                                        "Redelivered events recognised and not applied again", registry=r)
        self.recommendations_out = Counter("driftrec_recommendations", "Recommendation lists written",
                                           registry=r)
        self.event_to_recommendation = Histogram(
            "driftrec_event_to_recommendation_seconds",
            "From an event's arrival at the worker to its user's recommendation being sent",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.window_wait = Histogram(
            "driftrec_window_wait_seconds",
            "From a window's first event's arrival to the window's flush (the window's wait, then the wait for a "
            "message of its partition or a tick)", buckets=WINDOW_WAIT_BUCKETS_S, registry=r)
        self.weigh_step = Histogram(
            "driftrec_weigh_step_seconds",
            "A weigh step from its start to its outputs acked (learning, the shared log's round trip, ranking)",
            buckets=LATENCY_BUCKETS_S, registry=r)
        self.shared_events = Gauge(
            "driftrec_shared_signal_events",
            "Distinct events fed into the shared signals (popularity, co-visitation, prior), resumed ones included",
            registry=r)
        self.shared_snapshot_events = Gauge("driftrec_shared_snapshot_events",
                                            "driftrec_shared_signal_events as of the last snapshot written",
                                            registry=r)
        self.shared_staleness = Histogram(
            "driftrec_shared_log_staleness_seconds",
            "How long after it was sent each batch of the shared log was folded into this worker's signals",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r)
        self.shared_malformed = Counter("driftrec_shared_log_malformed",
                                        "Records of the shared log that were no increment (skipped)", registry=r)
        self.shared_wait_timeouts = Counter(
            "driftrec_shared_wait_timeouts",
            "Weigh steps that ranked before their own increments came back folded (shared_wait_s passed)", registry=r)
        self.catalogue_items = Gauge("driftrec_catalogue_items", "Items in this worker's catalogue", registry=r)

    def dead_lettered(self, reason: str) -> None:
        self.dead_letters.labels(reason_category(reason)).inc()

    def encoded(self, texts: int, seconds: float) -> None:
        if texts:
            self.encoder_batch_size.observe(texts)
            self.encoder_seconds.observe(seconds)

    def recommended(self, latencies_ms: Iterable[float]) -> None:
        for latency in latencies_ms:
            self.recommendations_out.inc()
            self.event_to_recommendation.observe(latency / 1000.0)

    def watch_experiment(self, read_report: ReportReader) -> None:
        self.registry.register(ExperimentCollector(read_report))

    def watch_lag(self, read_lag: LagReader) -> None:
        self.registry.register(ConsumerLagCollector(read_lag))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    """A worker's Prometheus metrics, read from its web server."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}
