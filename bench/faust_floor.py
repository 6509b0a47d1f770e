"""Faust's own ceiling on a backlog, measured with the worker's app: an agent that takes batches and parses them
(`bench.faust_floor_app`), alone and with per-event plumbing (`MODES`), each in a worker process of its own consumer
group. `python -m bench.pipeline framework` prints every mode; `throughput` prints the parse and stage modes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import orjson

from streams.demo import run_settings, stop_worker
from streams.settings import Settings, settings_env
from streams.topics_admin import ensure_topics

MODES = {
    "parse": "take_events batches and orjson.loads of each value",
    "table": "+ a RocksDB table write per event (a changelog record)",
    "send": "+ a send per event (the worker's RawTopic)",
    "faust-send": "+ a send per event through Faust's Topic.send",
    "stage": "+ a table write and a send per event: the least a stateful stage does",
}
TIMEOUT_S = 300.0


def floor_settings(settings: Settings, mode: str) -> Settings:
    """A group, state directory and output topics of its own, reading `settings`' behaviour topic."""
    return replace(run_settings(settings, f"{settings.app_id.removeprefix('driftrec-')}-floor-{mode}"),
                   behaviour_topics=settings.behaviour_topics)


def events_per_s(settings: Settings, n_events: int, mode: str) -> float:
    """Runs the floor agent in `mode` over the first `n_events` of `settings`' behaviour topic."""
    floor = floor_settings(settings, mode)
    ensure_topics(floor)
    Path(floor.data_dir).mkdir(parents=True, exist_ok=True)
    result = Path(floor.data_dir) / "floor.json"
    env = {**os.environ, **settings_env(floor), "FAUST_FLOOR_EVENTS": str(n_events), "FAUST_FLOOR_MODE": mode,
           "FAUST_FLOOR_RESULT": str(result)}
    with (Path(floor.data_dir) / "worker.log").open("ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "bench.faust_floor_app"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        worker.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop_worker(worker)
    if not result.exists():
        raise RuntimeError(f"the faust floor worker ({mode}) gave no figure; see {floor.data_dir}/worker.log")
    figure = orjson.loads(result.read_bytes())
    return float(figure["events"] / figure["seconds"])


def rates(settings: Settings, n_events: int, modes: Iterable[str] = MODES) -> dict[str, float]:
    """Events/s of each mode, one after the other."""
    return {mode: events_per_s(settings, n_events, mode) for mode in modes}


def describe(rates: Mapping[str, float], bare: float) -> str:
    return "\n".join(f"faust floor, {mode} ({MODES[mode]}): {rate:,.0f} events/s, {rate / bare:.3f}x the bare loop"
                     for mode, rate in rates.items())
