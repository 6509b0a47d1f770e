"""The worker exits (to be restarted) rather than wait forever: when a partition has waiting records and makes no
progress (the stall watch), and when a task it cannot serve without fails (the catalogue and shared log
followers)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

from faust.types import TP

from streams.agent_support import error_line, exit_now
from streams.app import app, commit_safe_consumer, committed_offset, owned_stage_partitions, runtime, settings
from streams.stall_watchdog import STALL_EXIT_CODE, StallWatchdog

log = logging.getLogger(__name__)
watchdog = StallWatchdog(settings.stall_timeout_s)
CHECK_EVERY_S = 5.0
RESUME_CHECK_EVERY_S = 1.0
FAILED_TASK_EXIT_CODE = 70
"""The worker's exit code when a task it cannot serve without failed (EX_SOFTWARE)."""


async def exit_if_failed(name: str, task: Awaitable[None]) -> None:
    """Runs a task every agent waits for; if it fails, logs the reason in one line and exits the worker with
    FAILED_TASK_EXIT_CODE, instead of leaving the agents waiting."""
    try:
        await task
    except Exception as error:
        log.error("%s failed: %s; exiting (exit code %d)", name, error_line(error), FAILED_TASK_EXIT_CODE)
        log.info("the %s's failure", name, exc_info=error)
        exit_now(FAILED_TASK_EXIT_CODE)


async def partition_progress() -> dict[tuple[str, int], tuple[int, int]]:
    """(committed offset, end offset from the broker) per owned stage-input partition."""
    owned = owned_stage_partitions()
    ends = await app.consumer.highwaters(*owned) if owned else {}
    return {(tp.topic, tp.partition): (committed_offset(tp), ends[tp]) for tp in owned if tp in ends}


def fetcher_state(consumer: Any, tp: TP) -> str:
    """What aiokafka's fetcher holds for `tp`: its position (or a reset pending), whether it is paused there, and
    the records fetched and not yet handed to Faust (read from another thread: a diagnostic)."""
    aiokafka_consumer = consumer._thread._ensure_consumer()
    fetcher = aiokafka_consumer._fetcher
    state = fetcher._subscriptions.subscription.assignment.state_value(tp)
    if state is None:
        return "not assigned"
    position = state._position if state.has_valid_position else f"none (reset pending {state.awaiting_reset})"
    fetched = fetcher._records.get(tp)
    held = "none" if fetched is None else type(fetched).__name__
    return f"position {position}, paused {state.paused}, fetched and held {held}"


def stall_report(tps: list[TP]) -> str:
    """What Faust's consumer knows of the stalled partitions, and where each agent is waiting: for the log, so that
    a stall can be traced to its cause after the restart."""
    consumer = commit_safe_consumer()
    active = consumer._get_active_partitions()
    unacked: dict[TP, list[int]] = {}
    for message in list(consumer._unacked_messages):
        unacked.setdefault(message.tp, []).append(message.offset)
    parts = [
        f"{tp.topic}[{tp.partition}]: committed {consumer._committed_offset.get(tp)}, "
        f"read {consumer._read_offset.get(tp)}, acked since commit {len(consumer._acked.get(tp, ()))}, "
        f"unacked {sorted(unacked.get(tp, []))[:5]}, active {tp in active}, "
        f"buffered {tp in consumer._buffered_partitions}, paused {tp in consumer._paused_partitions}; "
        f"fetcher: {fetcher_state(consumer, tp)}"
        for tp in tps
    ]
    for agent in app.agents.values():
        for actor in agent._actors:
            task = actor.actor_task
            where = await_chain(task.get_coro()) if task is not None and not task.done() else "nothing"
            parts.append(f"agent {agent.name} waits in {where}")
    return "; ".join(parts)


def await_chain(awaitable: Any, depth: int = 16) -> str:
    """Where a suspended coroutine waits: each coroutine or generator it awaits, innermost last."""
    names: list[str] = []
    while awaitable is not None and len(names) < depth:
        frame = next((getattr(awaitable, a) for a in ("cr_frame", "ag_frame", "gi_frame") if hasattr(awaitable, a)),
                     None)
        if frame is None:
            names.append(type(awaitable).__name__)
            break
        names.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaitable = next((getattr(awaitable, a) for a in ("cr_await", "ag_await", "gi_yieldfrom")
                          if getattr(awaitable, a, None) is not None), None)
    return " > ".join(names)


@app.timer(interval=RESUME_CHECK_EVERY_S)
async def resume_drained_partitions() -> None:
    """Puts partitions that Faust paused for queue pressure back into the fetch set once they have drained
    (`CommitSafeConsumer.resume_drained_partitions`)."""
    if app.rebalancing or app.in_recovery:
        return
    for tp in commit_safe_consumer().resume_drained_partitions():
        log.warning("%s[%d]: paused for queue pressure and drained, but not resumed by Faust; resuming it",
                    tp.topic, tp.partition)


if settings.stall_timeout_s > 0:

    @app.timer(interval=CHECK_EVERY_S)
    async def watch_for_stalls() -> None:
        if runtime.waiting_for() or app.rebalancing or app.in_recovery:
            watchdog.reset()
            return
        stalled = watchdog.observe(await partition_progress(), time.monotonic())
        if stalled:
            log.error("no progress for %.0fs on %s although records are waiting: exiting so that the worker "
                      "restarts (exit code %d)", settings.stall_timeout_s, sorted(stalled), STALL_EXIT_CODE)
            try:
                log.error("stall report: %s", stall_report([TP(topic, partition) for topic, partition in stalled]))
            except Exception:
                log.exception("stall report failed")
            exit_now(STALL_EXIT_CODE)
