"""The worker's web endpoints: the live page, its JSON, and Prometheus metrics (bound to 127.0.0.1 by default).

GET /                          the live page (users, their latest recommendations, their weights over time)
GET /api/users?limit=N         the N most recently updated users served by this worker
GET /api/users/{user_id}/      one user's latest recommendations and weight history (404 if not served here)
GET /api/shared/               what this worker's shared signals hold (totals, a fingerprint) and the shared
                               log's offset folded to
GET /api/experiments/?points=N the serving experiment's arms: counts, CTR@k and conversion with the difference
                               from the control and its 95% interval, now and at the last N points (5 s apart)
GET /metrics                   Prometheus text format
GET /ready                     200 once the worker serves (its catalogue and shared signals caught up), 503 and
                               what it waits for until then (the Kubernetes readiness probe)
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from sinks.arm_statistics import experiment_report
from sinks.shared_snapshot import shared_digest
from streams.app import app, runtime

LIVE_PAGE = files("streams").joinpath("static/live.html").read_text(encoding="utf-8")
MAX_USERS_PER_PAGE = 200


def with_titles(user: dict[str, Any]) -> dict[str, Any]:
    """Adds each recommended item's title from this worker's catalogue (a removed item's too)."""
    catalogue = runtime.model.catalogue
    items = [
        {**item, "title": catalogue.items[catalogue.index[item["item_id"]]].title}
        if item["item_id"] in catalogue.index else item
        for item in user["latest"]["items"]
    ]
    return {**user, "latest": {**user["latest"], "items": items}}


@app.page("/")
async def live_page(self: View, request: Request) -> Response:
    return self.html(LIVE_PAGE)


@app.page("/api/users")
async def recent_users(self: View, request: Request) -> Response:
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), MAX_USERS_PER_PAGE)
    except ValueError:
        return self.json({"error": "limit must be an integer"}, status=400)
    users = [with_titles(user) for user in runtime.live_view.recent(limit)]
    return self.json({"users": users, "users_known": len(runtime.live_view.users)})


@app.page("/api/users/{user_id}/")
async def one_user(self: View, request: Request, user_id: str) -> Response:
    user = runtime.live_view.user(user_id)
    if user is None:
        return self.json({"error": f"no recommendations for user {user_id!r} on this worker"}, status=404)
    return self.json(with_titles(user))


@app.page("/api/shared/")
async def shared_signals(self: View, request: Request) -> Response:
    if not runtime.model_ready.is_set():
        return self.json({"error": "the shared signals are not caught up yet"}, status=503)
    return self.json(await runtime.in_model_thread(shared_state))


def shared_state() -> dict[str, Any]:
    """The shared signals' digest and the offset they are folded up to (in the model thread, where they change)."""
    return {**shared_digest(runtime.model), "offset": runtime.shared_offset}


@app.page("/api/experiments/")
async def experiments(self: View, request: Request) -> Response:
    experiment = runtime.settings.serving_experiment
    if experiment is None:
        return self.json({"experiments": []})
    try:
        points = max(int(request.query.get("points", "360")), 0)
    except ValueError:
        return self.json({"error": "points must be an integer"}, status=400)
    history = list(runtime.experiment_history)[-points:] if points else []
    return self.json({"experiments": [{
        "id": experiment.id, "control": experiment.control.name,
        "attribution_minutes": experiment.attribution_ms / 60_000,
        "arms": experiment_report(experiment, runtime.experiment_totals),
        "history": [{"ts": ts, "arms": rows} for ts, rows in history],
    }]})


@app.page("/ready")
async def ready(self: View, request: Request) -> Response:
    waiting = runtime.waiting_for()
    return self.json({"ready": not waiting, "waiting_for": waiting}, status=503 if waiting else 200)


@app.page("/metrics")
async def metrics(self: View, request: Request) -> Response:
    return self.bytes(runtime.metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
