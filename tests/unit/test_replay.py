from pathlib import Path

import numpy as np
import orjson
import pytest

from replay.command import LoadReport, load_jsonl
from replay.drift_scenarios import ScenarioSize, drift_log, recovery
from replay.paired_stats import paired_differences
from replay.prequential import DYNAMIC, MISS, STATIC, MethodRanks, ReplayOptions, fused_ranks, query_vectors, replay
from replay.static_tuning import RankingSamples, tune_static
from sinks.catalogue import Catalogue, CatalogueItem
from streams.events import BehaviorEvent, Item
from streams.synthetic import behaviour_stream, make_users
from weighting.factors import FACTORS, Factor


def test_fused_ranks_count_ties_half_and_miss_an_item_that_is_no_candidate() -> None:
    calibrated = np.array([[5.0, 0.0], [4.0, 1.0], [3.0, 2.0], [4.0, 3.0]], np.float32)
    rows = np.array([10, 11, 12, 13])
    ranks, top = fused_ranks(calibrated, np.array([[1.0, 0.0], [0.0, 1.0]]), 1, 2, rows)
    assert ranks.tolist() == [1.0, 2.0]  # one above and one tie counting half (1.5, rounded down); two above
    assert sorted(top[0].tolist()) in ([10, 11], [10, 13]) and sorted(top[1].tolist()) == [12, 13]
    assert fused_ranks(calibrated, np.array([1.0, 0.0]), -1, 2, rows)[0].tolist() == [MISS]


def test_metrics_hand_checked() -> None:
    ranks = MethodRanks(k=10)
    for rank, top in ((0.0, [1, 2]), (3.0, [2, 3]), (12.0, [4]), (MISS, [5])):
        ranks.add("m", rank, np.array(top))
    summary = ranks.summary("m", n_items=10)
    assert summary["HR@10"] == pytest.approx(2 / 4)
    assert summary["NDCG@10"] == pytest.approx((1 + 1 / np.log2(5)) / 4)
    assert summary["MRR@10"] == pytest.approx((1 + 1 / 4) / 4)
    assert summary["coverage"] == pytest.approx(5 / 10)
    assert ranks.summary("m", 10, np.array([True, False, False, False]))["HR@10"] == 1.0


def test_static_tuning_finds_the_informative_factor() -> None:
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(60):
        scores = rng.normal(size=(50, len(FACTORS))).astype(np.float32)
        target = int(rng.integers(0, 50))
        scores[target, Factor.COVISIT] = 10.0
        samples.append((scores, target))
    samples.append((rng.normal(size=(30, len(FACTORS))).astype(np.float32), -1))  # the item was no candidate
    weights, rate = tune_static(RankingSamples.of(samples), 1, len(FACTORS), seed=0)
    assert rate == pytest.approx(60 / 61) and int(weights.argmax()) == Factor.COVISIT
    assert weights.sum() == pytest.approx(1.0)
    single = RankingSamples.of(samples).hits(np.eye(len(FACTORS)), 1).mean(axis=0)
    assert single[Factor.COVISIT] == pytest.approx(60 / 61) and single[Factor.SHORT_TERM] < 0.2


def test_paired_intervals_cover_the_true_difference() -> None:
    rng = np.random.default_rng(5)
    baseline = rng.random(4000) < 0.2
    better = baseline | (rng.random(4000) < 0.05)  # the same hits plus about 4% more
    [difference] = paired_differences(better, baseline[None], 500, seed=1)
    low, high = difference.difference_interval
    assert low > 0 and low < difference.difference < high
    assert difference.ratio_interval[0] > 1.0
    [none] = paired_differences(baseline, baseline[None], 200, seed=1)
    assert none.difference == 0.0 and none.difference_interval == (0.0, 0.0)


def topic_catalogue(topics: list[str], per_topic: int) -> tuple[Catalogue, list[Item]]:
    rng = np.random.default_rng(0)
    centres = {t: rng.normal(size=16) for t in topics}
    items = [Item(f"{t}-{i}", f"{t} {i}", 0, tags=(t,)) for t in topics for i in range(per_topic)]
    vectors = {}
    for item in items:
        v = centres[item.tags[0]] + 0.3 * rng.normal(size=16)
        vectors[item.item_id] = (v / np.linalg.norm(v)).astype(np.float32)
    catalogue = Catalogue(16)
    catalogue.upsert([CatalogueItem(i.item_id, i.title, i.tags, 0) for i in items], vectors)
    return catalogue, items


