"""The stall detector: only a partition with waiting records and a committed offset that does not move."""

from streams.stall_watchdog import StallWatchdog


def test_reports_a_partition_stuck_behind_its_end_for_the_grace_period() -> None:
    watchdog = StallWatchdog(grace_s=60)
    assert watchdog.observe({"a": (10, 50), "b": (5, 5)}, now=0) == []
    assert watchdog.observe({"a": (10, 50), "b": (5, 9)}, now=59) == []
    assert watchdog.observe({"a": (10, 50), "b": (5, 9)}, now=60) == ["a"]
    assert watchdog.observe({"a": (10, 50), "b": (5, 9)}, now=119) == ["a", "b"]


def test_progress_or_catching_up_restarts_the_clock() -> None:
    watchdog = StallWatchdog(grace_s=60)
    watchdog.observe({"a": (10, 50)}, now=0)
    assert watchdog.observe({"a": (11, 50)}, now=59) == []
    assert watchdog.observe({"a": (11, 50)}, now=100) == []
    assert watchdog.observe({"a": (50, 50)}, now=130) == []
    assert watchdog.observe({"a": (50, 60)}, now=131) == []
    assert watchdog.observe({"a": (50, 60)}, now=190) == []
    assert watchdog.observe({"a": (50, 60)}, now=191) == ["a"]
    watchdog.reset()
    assert watchdog.observe({"a": (50, 60)}, now=200) == []
