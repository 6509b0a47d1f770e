"""The attribution stage of an online experiment: reads the lists served and the behaviour topics (impressions and
actions), keeps each user's exposure record (`sinks.attribution.Exposures`) in the `exposures` table, and the
per-arm totals of the users this worker owns (`runtime.experiment_totals`), which /metrics, /api/experiments/ and
the live page report.

Registered only when an experiment is set (`Settings.serving_experiment`). Both inputs are keyed by user and have
the same partitions, so a user's lists, impressions, actions and record share one partition; the record is
written in the context of the last message of that partition in the batch. Behaviour records ingest would reject
are left to ingest, which dead-letters them. Kafka orders records within a partition of one topic only: a user's
impressions and actions go to the same behaviour topic, or an action may be read before the impression that
showed its item (and then earns nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson
from faust.types import EventT

from sinks.arm_statistics import ExperimentTotals, arm_key, experiment_report
from sinks.attribution import Exposures
from streams.agent_support import now_ms
from streams.agents import Fence, each_current_batch
from streams.app import app, runtime, settings
from streams.dead_letter import SourcePosition
from streams.events import EXPOSURE_KINDS
from streams.faust_transport import AckedTable, RawTopic, in_event_context
from streams.ingest_routing import Rejected, route_event
from weighting.experiment import Experiment

log = logging.getLogger(__name__)
EXPERIMENT = cast(Experiment, settings.serving_experiment)
HISTORY_EVERY_S = 5.0

exposures = cast(AckedTable, app.Table("exposures", key_type=str, value_type=bytes, partitions=settings.partitions))
attribution_topic = RawTopic.of(app, *settings.behaviour_topics, settings.recommendations_topic)


@app.agent(attribution_topic)
async def attribute(stream):  # type: ignore[no-untyped-def]
    """Counts lists, impressions, click-throughs and conversions per arm, a batch at a time."""
    await each_current_batch(stream, "attribute", attribute_batch)


@dataclass
class AttributionBatch:
    """A batch's users' exposure records as read, as changed, and the last message of each partition."""

    last_of_partition: dict[int, EventT] = field(default_factory=dict)  # type: ignore[type-arg]
    partition_of: dict[str, int] = field(default_factory=dict)
    records: dict[str, Exposures] = field(default_factory=dict)
    tallies_before: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    def record(self, user_id: str, partition: int) -> Exposures:
        if user_id not in self.records:
            self.partition_of[user_id] = partition
            with in_event_context(self.last_of_partition[partition]):
                self.records[user_id] = Exposures.from_json(exposures.get(user_id))
            self.tallies_before[user_id] = {arm: list(t) for arm, t in self.records[user_id].tallies.items()}
        return self.records[user_id]

    def store(self) -> None:
        for user_id in self.changed:
            with in_event_context(self.last_of_partition[self.partition_of[user_id]]):
                exposures[user_id] = self.records[user_id].to_json()


async def attribute_batch(events: Sequence[EventT]) -> None:  # type: ignore[type-arg]
    """Applies a batch to its users' records, writes the changed ones and waits for their change log's acks, then
    moves the per-arm totals by the change."""
    batch = AttributionBatch()
    for event in events:
        batch.last_of_partition[event.message.partition] = event
    for event in events:
        if event.key is None:
            continue
        user_id = cast(bytes, event.key).decode()
        record = batch.record(user_id, event.message.partition)
        if observe(record, event):
            batch.changed.add(user_id)
    fence = Fence.of(batch.last_of_partition.values())
    if fence.broken(f"{len(events)} messages were attributed"):
        return
    batch.store()
    for user_id in batch.changed:  # the totals follow the local store, whose records a retry finds changed
        runtime.experiment_totals.replace(batch.tallies_before[user_id], batch.records[user_id].tallies)
    await exposures.changelog_acked()


def observe(record: Exposures, message: EventT) -> bool:  # type: ignore[type-arg]
    """Applies one record of either input to its user's exposure record; whether it changed it. A behaviour
    record counts only as ingest would accept it (valid, keyed by its user, naming known items), stamped no later
    than its arrival."""
    if message.message.topic == settings.recommendations_topic:
        served = orjson.loads(message.value or b"{}")
        if served.get("experiment") != EXPERIMENT.id:
            return False
        return record.served(served["list_id"], arm_key(EXPERIMENT.id, served["arm"]), served["ts"])
    arrived = int(now_ms())
    routed = route_event(message.value, message.key, SourcePosition.of(message.message), arrived,
                         limits=runtime.limits, catalogue=runtime.model.catalogue)
    if isinstance(routed, Rejected):
        return False  # ingest dead-letters it
    event = routed.event.no_later_than(arrived)
    if event.kind in EXPOSURE_KINDS:
        user_arm = arm_key(EXPERIMENT.id, EXPERIMENT.arm_of(event.user_id).name)
        return record.impression(event.event_id, cast(str, event.list_id), event.item_ids, event.ts,
                                 user_arm=user_arm, window_ms=EXPERIMENT.attribution_ms)
    return record.action(event.event_id, event.kind, event.item_id, event.ts, window_ms=EXPERIMENT.attribution_ms)


@exposures.on_recover
async def count_recovered_records() -> None:
    """After recovery (a start, a rebalance), the totals are summed again over the records this worker owns."""
    totals = ExperimentTotals()
    for _, raw in exposures.items():
        totals.replace({}, Exposures.from_json(raw).tallies)
    runtime.experiment_totals = totals
    log.info("experiment %s: totals of %d arms recounted after recovery", EXPERIMENT.id, len(totals.arms))


@app.timer(interval=HISTORY_EVERY_S)
async def remember_experiment_report() -> None:
    """A point of the live page's experiment chart."""
    runtime.experiment_history.append((int(now_ms()), experiment_report(EXPERIMENT, runtime.experiment_totals)))
