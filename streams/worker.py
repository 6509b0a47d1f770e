"""What a worker runs: `faust -A streams.worker worker` (or `driftrec worker`).

The app with the agents of this worker's role (DRIFTREC_ROLE): `all` runs every stage in one step per batch; `core`
runs ingest, weigh and rank (CPU pool, with the tables) and the encoder pool's windows come back to it through
topics; `encoder` runs only the query encoder (GPU pool, its own group).
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

from streams.app import app, runtime, settings

if settings.role == "encoder":
    import streams.encode_agent
if settings.role in ("all", "core"):
    import streams.agents
    if settings.role == "core":
        import streams.weigh_agent
    if settings.serving_experiment is not None:
        import streams.attribution_agent
import streams.liveness
import streams.web_views  # noqa: F401

__all__ = ["app"]
log = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.0005
"""How long a busy thread keeps the GIL while another waits for it. Each window's learning step, each encode and
each rank batch hops between the event loop and the model thread; at Python's default (5 ms) every hop waited
behind the busy loop, and the weigh stage, which waits for each window's hop before it takes the next, spent most
of its time idle."""


@app.on_worker_init.connect  # type: ignore[arg-type]  # mode's stubs accept no receiver as written
def shorten_gil_switch_interval(sender: Any, *args: Any, **kwargs: Any) -> None:
    """Set when a worker starts (not on import: importing the app changes nothing in the importing process)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


@app.task
async def freeze_startup_objects() -> None:
    """Once the catalogue is in, moves every object alive then (modules, torch, Faust, the catalogue) out of the
    garbage collector's reach for good (`gc.freeze`). Each batch allocates hundreds of thousands of short-lived
    objects, and each full collection they set off scanned all of those long-lived ones again: on the throughput
    benchmark's model work alone (no Kafka), learning and ranking took 13.1 s with every object collectable and
    11.2 s with the startup objects frozen."""
    await runtime.model_ready.wait()
    gc.freeze()
    log.info("garbage collector: %d startup objects frozen", gc.get_freeze_count())
