"""A sampling profile (py-spy) of a running worker, and where its samples went.

`record` attaches py-spy to a worker process (`bench.live_pipeline.worker_process`) for a number of seconds (raw
folded stacks, every thread, 50 samples a second, without stopping the worker); `summary` reads the stacks: each
thread's share of the samples it could have taken (those py-spy found it active in), and the project's
functions with the largest share of samples on their stack.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

RATE_HZ = 50
PROJECT_PACKAGES = ("streams/", "sinks/", "weighting/", "encoders/")
ENTRY_POINT = "streams/cli.py"
"""Every worker stack starts in the command line's frames: they say nothing of where the time went."""


def record(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """Starts py-spy on `pid` for `seconds`, writing raw folded stacks to `output` (wait on the process)."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy, or the dev extra)")
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", str(RATE_HZ), "-f", "raw",
                             "-o", str(output), "--threads", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summary(lines: Iterable[str], seconds: float, top: int = 12) -> list[str]:
    """Each thread's samples as a share of `seconds` × RATE_HZ, then the project's `top` functions by the share of
    all samples with the function on their stack.

    >>> summary(["thread (1): MainThread;run (streams/agents.py:9);f (sinks/scorer.py:3) 30",
    ...          "thread (2): model_0;g (sinks/scorer.py:5) 10"], seconds=1.0, top=2)[:2]
    ['MainThread: active in 60% of 50 possible samples', 'model_0: active in 20% of 50 possible samples']
    """
    threads: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        frames, samples = stack.split(";"), int(count)
        total += samples
        threads[frames[0].split(": ", 1)[-1]] += samples
        for name in {frame.split(" (")[0] for frame in frames[1:]
                     if any(p in frame for p in PROJECT_PACKAGES) and ENTRY_POINT not in frame}:
            functions[name] += samples
    possible = seconds * RATE_HZ
    report = [f"{thread}: active in {100 * n / possible:.0f}% of {possible:.0f} possible samples"
              for thread, n in threads.most_common()]
    report += [f"  {100 * n / max(total, 1):5.1f}% of the samples in {name}" for name, n in functions.most_common(top)]
    return report
