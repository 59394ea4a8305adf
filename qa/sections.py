"""Sections: the passage around a clause, scored together with the clause.

A clause alone often lacks the topic a question names: "形成超级智能汽车平台…" does not say that
it is about 成渝 cooperation, and a benchmark sentence rarely repeats its article's subject. Its
section does. A clause's section is its document cut at the first levels of the heading path
(title + up to two numbered levels: "一、… › （一）…"); a document without numbered headings,
such as a newspaper article or a benchmark passage, is one section. A document's card is a
section of its own.

The section's dense vector is the normalised mean of its clauses' vectors (no extra encoder
pass, and it changes with the clauses); its BM25 is computed over the sum of its clauses'
postings (``qa.sparse.GroupedBM25``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .types import Clause

#: The heading levels that make a section: the title plus two numbered levels.
SECTION_DEPTH = 3
#: Rows summed at a time by ``mean_vectors`` (8,192 x 384 float64: 25 MB).
MEAN_BLOCK = 8192


def section_key(clause: Clause) -> tuple[str, ...]:
    """What identifies a clause's section within its segment."""
    if clause.kind == "card":
        return (clause.doc_id, "\0card")
    return (clause.doc_id, *clause.heading[:SECTION_DEPTH])


def assign(clauses: Sequence[Clause]) -> tuple[np.ndarray, int]:
    """Number the sections of ``clauses`` in order of first appearance.

    Returns:
        ((len(clauses),) int32 section number of each clause, number of sections)
    """
    numbers: dict[tuple[str, ...], int] = {}
    of = np.fromiter((numbers.setdefault(section_key(c), len(numbers)) for c in clauses), dtype=np.int32,
                     count=len(clauses))
    return of, len(numbers)


def mean_vectors(section_of: np.ndarray, n_sections: int, vectors: np.ndarray) -> np.ndarray:
    """(n_sections, dim) float32 unit vectors: each section's normalised mean clause vector."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    sums = np.zeros((n_sections, dim), dtype=np.float64)
    # float64 a block of rows at a time: all at once, 100k clauses took 0.3 GB at the build's peak
    for start in range(0, len(section_of), MEAN_BLOCK):
        block = slice(start, start + MEAN_BLOCK)
        np.add.at(sums, section_of[block].astype(np.int64), vectors[block].astype(np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
