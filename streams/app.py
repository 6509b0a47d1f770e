"""The Faust app, its topics and the worker runtime. Settings come from the environment.

The agents are registered by `streams.worker`, the module a worker runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from streams.faust_transport import AckedTable, App, CommitSafeConsumer, RawTopic
from streams.kafka_clients import faust_credentials
from streams.runtime import WorkerRuntime
from streams.settings import Settings

settings = Settings.from_env()
runtime = WorkerRuntime(settings)
Path(settings.data_dir).mkdir(parents=True, exist_ok=True)

app = App(
    settings.faust_app_id,
    broker=["kafka://" + host for host in settings.bootstrap.split(",")],
    store="rocksdb://",
    datadir=f"{settings.data_dir}/faust",
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_in_thread=False,
    web_tables_enabled=False,
    broker_credentials=faust_credentials(settings),
    table_standby_replicas=0,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
    broker_commit_every=500,
    broker_commit_interval=1.0,
    Table=AckedTable,
)

ingest_topic = RawTopic.of(app, *settings.behaviour_topics, settings.ticks_topic)
ticks_topic = RawTopic.of(app, settings.ticks_topic)
windows_topic = RawTopic.of(app, settings.windows_topic)
encoded_topic = RawTopic.of(app, settings.encoded_topic)
weights_topic = RawTopic.of(app, settings.weights_topic)
recommendations_topic = RawTopic.of(app, settings.recommendations_topic)
dead_letter_topic = RawTopic.of(app, settings.dead_letter_topic)
shared_topic = RawTopic.of(app, settings.shared_topic)


STAGE_INPUTS = frozenset((*settings.behaviour_topics, settings.ticks_topic, settings.windows_topic,
                          settings.encoded_topic))


def owned_stage_partitions() -> list[TP]:
    """The partitions of stage-input topics assigned to this worker (table changelogs, which Faust reads only to
    restore, are left out; none before the consumer starts)."""
    try:
        return [tp for tp in app.consumer.assignment() if tp.topic in STAGE_INPUTS]
    except ConsumerNotStarted:
        return []


def committed_offset(tp: TP) -> int:
    """The next offset this worker's group will resume from on `tp` (0 before its first commit)."""
    return commit_safe_consumer()._committed_offset.get(tp) or 0


def commit_safe_consumer() -> CommitSafeConsumer:
    """The app's consumer, with the attributes the liveness checks read."""
    return cast(CommitSafeConsumer, app.consumer)


def consumer_lag() -> dict[tuple[str, int], int]:
    """High watermark minus committed offset for each owned stage-input partition whose high watermark is known
    (after its first fetch)."""
    lags: dict[tuple[str, int], int] = {}
    for tp in owned_stage_partitions():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            lags[(tp.topic, tp.partition)] = max(highwater - committed_offset(tp), 0)
    return lags


runtime.metrics.watch_lag(consumer_lag)
