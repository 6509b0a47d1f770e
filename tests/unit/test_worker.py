"""The worker's start-up tuning of the interpreter."""

from __future__ import annotations

import asyncio
import gc

import pytest

pytest.importorskip("faust")

from streams import worker
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
