import numpy as np
import pytest
import torch

from bench.metrics import MethodMetrics, ranks_of_target
from bench.replay import DYNAMIC, STATIC, ReplayOptions, replay
from bench.static_tuning import candidate_hit_rates, candidate_weights
from sinks.catalogue import Catalogue, CatalogueItem
from streams.events import Item
from streams.synthetic import behaviour_stream, make_users
from weighting.factors import FACTORS, Factor


def test_rank_of_target_ignores_seen_items_and_counts_ties_half() -> None:
    fused = torch.tensor([[5.0, 4.0, 3.0, 9.0], [1.0, 1.0, 1.0, 1.0]])
    seen = torch.tensor([False, False, False, True])
    assert ranks_of_target(fused, seen, 2).tolist() == [2, 1]


def test_metrics_hand_checked() -> None:
    metrics = MethodMetrics(k=10)
    metrics.add(0, [1, 2])
    metrics.add(3, [2, 3])
    metrics.add(12, [4])
    summary = metrics.summary(n_items=8)
    assert summary["HR@10"] == pytest.approx(2 / 3)
    assert summary["NDCG@10"] == pytest.approx((1 + 1 / np.log2(5)) / 3)
    assert summary["MRR@10"] == pytest.approx((1 + 1 / 4) / 3)
    assert summary["coverage"] == pytest.approx(4 / 8)


def test_static_tuning_finds_the_informative_factor() -> None:
    samples = []
    for row in range(20):
        scores = torch.randn(len(FACTORS), 50)
        scores[Factor.COVISIT, row] = 10.0
        samples.append((scores, torch.zeros(50, dtype=torch.bool), row))
    candidates = candidate_weights(len(FACTORS), n_random=20, seed=0)
    rates = candidate_hit_rates(samples, 1, candidates)
    best = int(rates.argmax())
    assert rates[best] == 1.0 and int(candidates[best].argmax()) == Factor.COVISIT
    assert rates[Factor.SHORT_TERM] < 0.5


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


def test_replay_of_focused_users_rewards_interest_factors() -> None:
    topics = ["a", "b", "c", "d"]
    catalogue, items = topic_catalogue(topics, 30)
    users = make_users(24, topics, seed=1)
    events = list(behaviour_stream(users, items, 30, 1_000_000, seed=1, kind_mix=(("view", 1.0),)))
    result = replay(catalogue, events, ReplayOptions(sample=1.0, tune_share=0.2, progress=False))
    metrics = result.metrics
    split, seen_users, expected = int(len(events) * 0.2), set(), 0
    for index, event in enumerate(events):
        expected += index >= split and event.user_id in seen_users
        seen_users.add(event.user_id)
    assert metrics[STATIC]["evaluations"] == expected > 0
    assert metrics["long_term"]["HR@10"] > 2 * metrics["freshness"]["HR@10"]
    assert metrics["dynamic (driftrec)"]["HR@10"] > 2 * 10 / len(items)
    ceiling = result.ceiling  # the same evaluated events, the tuned static fusion among the candidates
    assert ceiling["static tuned"] == pytest.approx(metrics[STATIC]["HR@10"])
    assert ceiling["static oracle"] >= ceiling["static tuned"]
    assert all(value >= ceiling["static oracle"] for name, value in ceiling.items() if name.startswith("oracle per"))


def test_dynamic_weights_recover_after_an_interest_switch_faster_than_static() -> None:
    topics = ["a", "b", "c", "d"]
    catalogue, items = topic_catalogue(topics, 40)
    switch_at = 30
    users = make_users(40, topics, seed=2, drift_share=1.0, switch_at=switch_at)
    events = list(behaviour_stream(users, items, 60, 1_000_000, seed=2, kind_mix=(("view", 1.0),)))
    result = replay(catalogue, events, ReplayOptions(sample=1.0, tune_share=0.2, progress=False))
    after_switch = {f"{u.user_id}-{n:05d}" for u in users for n in range(switch_at, switch_at + 8)}

    def recovery_hit_rate(method: str) -> float:
        return len(after_switch & set(result.hits.get(method, []))) / len(after_switch)

    dynamic, static = recovery_hit_rate(DYNAMIC), recovery_hit_rate(STATIC)
    print(f"HR@10 in the 8 events after the switch: dynamic {dynamic:.3f}, static {static:.3f}")
    assert dynamic > static
