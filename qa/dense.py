"""Dense retrieval over clause vectors with FAISS (inner product on unit vectors = cosine).

The index type follows the size: exact ``IndexFlatIP`` below ``APPROX_FROM`` vectors, a
graph (``IndexHNSWFlat``) from there on. Measured by bench/run.py on 100k real-derived
vectors: HNSW (efSearch 96) recall@10 0.992 against exact search in 0.19 ms, where the flat
scan takes 7.2 ms and an inverted file (IVF, kept as ``kind="ivf"``) needs a sixteenth of
its lists scanned for 0.966. All take new vectors without a rebuild; removed rows are
excluded at search time. Row ``i`` of FAISS is global clause row ``i``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: From this many vectors on, the approximate (HNSW) index is built.
APPROX_FROM = 100_000
#: IVF lists scanned per query, as a share of all lists (recall@10 0.966 at 100k, bench/run.py).
NPROBE_SHARE = 1 / 16
#: HNSW graph degree and search breadth (kind="hnsw").
HNSW_M, HNSW_EF_SEARCH = 32, 96


class DenseIndex:
    FILE = "dense.faiss"

    def __init__(self, index) -> None:
        self._index = index
        self._sync_nprobe()

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto", seed: int = 0) -> "DenseIndex":
        """Index ``vectors`` ((n, dim) float32 unit rows): kind "flat", "ivf", "hnsw" or "auto" (by size)."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        if kind == "flat" or (kind == "auto" and n < APPROX_FROM):
            index = faiss.IndexFlatIP(dim)
        elif kind in ("hnsw", "auto"):
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        else:
            nlist = max(16, int(4 * math.sqrt(n)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)]
            index.train(sample)
            index.make_direct_map()  # lets fusion read back a candidate's vector
        index.add(vectors)
        return cls(index)

    @property
    def kind(self) -> str:
        if hasattr(self._index, "nprobe"):
            return "ivf"
        return "hnsw" if hasattr(self._index, "hnsw") else "flat"

    def _sync_nprobe(self) -> None:
        if self.kind == "ivf":
            self._index.nprobe = max(8, int(self._index.nlist * NPROBE_SHARE))
        elif self.kind == "hnsw":
            self._index.hnsw.efSearch = HNSW_EF_SEARCH

    def copy(self) -> "DenseIndex":
        """An independent copy (queries may still be reading this one while the copy grows)."""
        import faiss

        index = faiss.clone_index(self._index)
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return DenseIndex(index)

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (their ids continue the numbering)."""
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               deleted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query.

        Args:
            queries: (q, dim) float32 unit rows.
            allowed: optional sorted int64 rows that may be returned (a document filter).
            deleted: optional int64 rows that must not be returned (removed documents).

        Returns:
            (scores, rows), both (q, k'); rows are int64, -1 where fewer than k' were found.
        """
        import faiss

        if allowed is not None:
            selectable = len(allowed) if deleted is None else len(np.setdiff1d(allowed, deleted))
        else:
            selectable = len(self) - (0 if deleted is None else len(deleted))
        k = min(k, selectable)
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        keep: list = []  # FAISS selectors hold raw pointers to each other: keep all alive
        sel = None
        if deleted is not None and len(deleted):
            removed = faiss.IDSelectorBatch(np.asarray(deleted, dtype=np.int64))
            sel = faiss.IDSelectorNot(removed)
            keep += [removed, sel]
        if allowed is not None:
            allow = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
            keep.append(allow)
            sel = allow if sel is None else faiss.IDSelectorAnd(allow, sel)
            keep.append(sel)
        if sel is None:
            return self._index.search(queries, k)
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF(sel=sel, nprobe=self._index.nprobe)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=self._index.hnsw.efSearch)
        else:
            params = faiss.SearchParameters(sel=sel)
        scores, rows = self._index.search(queries, k, params=params)
        del keep
        return scores, rows

    def similarities(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner product of ``vector`` with each of ``rows``."""
        return self.vectors(np.asarray(rows)) @ vector

    def vector(self, row: int) -> np.ndarray:
        return self._index.reconstruct(int(row))

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return np.stack([self._index.reconstruct(int(r)) for r in rows]) if len(rows) else np.zeros((0, self.dim),
                                                                                                    np.float32)

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(folder / self.FILE))

    @classmethod
    def load(cls, folder: Path) -> "DenseIndex":
        import faiss

        index = faiss.read_index(str(folder / cls.FILE))
        if hasattr(index, "make_direct_map"):
            index.make_direct_map()
        return cls(index)
