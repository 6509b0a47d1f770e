"""A running worker fed with events: its Prometheus metrics, its JSON endpoints, and its live page in a real
headless Chromium (Debian's chromium + chromedriver), with a screenshot kept as an artifact."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.metrics import Samples
from streams.metrics import scrape as scrape_port
from streams.settings import Settings
from streams.synthetic import behaviour_stream, make_users
from tests.integration.harness import PipelineRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEB_PORT = 6171
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DRIFTREC_ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "test-artifacts"))
BAD_RECORD = (b"user-0000", b"{not json")


def fetch(path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}{path}", timeout=10) as response:
        return response.read()


def scrape() -> Samples:
    return scrape_port(WEB_PORT)


def scrape_until_caught_up(settings: Settings, timeout_s: float = 30) -> Samples:
    """Scrapes until the worker reports a lag of 0 on every partition of every topic it consumes (a worker that runs
    every stage reads no windows or encoded topic)."""
    inputs = {*settings.behaviour_topics,
              *((settings.windows_topic, settings.encoded_topic) if settings.role == "core" else ())}
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = scrape()
        lags = {(dict(labels)["topic"], dict(labels)["partition"]): value
                for (name, labels), value in metrics.items() if name == "driftrec_consumer_lag"}
        complete = {(topic, str(p)) for topic in inputs for p in range(settings.partitions)} <= set(lags)
        if complete and not any(lags.values()):
            return metrics
        assert time.monotonic() < deadline, f"lag not 0 on every input partition: {lags}"
        time.sleep(0.5)


def chromium_driver() -> Any:
    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        if os.environ.get("DRIFTREC_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
        pytest.skip("chromium/chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1100"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


# The whole page read in one script run: the page re-renders as it polls, so element handles held across
# separate WebDriver calls can go stale in between.
READ_PAGE = """
const cards = [...document.querySelectorAll('section.user')];
return {
  cards: cards.map(card => ({
    user: card.dataset.user,
    items: [...card.querySelectorAll('li')].map(li => li.dataset.item),
    titles: [...card.querySelectorAll('li')].map(li => li.innerText.split('\\n')[0]),
    lines: card.querySelectorAll('svg.weights-chart polyline').length,
  })),
  status: document.getElementById('status').innerText,
};
"""


def read_live_page(expected_users: int, user_id: str) -> dict[str, Any]:
    """Loads the page in headless Chromium, waits for the cards, reads them and keeps a screenshot."""
    driver = chromium_driver()
    try:
        driver.get(f"http://127.0.0.1:{WEB_PORT}/")
        deadline = time.monotonic() + 30
        page = driver.execute_script(READ_PAGE)
        while len(page["cards"]) < expected_users and time.monotonic() < deadline:
            time.sleep(0.2)
            page = driver.execute_script(READ_PAGE)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "live-view.png"
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    cards = {card["user"]: card for card in page["cards"]}
    return {
        "items": {user: card["items"] for user, card in cards.items()},
        "titles": cards[user_id]["titles"],
        "lines": cards[user_id]["lines"],
        "status": page["status"],
        "screenshot": screenshot,
    }


def test_worker_serves_metrics_json_and_a_live_page(kafka_bootstrap, unique_name, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = PipelineRun.create(kafka_bootstrap, unique_name("web"), tmp_path, web_port=WEB_PORT)
    users = make_users(6, sorted({item.tags[0] for item in run.items}), seed=11)
    events = list(behaviour_stream(users, run.items, 15, int(time.time() * 1000) - 600_000, seed=11))
    kinds = Counter(event.kind for event in events)
    run.start()
    try:
        run.produce(events, [BAD_RECORD])
        latest = run.final_recommendations(timeout_s=240)
        assert set(latest) == {user.user_id for user in users}, run.log_tail()
        metrics = scrape_until_caught_up(run.settings)
        one_user = orjson.loads(fetch(f"/api/users/{users[0].user_id}/"))
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch("/api/users/nobody/")
        page = read_live_page(len(users), users[0].user_id)
    finally:
        run.stop()

    for kind, count in kinds.items():
        assert metrics[("driftrec_events_in_total", (("kind", kind),))] == count
    assert metrics[("driftrec_dead_letters_total", (("reason", "malformed JSON"),))] == 1
    assert metrics[("driftrec_recommendations_total", ())] >= len(users)
    assert metrics[("driftrec_event_to_recommendation_seconds_count", ())] == \
        metrics[("driftrec_recommendations_total", ())]
    assert metrics[("driftrec_window_flushes_total", ())] >= len(users)
    assert metrics[("driftrec_catalogue_items", ())] == len(run.items)

    assert [item["item_id"] for item in one_user["latest"]["items"]] == \
        [item["item_id"] for item in latest[users[0].user_id]["items"]]
    assert one_user["weights_over_time"][-1]["weights"] == latest[users[0].user_id]["weights"]
    assert missing.value.code == 404

    assert set(page["items"]) == set(latest)
    for user_id, items in page["items"].items():
        assert items == [item["item_id"] for item in latest[user_id]["items"]]
    title_of = {item.item_id: item.title for item in run.items}
    assert page["titles"] == [title_of[item["item_id"]] for item in latest[users[0].user_id]["items"]]
    assert page["lines"] == len(latest[users[0].user_id]["weights"])
    assert page["status"].startswith("6 of 6 users served by this worker")
    assert page["screenshot"].stat().st_size > 10_000
    print(f"screenshot: {page['screenshot']}")
