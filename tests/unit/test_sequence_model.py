"""The sequence model learns next items from the stream, scores unseen items from their text, and survives a
snapshot and a growing catalogue."""

import numpy as np
import pytest

from sinks.catalogue import Catalogue, CatalogueItem
from sinks.sequence_model import SequenceModel, SequenceSettings, padded

SETTINGS = SequenceSettings(dim=16, length=5, train_every=32, train_steps=2, batch=64, learning_rate=0.01,
                            negatives=64, buffer=50_000, seed=1)


def topic_catalogue(n_topics: int, per_topic: int, seed: int = 0) -> Catalogue:
    """Items whose text vectors cluster by topic (item t-n is the n-th of topic t)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_topics, 12))
    vectors = {f"{t}-{n}": centres[t] + 0.3 * rng.normal(size=12) for t in range(n_topics) for n in range(per_topic)}
    catalogue = Catalogue(12)
    catalogue.upsert([CatalogueItem(i, i) for i in vectors],
                     {i: (v / np.linalg.norm(v)).astype(np.float32) for i, v in vectors.items()})
    return catalogue


def test_it_learns_what_comes_next_in_a_sequence() -> None:
    catalogue = topic_catalogue(4, 10)
    model = SequenceModel(catalogue, SETTINGS)
    n = len(catalogue)
    rng = np.random.default_rng(2)
    for _ in range(3000):  # users walk the catalogue in order: row r is followed by row r + 1
        start = int(rng.integers(0, n))
        history = [(start + step) % n for step in range(int(rng.integers(1, 6)))]
        model.learn(history, (history[-1] + 1) % n)
    assert model.steps >= 100
    prefixes = [[(r + step) % n for step in range(3)] for r in range(n)]
    scores = model.scores(model.user_vectors(prefixes)).numpy()
    for prefix, row_scores in zip(prefixes, scores, strict=True):
        row_scores[prefix] = -np.inf
    hits = np.mean([scores[r].argmax() == (prefixes[r][-1] + 1) % n for r in range(n)])
    assert hits >= 0.8


def test_an_item_nobody_touched_scores_from_its_text() -> None:
    catalogue = topic_catalogue(4, 10)
    model = SequenceModel(catalogue, SETTINGS)
    rng = np.random.default_rng(3)
    topic_rows = {t: [catalogue.index[f"{t}-{n}"] for n in range(8)] for t in range(4)}  # items 8, 9: never used
    for _ in range(2000):  # each user stays within one topic
        rows = list(rng.choice(topic_rows[int(rng.integers(0, 4))], size=4, replace=False))
        model.learn(rows[:-1], rows[-1])
    for topic in range(4):
        [scores] = model.scores(model.user_vectors([topic_rows[topic][:3]])).numpy()
        untouched = scores[catalogue.index[f"{topic}-9"]]
        others = [scores[catalogue.index[f"{other}-9"]] for other in range(4) if other != topic]
        assert untouched > max(others)


def test_a_snapshot_restores_the_same_scores_in_another_catalogue_order() -> None:
    catalogue = topic_catalogue(3, 6)
    model = SequenceModel(catalogue, SETTINGS)
    rng = np.random.default_rng(4)
    for _ in range(300):
        rows = rng.integers(0, len(catalogue), 4).tolist()
        model.learn(rows[:-1], rows[-1])
    reordered = Catalogue(12)
    ids = [item.item_id for item in catalogue.items][::-1]
    reordered.upsert([CatalogueItem(i, i) for i in ids], {i: catalogue.vector(i) for i in ids})
    restored = SequenceModel(reordered, SETTINGS)
    new_row = np.array([reordered.index[item.item_id] for item in catalogue.items])
    restored.restore(SequenceModel.read(model.to_bytes()), new_row)
    sequence = [0, 3, 5]
    original = model.scores(model.user_vectors([sequence])).numpy()[0]
    again = restored.scores(restored.user_vectors([new_row[sequence].tolist()])).numpy()[0]
    assert again[new_row] == pytest.approx(original, abs=1e-5)
    assert restored.buffer.added == model.buffer.added and restored.steps == model.steps


def test_a_growing_catalogue_keeps_what_was_learned() -> None:
    catalogue = topic_catalogue(2, 5)
    model = SequenceModel(catalogue, SETTINGS)
    capacity = len(model.network.item_bias)
    for _ in range(200):
        model.learn([0, 1], 2)
    before = model.scores(model.user_vectors([[0, 1]])).numpy()[0]
    extra = {f"new-{n}": np.full(12, 1 / np.sqrt(12), np.float32) for n in range(capacity)}
    catalogue.upsert([CatalogueItem(i, i) for i in extra], extra)
    after = model.scores(model.user_vectors([[0, 1]])).numpy()[0]
    assert len(model.network.item_bias) >= len(catalogue) > capacity
    assert after[: len(before)] == pytest.approx(before, abs=1e-5)


def test_sequences_are_left_padded_to_their_length() -> None:
    assert padded([], 3).tolist() == [-1, -1, -1]
    assert padded([1, 2, 3, 4], 2).tolist() == [3, 4]
