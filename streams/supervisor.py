"""`driftrec worker` runs the Faust worker in a child process and starts it again when it exits to be restarted (a
stall, or a step that could not dead-letter its messages: exit code 75).

Any other exit (a signal, an error, a clean stop) ends the supervisor with the child's status; SIGTERM and SIGINT
are passed on to the child, which shuts down cleanly.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from types import FrameType

from streams.stall_watchdog import STALL_EXIT_CODE

log = logging.getLogger(__name__)
MAX_RESTARTS_PER_HOUR = 12


def forward_to(child: subprocess.Popen[bytes]) -> Callable[[int, FrameType | None], None]:
    """A signal handler that passes the signal on to `child`."""
    def forward(number: int, _frame: FrameType | None) -> None:
        child.send_signal(number)
    return forward


def supervise(command: Sequence[str]) -> int:
    restarts: list[float] = []
    while True:
        child = subprocess.Popen(command)
        forwarded = {sig: signal.signal(sig, forward_to(child)) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            status = child.wait()
        finally:
            for sig, previous in forwarded.items():
                signal.signal(sig, previous)
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 3600]
        if status != STALL_EXIT_CODE or len(restarts) >= MAX_RESTARTS_PER_HOUR:
            return status
        restarts.append(now)
        print(f"driftrec worker: the worker exited to be restarted (exit {STALL_EXIT_CODE}); restarting it "
              f"({len(restarts)} restarts in the last hour)", flush=True)
