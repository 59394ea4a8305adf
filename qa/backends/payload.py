"""What a build sends to a remote store: rows with everything a question needs, and statistics.

A remote reader has no index folder, so each clause row carries its text, heading path,
position, document and section, the document's agency and date (to filter on), its vector and
its BM25 weights; each section row its mean vector and BM25 weights; and the statistics
(vocabulary, document frequencies of clauses and of sections, documents, lexicon, manifest) go
with them, so that idf is computed from the same counts the local index uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import sections as sections_
from ..retrieval import day_number, document_date
from ..sparse import GroupedBM25, SparseIndex
from ..types import Clause, Document


@dataclass
class RowsBatch:
    """Clause rows and the sections they open, ready to upsert."""

    rows: np.ndarray                      # (n,) int64 row numbers
    clauses: list[Clause]
    vectors: np.ndarray                   # (n, dim) float32
    weights: list[dict[int, float]]       # BM25 weights per row
    sections: np.ndarray                  # (n,) int64 global section of each row
    agencies: list[str]
    days: list[int]                       # YYYYMMDD of the document's date, 0 if unknown
    section_ids: np.ndarray               # (m,) int64 sections first written by this batch
    section_docs: list[str]
    section_vectors: np.ndarray           # (m, dim) float32 unit mean vectors
    section_weights: list[dict[int, float]]


def rows_batch(rows: np.ndarray, clauses: Sequence[Clause], vectors: np.ndarray, sparse: SparseIndex,
               segment: int, row_section: np.ndarray, grouped: GroupedBM25,
               documents: Sequence[Document]) -> RowsBatch:
    """The rows of one new segment of ``sparse``.

    Args:
        row_section: (n,) global section of each new row.
        grouped: section BM25 over every row of the index after this change.
    """
    by_id = {d.doc_id: d for d in documents}
    row_section = np.asarray(row_section, dtype=np.int64)
    ids = np.unique(row_section)
    local = row_section - (int(ids.min()) if len(ids) else 0)
    means = sections_.mean_vectors(local, int(local.max()) + 1 if len(local) else 0, vectors)
    docs = {int(s): c.doc_id for s, c in zip(row_section, clauses)}
    return RowsBatch(rows=np.asarray(rows, dtype=np.int64), clauses=list(clauses), vectors=vectors,
                     weights=sparse.row_weights(segment) if len(clauses) else [], sections=row_section,
                     agencies=[by_id[c.doc_id].meta.get("agency", "") for c in clauses],
                     days=[day_number(document_date(by_id[c.doc_id].meta)) for c in clauses],
                     section_ids=ids, section_docs=[docs[int(s)] for s in ids],
                     section_vectors=means[ids - (int(ids.min()) if len(ids) else 0)],
                     section_weights=grouped.group_weights(ids) if len(ids) else [])


def statistics(manifest: dict[str, Any], documents: Sequence[Document], sparse: SparseIndex,
               grouped: GroupedBM25, lexicon: dict, counts: dict[str, int]) -> dict[str, Any]:
    """Everything a reader loads once per version: settings, documents, BM25 counts, lexicon.

    Args:
        grouped: section BM25 over every row (the one ``rows_batch`` was given).
        counts: live clauses per document.
    """
    return {
        "manifest": {k: v for k, v in manifest.items() if k not in ("skipped",)},
        "documents": [{"doc_id": d.doc_id, "title": d.title, "source": d.source, "meta": d.meta}
                      for d in documents],
        "counts": counts,
        "bm25": {"k1": sparse.k1, "b": sparse.b, "tokens": sparse.vocabulary(), "n": sparse.n,
                 "df": sparse.df.tolist(), "sections_n": grouped.n, "sections_df": grouped.doc_freqs().tolist()},
        "lexicon": lexicon,
    }
