"""The ceiling of weight dynamics: oracles and follow-the-leader on hand-checked hit matrices."""

import numpy as np
import pytest

from bench.weight_ceiling import CeilingSamples, context_oracle, follow_the_leader, static_oracle


def test_static_oracle_is_the_best_single_column() -> None:
    assert static_oracle(np.array([[1, 0], [1, 1], [0, 1], [0, 1]], bool)) == 0.75


def test_context_oracle_picks_the_best_candidate_per_bucket() -> None:
    hits = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], bool)
    assert context_oracle(hits, np.array([0, 0, 1, 1])) == 1.0
    assert context_oracle(hits, np.array([0, 0, 0, 0])) == 0.5


def test_follow_the_leader_starts_from_the_tuned_candidate_and_switches_after_evidence() -> None:
    hits = np.array([[0, 1], [0, 1], [0, 1]], bool)
    assert follow_the_leader(hits, 0, 1.0) == pytest.approx(2 / 3)
    assert follow_the_leader(hits, 1, 1.0) == 1.0


def test_follow_the_leader_with_a_discount_forgets_old_hits() -> None:
    hits = np.array([[1, 0]] * 3 + [[0, 1]] * 3, bool)
    assert follow_the_leader(hits, 0, 1.0) == pytest.approx(3 / 6)  # candidate 0 leads until the end
    assert follow_the_leader(hits, 0, 0.1) == pytest.approx(5 / 6)  # one miss, then candidate 1 leads


def test_report_names_every_ceiling() -> None:
    samples = CeilingSamples()
    for n in range(4):
        samples.add(np.array([n % 2 == 0, True]), (float(n), 0.0, 0.5, 0.1))
    report = samples.report(tuned=0)
    assert report["static tuned"] == 0.5 and report["static oracle"] == 1.0
    assert len(report) == 2 + 4 + 2
