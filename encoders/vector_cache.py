"""A persistent item-vector cache in RocksDB (rocksdict), keyed by model and item id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rocksdict import Rdict, WriteBatch


class VectorCache:
    """Stores float32 vectors so that a catalogue is encoded once per model."""

    def __init__(self, path: str | Path, model_name: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path))
        self._prefix = model_name.encode() + b"\x00"

    def _key(self, item_id: str) -> bytes:
        return self._prefix + item_id.encode()

    def get_many(self, item_ids: Iterable[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Returns the cached vectors of those ids that are cached."""
        ids = list(item_ids)
        found: list[bytes | None] = self._db.get([self._key(item_id) for item_id in ids]) or []
        return {
            item_id: np.frombuffer(raw, dtype=np.float32)
            for item_id, raw in zip(ids, found, strict=True)
            if raw is not None
        }

    def put_many(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        batch = WriteBatch()
        for item_id, vector in vectors.items():
            batch.put(self._key(item_id), np.asarray(vector, dtype=np.float32).tobytes())
        self._db.write(batch)

    def close(self) -> None:
        self._db.close()
