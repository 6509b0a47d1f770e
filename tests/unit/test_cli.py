"""Every command answers bad input in one line on stderr and a non-zero exit, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import file_problem

UNREACHABLE = "127.0.0.1:1"


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP", "DRIFTREC_BOOTSTRAP"}}
    env |= {"DRIFTREC_BOOTSTRAP": UNREACHABLE, "DRIFTREC_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120, check=False)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e1", "user_id": "u", "kind": "view", "ts": 1262304005000, "item_id": "i1"}\n')
    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "i1", "title": "One", "ts": 1262304000000}\n')
    (tmp_path / "a-directory").mkdir()
    return {"missing": str(tmp_path / "missing.jsonl"), "directory": str(tmp_path / "a-directory"),
            "events": str(events), "items": str(items)}


CASES = {
    "produce a missing file": (("produce", "{missing}"), "missing.jsonl: No such file or directory"),
    "produce a directory": (("produce", "{directory}"), "a-directory: Is a directory"),
    "produce items from a missing file": (("produce", "--items", "{missing}"), "No such file or directory"),
    "produce to an unreachable broker": (("produce", "{events}"), f"cannot reach Kafka at {UNREACHABLE}"),
    "tail an unreachable broker": (("tail",), f"cannot reach Kafka at {UNREACHABLE}"),
    "topics on an unreachable broker": (("topics",), f"cannot reach Kafka at {UNREACHABLE}"),
    "dead letters on an unreachable broker": (("dead-letters", "--replay"), f"cannot reach Kafka at {UNREACHABLE}"),
    "a worker on an unreachable broker": (("worker", "--once"), f"cannot reach Kafka at {UNREACHABLE}"),
    "replay a missing JSONL log": (("replay", "--jsonl", "{items}", "{missing}"), "No such file or directory"),
    "replay a directory as a log": (("replay", "--jsonl", "{items}", "{directory}"), "Is a directory"),
    "replay a missing MovieLens directory": (("replay", "--movielens", "{missing}"), "is not a MovieLens directory"),
    "replay with a missing config": (("replay", "--synthetic", "switch", "--config", "{missing}"),
                                     "No such file or directory"),
    "a bad flag": (("produce", "--bogus", "{events}"), "unrecognized arguments: --bogus"),
    "a bad flag of replay": (("replay", "--synthetic", "switch", "--seeds", "many"), "invalid int value: 'many'"),
    "a bad flag of tail": (("tail", "--top"), "expected one argument"),
    "no command": ((), "the following arguments are required: command"),
    "an unknown command": (("teleport",), "invalid choice: 'teleport'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_a_failure(case: str, files: dict[str, str], tmp_path: Path) -> None:
    args, expected = CASES[case]
    result = run_cli(*(arg.format(**files) for arg in args), tmp_path=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_file_problem_names_the_file() -> None:
    assert file_problem(IsADirectoryError(21, "Is a directory", "logs")) == "logs: Is a directory"
    assert file_problem(OSError("disk on fire")) == "disk on fire"
