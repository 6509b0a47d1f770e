"""Encodes items through the vector cache and queries through a cache of recent ones: only texts the encoder
has not encoded already reach it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from encoders.text_encoder import TextEncoder
from encoders.vector_cache import VectorCache

CHUNK = 1024
"""Texts encoded (and cached) per step, so that an interrupted run keeps what it encoded."""


def encode_with_cache(
    texts_by_id: Mapping[str, str], encoder: TextEncoder, cache: VectorCache | None, *, progress: bool = False
) -> tuple[dict[str, npt.NDArray[np.float32]], int]:
    """Returns every item's vector and how many distinct texts were newly encoded (sorted by length to bucket the
    batches): an item whose text changed is encoded again, one whose text is cached is not."""
    texts = list(dict.fromkeys(texts_by_id.values()))
    by_text = cache.get_many(texts) if cache is not None else {}
    missing = sorted((text for text in texts if text not in by_text), key=len)
    with tqdm(total=len(missing), disable=not progress or not missing, unit=" items", desc="encoding") as bar:
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            new_vectors = dict(zip(chunk, encoder.encode(chunk), strict=True))
            if cache is not None:
                cache.put_many(new_vectors)
            by_text.update(new_vectors)
            bar.update(len(chunk))
    return {item_id: by_text[text] for item_id, text in texts_by_id.items()}, len(missing)


class RecentQueries:
    """The vectors of the `capacity` most recently used search queries (the least recently used one goes first):
    search traffic repeats its most frequent queries, which then skip the encoder. Capacity 0 keeps none."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.vectors: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self.hits = 0

    def encode(self, queries: list[str], encoder: TextEncoder) -> npt.NDArray[np.float32]:
        """One row per query; the encoder sees each distinct query not remembered, once.

        >>> class Letters:
        ...     dim, calls = 1, []
        ...     def encode(self, texts):
        ...         self.calls.append(list(texts))
        ...         return np.array([[ord(t[0])] for t in texts], dtype=np.float32)
        >>> recent, letters = RecentQueries(capacity=2), Letters()
        >>> recent.encode(["a", "b", "a"], letters).ravel().tolist(), letters.calls
        ([97.0, 98.0, 97.0], [['a', 'b']])
        >>> recent.encode(["c", "a"], letters).ravel().tolist(), letters.calls[-1], list(recent.vectors), recent.hits
        ([99.0, 97.0], ['c'], ['c', 'a'], 1)
        """
        distinct = list(dict.fromkeys(queries))
        rows = {query: self.vectors[query] for query in distinct if query in self.vectors}
        self.hits += len(rows)
        missing = [query for query in distinct if query not in rows]
        if missing:
            rows.update(zip(missing, encoder.encode(missing), strict=True))
        for query in distinct:
            self.vectors[query] = rows[query]
            self.vectors.move_to_end(query)
        while len(self.vectors) > self.capacity:
            self.vectors.popitem(last=False)
        return np.stack([rows[query] for query in queries]) if queries else np.zeros((0, encoder.dim), np.float32)
