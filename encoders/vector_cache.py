"""A persistent vector cache in RocksDB (rocksdict), keyed by model and a hash of the text encoded."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rocksdict import Rdict, WriteBatch

TEXT_DIGEST_BYTES = 16


class VectorCache:
    """Stores float32 vectors by the text they encode, so that a text is encoded once per model: an item whose
    text changed misses and is encoded again. The entry of a text no item uses any more stays."""

    def __init__(self, path: str | Path, model_name: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path))
        self._prefix = model_name.encode() + b"\x00"

    def _key(self, text: str) -> bytes:
        return self._prefix + hashlib.blake2b(text.encode(), digest_size=TEXT_DIGEST_BYTES).digest()

    def get_many(self, texts: Iterable[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Returns the cached vectors of those texts that are cached."""
        distinct = list(dict.fromkeys(texts))
        found: list[bytes | None] = self._db.get([self._key(text) for text in distinct]) or []
        return {
            text: np.frombuffer(raw, dtype=np.float32)
            for text, raw in zip(distinct, found, strict=True)
            if raw is not None
        }

    def put_many(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        """Stores each text's vector."""
        batch = WriteBatch()
        for text, vector in vectors.items():
            batch.put(self._key(text), np.asarray(vector, dtype=np.float32).tobytes())
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
