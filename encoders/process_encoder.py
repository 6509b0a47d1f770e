"""An encoder run in a child process: its own interpreter, so it does not take turns with the caller for the GIL.

A sentence-transformers forward pass is hundreds of small torch ops, each dispatched from Python. In a worker
thread, every op waits for the GIL while the event loop runs Kafka, Faust and table code: with the caller's thread
busy half the time, a batch of 15 queries took about twice as long as bare (`bench.pipeline`). The child is
spawned (never forked: the parent's torch thread pools do not survive a fork), builds the encoder once, and exits
when its parent is gone, however the parent died.

Its OpenMP threads sleep between calls (OMP_WAIT_POLICY=PASSIVE unless set): by default they spin for a while after
each forward pass, and on a small machine that spinning takes the cores the worker's event loop and scorer need
(at 300 events/s, p99 latency went from about 1.2 s to 4.2 s with spinning, and to 0.8 s without).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import numpy.typing as npt

from encoders.text_encoder import TextEncoder

log = logging.getLogger(__name__)
PARENT_CHECK_S = 1.0
_child: dict[str, TextEncoder] = {}
"""In the child: its encoder, under "encoder" (built by the first call, `_build_encoder`)."""


def _start_child(parent: int) -> None:
    if "OMP_WAIT_POLICY" not in os.environ and "torch" in sys.modules:
        log.warning("torch was loaded before the encoder process set OMP_WAIT_POLICY: its threads will spin")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    """A child whose parent was killed is adopted by another process: it then has nothing to serve."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _build_encoder(build: Callable[[], TextEncoder]) -> tuple[str, int, int]:
    """Builds the child's encoder in a call, not in the pool's initializer, so that an error (a model or a backend
    that is not installed) reaches the parent as itself; returns the encoder's name and dimension, and the pid."""
    _child["encoder"] = build()
    return _child["encoder"].model_name, _child["encoder"].dim, os.getpid()


def _encode(texts: list[str]) -> npt.NDArray[np.float32]:
    return _child["encoder"].encode(texts)


class ProcessEncoder:
    """The encoder `build` makes (a picklable callable), run in one spawned child process. A child that dies is
    replaced, and the call it died in is tried once more on the new one."""

    def __init__(self, build: Callable[[], TextEncoder]) -> None:
        self._build = build
        self._start()

    def _start(self) -> None:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_child, initargs=(os.getpid(),))
        self._model_name, self._dim, self.child_pid = self._pool.submit(_build_encoder, self._build).result()
        log.info("encoder %s runs in process %d", self._model_name, self.child_pid)

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        try:
            return self._pool.submit(_encode, list(texts)).result()
        except BrokenProcessPool:
            log.warning("the encoder process died; starting a new one and encoding the %d texts again", len(texts))
            self._pool.shutdown(wait=False)
            self._start()
            return self._pool.submit(_encode, list(texts)).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
