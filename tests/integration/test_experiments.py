"""An online experiment on the real broker and a real worker: synthetic shoppers who act only on items of their
topic answer every list they are shown (an impression, then an action or a search); the worker's per-arm metrics
match what they did exactly, show the arm known to be better ahead with an interval above 0, and survive a SIGKILL
with every user kept in their arm. The live page's experiment panel is read in headless Chromium."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from streams.demo import ListShoppers
from streams.events import BehaviorEvent
from streams.metrics import Samples, scrape
from streams.synthetic import Shopper, SyntheticUser, make_users
from tests.integration.harness import PipelineRun
from tests.integration.test_live_view import ARTIFACTS, chromium_driver

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB_PORT = 6191
EXPERIMENT = "live-1:dynamic=0.5,popularity-only=0.5"
COUNTS = ("users", "lists", "impressions", "clicks", "conversions")
USERS = 80
ROUNDS = 6
"""Lists each shopper answers."""


class Shoppers:
    """The population answering its lists (`ListShoppers`) and everything it was shown and did, per arm (from the
    arms the lists carry)."""

    def __init__(self, run: PipelineRun, users: list[SyntheticUser]) -> None:
        self.run = run
        self.answering = ListShoppers(run.settings, users, run.items, Shopper(), seed=5)
        self.until_rounds = 0
        self.lists: dict[str, str] = {}
        self.arm_of: dict[str, str] = {}
        self.expected: dict[str, Counter[str]] = defaultdict(Counter)
        self.consumer = KafkaConsumer(run.settings.recommendations_topic, bootstrap_servers=run.settings.bootstrap,
                                      auto_offset_reset="earliest")

    def search(self, name: str) -> None:
        """One search each opens a round."""
        self.answering.send(BehaviorEvent(f"{user_id}-{name}", user_id, "search", int(time.time() * 1000),
                                          query=f"{user.topics[0]} guide")
                            for user_id, user in self.answering.users.items())
        self.answering.producer.flush()

    def answer(self, until_rounds: int, timeout_s: float) -> None:
        """Reads lists and answers each user's new ones until every user answered `until_rounds`."""
        deadline = time.monotonic() + timeout_s
        self.until_rounds = until_rounds
        answered = self.answering.lists_of
        while min(answered[user] for user in self.answering.users) < until_rounds:
            assert time.monotonic() < deadline, f"rounds answered: {Counter(answered.values())}"
            self.poll()

    def poll(self) -> None:
        """Reads the lists that came and answers those of users who answered fewer than `until_rounds`."""
        for records in self.consumer.poll(timeout_ms=500).values():
            for record in records:
                self.reply(orjson.loads(record.value))
        self.answering.producer.flush()

    def reply(self, recommendation: dict[str, Any]) -> None:
        user_id, list_id, arm = recommendation["user_id"], recommendation["list_id"], recommendation["arm"]
        assert recommendation["experiment"] == "live-1"
        assert self.arm_of.setdefault(user_id, arm) == arm, f"{user_id} moved from {self.arm_of[user_id]} to {arm}"
        if list_id in self.lists:  # a list emitted twice: shown once
            return
        self.lists[list_id] = arm
        self.expected[arm]["lists"] += 1
        if self.answering.lists_of[user_id] >= self.until_rounds:
            return
        for event in self.answering.answer(recommendation):
            if event.kind == "impression":
                self.expected[arm]["impressions"] += 1
            elif event.kind in ("click", "cart"):
                self.expected[arm]["clicks"] += 1
                self.expected[arm]["conversions"] += event.kind == "cart"

    def close(self) -> None:
        self.consumer.close()
        self.answering.close()


def arm_metrics(samples: Samples) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for (name, labels), value in samples.items():
        label = dict(labels)
        if name.startswith("driftrec_experiment_") and label.get("experiment") == "live-1" and "bound" not in label:
            counts[label["arm"]][name.removeprefix("driftrec_experiment_")] = value
    return counts


