"""How long a worker takes to be ready, cold (every item encoded) and warm (item vectors in its cache, its tables
and shared-signal snapshot on disk: a restart), against the floor of any worker process: importing the worker's
modules and loading the encoder, measured in the same run.

    python -m bench.startup [--items 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.live_pipeline import LivePipeline, pss_mib, rss_mib
from streams.demo import stop_worker
from streams.settings import settings_env

FLOOR_SCRIPT = (
    "import os, time; started = time.monotonic(); import streams.worker; from streams.app import runtime; "
    "runtime.encoder.encode(['warm-up']); print(time.monotonic() - started)"
)


def process_floor(pipeline: LivePipeline) -> float:
    """Seconds a fresh Python process needs to import the worker and load its encoder."""
    env = {**os.environ, **settings_env(pipeline.settings), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def ready_once(pipeline: LivePipeline) -> tuple[float, str]:
    """Starts the pipeline's worker, waits until it is ready, and stops it; the seconds and its memory then."""
    started = time.monotonic()
    pipeline.start()
    try:
        pipeline.wait_ready()
        seconds = time.monotonic() - started
        pid = pipeline.workers[0].pid
        memory = f"RSS {rss_mib(pid):.0f} MiB, PSS {pss_mib(pid):.0f} MiB"
    finally:
        stop_worker(pipeline.workers.pop())
    return seconds, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    pipeline = LivePipeline.create("startup", args.items)
    try:
        floor = process_floor(pipeline)
        cold, cold_memory = ready_once(pipeline)
        warm, warm_memory = ready_once(pipeline)
    finally:
        pipeline.stop()
    print(f"floor (a process importing the worker and loading its encoder): {floor:.1f}s")
    print(f"cold start ({args.items} items encoded): ready in {cold:.1f}s, {cold / floor:.1f}x the floor; "
          f"{cold_memory}")
    print(f"warm start (vectors cached, state on disk): ready in {warm:.1f}s, {warm / floor:.1f}x the floor; "
          f"{warm_memory}")


if __name__ == "__main__":
    main()
