"""Faults on the real broker: SIGKILLed workers, lost local state, a restarted broker, wrong credentials."""

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from streams.synthetic import behaviour_stream, make_users
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = int(os.environ.get("DRIFTREC_RELIABILITY_USERS", "200"))
EVENTS_PER_USER = int(os.environ.get("DRIFTREC_RELIABILITY_EVENTS_PER_USER", "20"))
KILLS = int(os.environ.get("DRIFTREC_RELIABILITY_KILLS", "2"))  # raise it to stress the crash path locally


def synthetic_events(run: PipelineRun, seed: int, per_user: int = EVENTS_PER_USER, prefix: str = "") -> list:  # type: ignore[type-arg]
    topics = sorted({t for item in run.items for t in item.tags})
    users = make_users(USERS, topics, seed=seed)
    events = list(behaviour_stream(users, run.items, per_user, int(time.time() * 1000) - 3_600_000, seed=seed))
    return [replace(e, event_id=prefix + e.event_id) for e in events] if prefix else events


def wait_for_progress(run: PipelineRun, minimum: int, beyond: dict[str, int] | None = None,
                      timeout_s: float = 120) -> None:
    """Waits until at least `minimum` users have a weight update with a version above `beyond` (default 0)."""
    floor = beyond or {}

    def advanced(latest: dict) -> int:  # type: ignore[type-arg]
        return sum(value["version"] > floor.get(user, 0) for user, value in latest.items())

    latest = run.latest_by_user(run.settings.weights_topic, lambda seen: advanced(seen) >= minimum, timeout_s)
    assert advanced(latest) >= minimum, run.log_tail()


def test_sigkilled_worker_loses_nothing_and_counts_nothing_twice(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = PipelineRun.create(kafka_bootstrap, unique_name("crash"), tmp_path, web_port=6168)
    events = synthetic_events(run, seed=11)
    part = len(events) // (KILLS + 1)
    run.start()
    try:
        for kill in range(KILLS):
            run.produce(events[kill * part : (kill + 1) * part])
            wait_for_progress(run, USERS * (kill + 1) // (KILLS + 2))
            run.kill()
            run.start()
        run.produce(events[KILLS * part :])
        counts = run.applied_counts(timeout_s=300)
        recommendations = run.final_recommendations(timeout_s=60)
        lag = run.group_lag()
    finally:
        run.stop()
    assert sum(run.produced.values()) == len(events) >= 3000
    lost = {u: (n, counts.get(u)) for u, n in run.produced.items() if counts.get(u, 0) < n}
    doubled = {u: (n, counts[u]) for u, n in run.produced.items() if counts.get(u, 0) > n}
    assert not lost, (f"{len(lost)} users with lost events (produced, applied): {list(lost.items())[:5]}; "
                      f"where they stopped: {run.where_events_stopped(list(lost)[:5])}; "
                      f"uncommitted input per topic: {lag}\n{run.log_tail()}")
    assert not doubled, f"users with events counted twice: {list(doubled.items())[:5]}"
    assert set(recommendations) == set(run.produced)


def test_state_recovers_from_changelog_and_survives_a_broker_restart(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from deploy.local_kafka import LocalBroker, start, stop

    run = PipelineRun.create(kafka_bootstrap, unique_name("recover"), tmp_path, web_port=6169)
    first = synthetic_events(run, seed=21, per_user=6)
    run.start()
    try:
        run.produce(first)
        before = run.applied_counts(timeout_s=240)
        assert before == run.produced, run.log_tail()
        run.stop()
        state_dir = Path(run.settings.data_dir) / "faust"
        assert list(state_dir.rglob("CURRENT")), "the worker kept no RocksDB state"
        shutil.rmtree(state_dir)
        run.start()
        second = synthetic_events(run, seed=22, per_user=3, prefix="after-")
        run.produce(second[: len(second) // 2])
        wait_for_progress(run, USERS // 4, beyond=before)
        if "KAFKA_BOOTSTRAP" not in os.environ:
            stop(LocalBroker())
            time.sleep(3)
            start(LocalBroker())
        run.produce(second[len(second) // 2 :])
        after = run.applied_counts(timeout_s=300)
        lost = {u: (n, after.get(u)) for u, n in run.produced.items() if after.get(u) != n}
        stopped = run.where_events_stopped(list(lost)[:5]) if lost else {}
    finally:
        run.stop()
    assert after == run.produced, f"{len(lost)} users (produced, applied): {list(lost.items())[:5]}; " \
                                  f"where they stopped: {stopped}"


def test_shared_signals_survive_a_sigkill_counting_each_event_once(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Popularity, co-visitation and the prior are no user's state: a killed worker resumes them from its last
    snapshot, and events delivered again after the restart are not fed into them twice."""
    run = PipelineRun.create(kafka_bootstrap, unique_name("shared"), tmp_path, web_port=6169, shared_snapshot_s=0.5)
    events = synthetic_events(run, seed=13, per_user=6)
    half = len(events) // 2
    fed_first, fed_all = (sum(e.item_id is not None for e in part) for part in (events[:half], events))
    run.start()
    try:
        run.produce(events[:half])
        snapshot = run.wait_for_metric("driftrec_shared_snapshot_events", fed_first, timeout_s=180)
        assert snapshot == fed_first, run.log_tail()
        run.kill()
        run.start()
        run.produce(events[half:])
        counts = run.applied_counts(timeout_s=300)
        fed = run.wait_for_metric("driftrec_shared_signal_events", fed_all, timeout_s=60)
        log = (tmp_path / "worker.log").read_text()
    finally:
        run.stop()
    assert counts == run.produced
    assert "shared signals: resumed from the last snapshot" in log
    assert fed == fed_all  # without the snapshot: only the second half; fed twice: more