def test_replay_evaluates_every_method_on_the_same_events() -> None:
    topics = ["a", "b", "c", "d"]
    catalogue, items = topic_catalogue(topics, 30)
    users = make_users(24, topics, seed=1)
    events = list(behaviour_stream(users, items, 30, 1_000_000, seed=1, kind_mix=(("view", 1.0),)))
    result = replay(catalogue, events, ReplayOptions(tune_share=0.2, block=32, resamples=200, progress=False))
    metrics = result.metrics
    split, seen_users, expected = int(len(events) * 0.2), set(), 0
    for index, event in enumerate(events):
        expected += index >= split and event.user_id in seen_users
        seen_users.add(event.user_id)
    assert {m["evaluations"] for m in metrics.values()} == {expected}
    assert len(result.evaluated_ids) == expected
    assert metrics["long_term"]["HR@10"] > 2 * metrics["freshness"]["HR@10"]
    assert metrics[DYNAMIC]["HR@10"] > 2 * 10 / len(items)
    assert set(result.paired) == set(metrics) - {DYNAMIC}
    assert result.paired[STATIC]["method_hr"] == metrics[DYNAMIC]["HR@10"]
    assert result.ceiling["static oracle"] >= result.ceiling["static tuned"]
    assert all(value >= result.ceiling["static oracle"] for name, value in result.ceiling.items()
               if name.startswith("oracle per"))
    assert all(set(hits) <= set(result.evaluated_ids) for hits in result.hits.values())


def test_dynamic_weights_recover_after_an_interest_switch_faster_than_static() -> None:
    topics = ["a", "b", "c", "d"]
    catalogue, items = topic_catalogue(topics, 40)
    log = drift_log("switch", items, seed=2, size=ScenarioSize(users=80, events_per_user=60))
    result = replay(catalogue, log.events, ReplayOptions(tune_share=0.2, block=64, resamples=100, progress=False))
    after = recovery(result, log.shifted, 10)
    print(f"HR@10 in the 5 events after the switch: dynamic {after[DYNAMIC]:.3f}, static {after[STATIC]:.3f}")
    assert after["evaluations"] > 200
    assert after[DYNAMIC] > 1.3 * after[STATIC]


def test_a_real_jsonl_log_loads_and_bad_lines_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = tmp_path / "items.jsonl"
    events = tmp_path / "events.jsonl"
    items.write_bytes(b'{"item_id": "i1", "title": "One", "ts": 1262304000000}\n{"title": "no id"}\n')
    events.write_bytes(b"\n".join([
        b'{"event_id": "e2", "user_id": "u", "kind": "view", "ts": 1262304005000, "item_id": "i1"}',
        b'{"event_id": "e1", "user_id": "u", "kind": "view", "ts": 1262304001000, "item_id": "i1"}',
        b"not json",
        b'{"event_id": "e3", "user_id": "u", "kind": "teleport", "ts": 1262304009000, "item_id": "i1"}',
    ]))
    report = LoadReport()
    loaded_items, loaded_events = load_jsonl(items, events, report)
    assert [i.item_id for i in loaded_items] == ["i1"]
    assert [e.event_id for e in loaded_events] == ["e1", "e2"]  # 2010 timestamps, in time order
    assert sum(report.rejected.values()) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{items}:2: skipped: ")
    assert "teleport" in lines[2] and "Traceback" not in "".join(lines)
    assert orjson.loads(events.read_bytes().splitlines()[0])["ts"] == loaded_events[1].ts


class TopicEncoder:
    """Encodes a query as the centre of the topic it names (its first word), counting the texts it is given."""

    dim = 16
    model_name = "topic-centres"

    def __init__(self, centres: dict[str, np.ndarray]) -> None:
        self.centres = centres
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        rows = [self.centres[text.split()[0]] for text in texts]
        return np.stack([row / np.linalg.norm(row) for row in rows]).astype(np.float32)


def test_the_replay_ranks_by_the_queries_searched() -> None:
    topics = ["a", "b", "c", "d"]
    catalogue, items = topic_catalogue(topics, 30)
    by_topic = {t: [i for i in items if i.tags[0] == t] for t in topics}
    rng = np.random.default_rng(3)
    events, ts = [], 1_000_000
    for n in range(400):  # each user searches a topic, then views three of its items
        user, topic = f"u{n % 20}", topics[int(rng.integers(4))]
        events.append(BehaviorEvent(f"e{n}-s", user, "search", ts, query=f"{topic} please"))
        for m in range(3):
            item = by_topic[topic][int(rng.integers(30))]
            events.append(BehaviorEvent(f"e{n}-{m}", user, "view", ts + m + 1, item_id=item.item_id))
        ts += 10
    centres = {t: np.mean([catalogue.vectors[catalogue.index[i.item_id]] for i in by_topic[t]], axis=0)
               for t in topics}
    encoder = TopicEncoder(centres)
    queries = query_vectors(events, encoder)
    assert len(queries) == 400 and sorted(encoder.texts) == sorted(f"{t} please" for t in topics)  # each once
    assert queries["e0-s"].dtype == np.float32 and np.array_equal(queries["e0-s"],
                                                                   queries["e0-s"].astype(np.float16))
    options = ReplayOptions(tune_share=0.2, block=32, resamples=100, progress=False)
    searched = replay(catalogue, events, options, queries=queries).metrics
    unsearched = replay(catalogue, events, options).metrics
    assert unsearched["query"]["HR@10"] == 0.0
    assert searched["query"]["HR@10"] > 0.2  # a topic's 30 items, ten listed: a third when the search is the last
    assert searched[DYNAMIC]["HR@10"] > 1.2 * unsearched[DYNAMIC]["HR@10"]
