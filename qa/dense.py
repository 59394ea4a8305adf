"""Dense retrieval over clause vectors with FAISS (inner product on unit vectors = cosine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DenseIndex:
    """Exact inner-product search; FAISS row ``i`` is clause row ``i`` of the index."""

    FILE = "dense.faiss"

    def __init__(self, index) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray) -> "DenseIndex":
        """Args: vectors: (n, dim) float32 unit rows."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(index)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query.

        Args:
            queries: (q, dim) float32 unit rows.
            allowed: optional sorted int64 array of the rows that may be returned.

        Returns:
            (scores, rows), both (q, k'); k' = min(k, rows searchable); rows are int64.
        """
        import faiss

        limit = len(self) if allowed is None else len(allowed)
        k = min(k, limit)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            scores, rows = self._index.search(queries, k)
        else:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
            scores, rows = self._index.search(queries, k, params=params)
        return scores, rows

    def vector(self, row: int) -> np.ndarray:
        return self._index.reconstruct(int(row))

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(folder / self.FILE))

    @classmethod
    def load(cls, folder: Path) -> "DenseIndex":
        import faiss

        return cls(faiss.read_index(str(folder / cls.FILE)))
