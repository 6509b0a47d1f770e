"""The worker supervisor restarts a child that exits after a stall and passes any other status through."""

import sys

from streams.stall_watchdog import STALL_EXIT_CODE
from streams.supervisor import supervise


def test_restarts_after_a_stall_and_returns_the_next_status(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "runs"
    script = (f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); runs = int(p.read_text()) if p.exists() else 0;"
              f" p.write_text(str(runs + 1)); sys.exit({STALL_EXIT_CODE} if runs < 2 else 3)")
    assert supervise([sys.executable, "-c", script]) == 3
    assert marker.read_text() == "3"


def test_a_clean_exit_is_not_restarted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "runs"
    script = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('once')"
    assert supervise([sys.executable, "-c", script]) == 0
    assert marker.read_text() == "once"
