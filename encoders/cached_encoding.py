"""Encodes items through the vector cache: only texts never seen by this model reach the encoder."""

from __future__ import annotations

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
    """Returns every item's vector and how many were newly encoded (sorted by length to bucket the batches)."""
    cached = cache.get_many(texts_by_id) if cache is not None else {}
    missing = sorted((item_id for item_id in texts_by_id if item_id not in cached), key=lambda i: len(texts_by_id[i]))
    with tqdm(total=len(missing), disable=not progress or not missing, unit=" items", desc="encoding") as bar:
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            new_vectors = dict(zip(chunk, encoder.encode([texts_by_id[item_id] for item_id in chunk]), strict=True))
            if cache is not None:
                cache.put_many(new_vectors)
            cached.update(new_vectors)
            bar.update(len(chunk))
    return cached, len(missing)


def encode_queries(queries: list[str], encoder: TextEncoder) -> npt.NDArray[np.float32]:
    """Encodes distinct queries once and returns one row per input query."""
    distinct = list(dict.fromkeys(queries))
    if not distinct:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    vectors = encoder.encode(distinct)
    row = {query: i for i, query in enumerate(distinct)}
    return vectors[[row[query] for query in queries]]
