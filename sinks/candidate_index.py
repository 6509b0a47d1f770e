"""An approximate nearest-neighbour index over the catalogue (FAISS HNSW, inner product), for catalogues too large
to score exactly: it proposes each user's content candidates, the scorer fuses every factor on them."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sinks.catalogue import Catalogue


class CandidateIndex:
    """Follows the catalogue: new rows are added to the index, a replaced row rebuilds it at the next search.

    Needs the optional `faiss-cpu` package (`pip install driftrec[ann]`).
    """

    def __init__(self, catalogue: Catalogue, neighbours: int = 32, search_depth: int = 128) -> None:
        try:
            import faiss
        except ImportError as error:
            raise RuntimeError("ranking among candidates needs faiss-cpu: pip install 'driftrec[ann]'") from error
        self._faiss = faiss
        self.catalogue = catalogue
        self.neighbours = neighbours
        self.search_depth = search_depth
        self._index: Any = None
        self._indexed = 0
        self._replacements = -1

    def _synced(self) -> Any:
        catalogue = self.catalogue
        if self._index is None or self._replacements != catalogue.replacements:
            self._index = self._faiss.IndexHNSWFlat(catalogue.dim, self.neighbours, self._faiss.METRIC_INNER_PRODUCT)
            self._indexed, self._replacements = 0, catalogue.replacements
        if self._indexed < len(catalogue):
            self._index.add(np.ascontiguousarray(catalogue.vectors[self._indexed :], dtype=np.float32))
            self._indexed = len(catalogue)
        return self._index

    def search(
        self, queries: npt.NDArray[np.float32], count: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """users × count: the inner products and rows of the items nearest each query (rows −1 where the
        catalogue is smaller). The products are exact: the index keeps the full vectors."""
        index = self._synced()
        index.hnsw.efSearch = max(self.search_depth, count)
        products, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), count)
        return products, rows.astype(np.int64)