def metrics_matching(shoppers: Shoppers, timeout_s: float) -> dict[str, Counter[str]]:
    """Scrapes until the worker's per-arm counts equal what the shoppers were shown and did."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, Counter[str]] = {}
    while time.monotonic() < deadline:
        shoppers.poll()  # lists still coming are counted (and answered by users short of their rounds)
        try:
            seen = arm_metrics(scrape(WEB_PORT))
        except OSError:
            seen = {}
        if all(all(seen.get(arm, Counter())[name] == count for name, count in expected.items())
               for arm, expected in shoppers.expected.items()):
            return seen
    raise AssertionError(f"metrics {dict(seen)} never matched {dict(shoppers.expected)}")


READ_PANEL = """
const panel = document.querySelector('#experiments section.experiment');
if (!panel) return null;
return {
  id: panel.dataset.experiment,
  arms: [...panel.querySelectorAll('tr[data-arm]')].map(row => [row.dataset.arm, [...row.cells].map(c => c.innerText)]),
  lines: panel.querySelectorAll('svg.ctr-chart polyline').length,
};
"""


def read_experiment_panel() -> dict[str, Any]:
    """The live page's experiment panel as headless Chromium renders it; the screenshot is kept."""
    driver = chromium_driver()
    try:
        driver.get(f"http://127.0.0.1:{WEB_PORT}/")
        deadline = time.monotonic() + 30
        panel = driver.execute_script(READ_PANEL)
        while (panel is None or not panel["lines"]) and time.monotonic() < deadline:
            time.sleep(0.3)
            panel = driver.execute_script(READ_PANEL)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "experiment-panel.png"))
    finally:
        driver.quit()
    assert panel is not None, "no experiment panel on the live page"
    return dict(panel)


def test_the_better_arm_leads_with_an_interval_above_0_and_a_restart_keeps_arms_and_counts(
        kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = PipelineRun.create(kafka_bootstrap, unique_name("experiment"), tmp_path, web_port=WEB_PORT,
                             experiment=EXPERIMENT)
    users = make_users(USERS, sorted({item.tags[0] for item in run.items}), seed=3)
    shoppers = Shoppers(run, users)
    run.start()
    try:
        shoppers.search("start")
        shoppers.answer(ROUNDS, timeout_s=300)
        before = metrics_matching(shoppers, timeout_s=60)
        expected_before = {arm: Counter(counts) for arm, counts in shoppers.expected.items()}
        with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/api/experiments/", timeout=10) as response:
            report = orjson.loads(response.read())["experiments"][0]
        panel = read_experiment_panel()

        run.kill()
        run.start()
        after = metrics_matching(shoppers, timeout_s=240)  # recounted from the exposures change log
        shoppers.search("after-restart")
        shoppers.answer(ROUNDS + 1, timeout_s=240)  # every user's next list carries the arm they had
        metrics_matching(shoppers, timeout_s=60)
    finally:
        run.stop()
        shoppers.close()

    assert set(shoppers.expected) == {"dynamic", "popularity-only"}
    assert set(Counter(shoppers.arm_of.values())) == {"dynamic", "popularity-only"}
    for arm, counts in before.items():  # nothing lost across the SIGKILL (lists still coming were added)
        assert all(after[arm][name] >= value for name, value in counts.items() if name in COUNTS), (arm, after)
    dynamic, popularity = (row for row in report["arms"])
    assert dynamic["arm"] == "dynamic" and popularity["arm"] == "popularity-only"
    assert dynamic["impressions"] == expected_before["dynamic"]["impressions"]
    assert dynamic["ctr"] == pytest.approx(expected_before["dynamic"]["clicks"] / dynamic["impressions"])
    gap = popularity["ctr_difference"]
    assert gap["high"] < 0, f"popularity-only minus dynamic CTR: {gap}"  # the better arm ahead, interval off 0
    assert before["dynamic"]["ctr"] > before["popularity-only"]["ctr"]
    assert panel["id"] == "live-1" and [arm for arm, _ in panel["arms"]] == ["dynamic", "popularity-only"]
    assert panel["lines"] == 2
    # the panel shows the worker's counts: impressions and clicks, which stop with the answers (lists may still come)
    assert panel["arms"][0][1][4:6] == [str(int(before["dynamic"][name])) for name in ("impressions", "clicks")]
