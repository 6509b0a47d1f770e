"""What a worker runs: `faust -A streams.worker worker` (or `driftrec worker`).

The app with the agents of this worker's role (DRIFTREC_ROLE): `all` runs every stage; `core` runs ingest,
weigh and rank (CPU pool, with the tables); `encoder` runs only the query encoder (GPU pool, its own group).
"""

from __future__ import annotations

from streams.app import app, settings

if settings.role in ("all", "encoder"):
    import streams.encode_agent
if settings.role in ("all", "core"):
    import streams.agents
import streams.liveness
import streams.web_views  # noqa: F401

__all__ = ["app"]
