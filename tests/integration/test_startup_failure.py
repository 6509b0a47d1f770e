"""A worker that cannot build its catalogue at start-up says why and exits, instead of waiting for it forever."""

import subprocess

import pytest

from streams.liveness import FAILED_TASK_EXIT_CODE
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_worker_whose_catalogue_follower_fails_exits_with_the_reason(kafka_bootstrap, unique_name, tmp_path,  # type: ignore[no-untyped-def]
                                                                      ) -> None:
    run = PipelineRun.create(kafka_bootstrap, unique_name("no-encoder"), tmp_path, web_port=6177,
                             encoder_model="no-such-model")  # the follower fails to encode the first items
    run.start()
    assert run.worker is not None
    try:
        status = run.worker.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker still runs 120 s after its catalogue follower failed\n{run.log_tail()}")
    finally:
        run.stop()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    failures = [line for line in log.splitlines() if "catalogue follower failed" in line]
    assert status == FAILED_TASK_EXIT_CODE, run.log_tail()
    assert len(failures) == 1 and "OSError" in failures[0], run.log_tail()
