"""The benchmarks' memory figures for a process tree: RSS counts a page shared by several processes once per
process, PSS splits it between them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.live_pipeline import child_pids, pss_mib, rss_mib


@pytest.fixture
def sleeping_child() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import numpy, time; time.sleep(60)"])
    deadline = time.monotonic() + 30
    while "numpy" not in Path(f"/proc/{child.pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_a_process_trees_memory_counts_each_child_and_shared_pages_once_in_pss(sleeping_child: int) -> None:
    parent = os.getpid()
    assert sleeping_child in child_pids(parent)
    alone = rss_mib(sleeping_child)
    assert rss_mib(parent) > alone > 5  # the child's own pages are in its parent's tree
    # the interpreter and numpy's libraries are mapped by both: counted twice in RSS, split in PSS
    assert pss_mib(parent) < rss_mib(parent)
    assert pss_mib(sleeping_child) < alone
