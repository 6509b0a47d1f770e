"""The worker's start-up: the interpreter's tuning, its readiness, and its exit when a follower fails."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("faust")

from streams import liveness, worker
from streams.app import runtime


@pytest.mark.asyncio
async def test_startup_objects_are_frozen_once_the_catalogue_is_in() -> None:
    gc.unfreeze()
    runtime.model_ready.clear()
    try:
        freezing = asyncio.ensure_future(worker.freeze_startup_objects())
        await asyncio.sleep(0.05)
        assert not freezing.done() and gc.get_freeze_count() == 0  # still loading the catalogue
        runtime.model_ready.set()
        await asyncio.wait_for(freezing, timeout=5)
        assert gc.get_freeze_count() > 10_000  # every module, class and function loaded so far
    finally:
        gc.unfreeze()
        runtime.model_ready.clear()


@pytest.mark.asyncio
async def test_ready_answers_503_until_the_catalogue_and_the_shared_signals_caught_up() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    runtime.catalogue_caught_up.clear()
    runtime.model_ready.clear()
    try:
        async with TestClient(TestServer(worker.app.web.web_app)) as client:
            answers = []
            for caught_up in (None, runtime.catalogue_caught_up, runtime.model_ready):
                if caught_up is not None:
                    caught_up.set()
                response = await client.get("/ready")
                answers.append((response.status, await response.json()))
    finally:
        runtime.catalogue_caught_up.clear()
        runtime.model_ready.clear()
    assert answers == [(503, {"ready": False, "waiting_for": ["catalogue", "shared signals"]}),
                       (503, {"ready": False, "waiting_for": ["shared signals"]}),
                       (200, {"ready": True, "waiting_for": []})]


@pytest.mark.asyncio
async def test_a_follower_that_fails_ends_the_worker_with_its_reason_in_one_line(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    exits: list[int] = []
    monkeypatch.setattr(liveness, "exit_now", exits.append)

    async def follower() -> None:
        raise OSError("no model named no-such-model\nsee the docs")

    with caplog.at_level(logging.INFO, logger=liveness.__name__):
        await liveness.exit_if_failed("catalogue follower", follower())
    assert exits == [liveness.FAILED_TASK_EXIT_CODE]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"catalogue follower failed: OSError: no model named no-such-model; exiting (exit code "
        f"{liveness.FAILED_TASK_EXIT_CODE})"]


def test_an_encoder_only_worker_waits_for_no_catalogue() -> None:
    from streams.runtime import WorkerRuntime
    from streams.settings import Settings

    assert WorkerRuntime(Settings(role="encoder")).waiting_for() == []
    assert WorkerRuntime(Settings(role="core")).waiting_for() == ["catalogue", "shared signals"]


@pytest.mark.asyncio
async def test_a_stall_report_says_where_aiokafka_holds_the_partition() -> None:
    from types import SimpleNamespace

    from aiokafka.consumer.fetcher import FetchResult
    from aiokafka.consumer.subscription_state import TopicPartitionState
    from faust.types import TP

    stalled, waiting, other = TP("ticks", 0), TP("ticks", 1), TP("events", 0)
    at_offset, awaiting = TopicPartitionState(None), TopicPartitionState(None)
    at_offset.reset_to(7)
    awaiting.await_reset(1)
    states = {stalled: at_offset, waiting: awaiting}
    fetched = FetchResult.__new__(FetchResult)
    fetcher = SimpleNamespace(
        _records={stalled: fetched},
        _subscriptions=SimpleNamespace(subscription=SimpleNamespace(assignment=SimpleNamespace(
            state_value=states.get))))
    consumer = SimpleNamespace(_thread=SimpleNamespace(_ensure_consumer=lambda: SimpleNamespace(_fetcher=fetcher)))
    assert liveness.fetcher_state(consumer, stalled) == "position 7, paused False, fetched and held FetchResult"
    assert liveness.fetcher_state(consumer, waiting) == \
        "position none (reset pending True), paused False, fetched and held none"
    assert liveness.fetcher_state(consumer, other) == "not assigned"


@pytest.mark.parametrize(("role", "agents"), [("all", ["streams.agents.ingest"]),
                                              ("core", ["streams.agents.ingest", "streams.weigh_agent.weigh"]),
                                              ("encoder", ["streams.encode_agent.encode"])])
def test_a_worker_runs_the_agents_of_its_role_alone(role: str, agents: list[str], tmp_path: Path) -> None:
    """A worker that runs every stage weighs the windows it flushes in memory: it reads no windows or encoded topic."""
    env = {**os.environ, "DRIFTREC_ROLE": role, "DRIFTREC_DATA_DIR": str(tmp_path)}
    script = "import streams.worker as w; print(' '.join(sorted(w.app.agents)))"
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         check=True)
    assert run.stdout.split() == agents
