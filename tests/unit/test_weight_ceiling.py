"""The ceiling of weight dynamics: oracles and follow-the-leader on hand-checked hit matrices."""

import random

import numpy as np
import pytest

from replay.weight_ceiling import CeilingSamples, context_oracle, follow_the_leader, static_oracle
from weighting.context import CONTEXT_FEATURES
from weighting.factors import FACTORS


def test_static_oracle_is_the_best_single_column() -> None:
    assert static_oracle(np.array([[1, 0], [1, 1], [0, 1], [0, 1]], bool)) == 0.75


def test_context_oracle_picks_the_best_candidate_per_bucket() -> None:
    hits = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], bool)
    assert context_oracle(hits, np.array([0, 0, 1, 1])) == 1.0
    assert context_oracle(hits, np.array([0, 0, 0, 0])) == 0.5


def test_follow_the_leader_starts_from_the_tuned_candidate_and_switches_after_evidence() -> None:
    hits = np.array([[0, 1], [0, 1], [0, 1]], bool)
    assert follow_the_leader(hits, 0) == pytest.approx(2 / 3)
    assert follow_the_leader(hits, 1) == 1.0


def test_report_names_every_ceiling_and_the_dynamic_models_rate_on_the_same_sample() -> None:
    samples = CeilingSamples(rng=random.Random(0), capacity=3)
    rng = np.random.default_rng(0)
    for n in range(8):  # a reservoir of 3 of the 8
        scores = rng.normal(size=(5, len(FACTORS))).astype(np.float32)
        samples.add(scores, n % 5, rng.normal(size=len(CONTEXT_FEATURES)), dynamic_hit=n % 2 == 0)
    assert len(samples.samples) == 3 and samples.offered == 8
    report = samples.report(np.full(len(FACTORS), 1 / len(FACTORS)), k=2)
    assert report["static oracle"] >= report["static tuned"]
    assert len(report) == 2 + len(CONTEXT_FEATURES) + 2
    assert report["dynamic (driftrec)"] == np.mean([hit for *_, hit in samples.samples])
