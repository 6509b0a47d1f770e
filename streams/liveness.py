"""The worker's stall watch: exits (to be restarted) when a partition has waiting records and makes no progress."""

from __future__ import annotations

import logging
import os
import time

from streams.app import app, committed_offset, owned_stage_partitions, runtime, settings
from streams.stall_watchdog import STALL_EXIT_CODE, StallWatchdog

log = logging.getLogger(__name__)
watchdog = StallWatchdog(settings.stall_timeout_s)
CHECK_EVERY_S = 5.0


async def partition_progress() -> dict[tuple[str, int], tuple[int, int]]:
    """(committed offset, end offset from the broker) per owned stage-input partition."""
    owned = owned_stage_partitions()
    ends = await app.consumer.highwaters(*owned) if owned else {}
    return {(tp.topic, tp.partition): (committed_offset(tp), ends[tp]) for tp in owned if tp in ends}


if settings.stall_timeout_s > 0:

    @app.timer(interval=CHECK_EVERY_S)
    async def watch_for_stalls() -> None:
        waiting_for_catalogue = settings.role != "encoder" and not runtime.catalogue_ready.is_set()
        if waiting_for_catalogue or app.rebalancing or app.in_recovery:
            watchdog.reset()
            return
        stalled = watchdog.observe(await partition_progress(), time.monotonic())
        if stalled:
            log.error("no progress for %.0fs on %s although records are waiting: exiting so that the worker "
                      "restarts (exit code %d)", settings.stall_timeout_s, sorted(stalled), STALL_EXIT_CODE)
            logging.shutdown()
            os._exit(STALL_EXIT_CODE)
