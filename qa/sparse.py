"""Sparse retrieval: BM25 (bm25s, Lucene variant) over jieba tokens."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np


def _bm25s():
    import bm25s

    # bm25s sets its own logger to DEBUG on import; put it back to the application's level
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


class SparseIndex:
    """BM25 over pre-tokenized clauses; row ``i`` is clause row ``i`` of the index."""

    DIR = "bm25"

    def __init__(self, model, k1: float, b: float) -> None:
        self._model = model
        self.k1, self.b = k1, b

    @classmethod
    def build(cls, token_lists: list[list[str]], k1: float = 1.2, b: float = 0.75) -> "SparseIndex":
        model = _bm25s().BM25(k1=k1, b=b, method="lucene")
        # A clause with no token would make bm25s fail; the empty token stands in for it.
        model.index([tokens or [""] for tokens in token_lists], show_progress=False)
        return cls(model, k1, b)

    def __len__(self) -> int:
        return int(self._model.scores["num_docs"])

    def vocabulary(self) -> list[str]:
        return [t for t in self._model.vocab_dict if t]

    def __contains__(self, token: str) -> bool:
        return token in self._model.vocab_dict

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every row for a tokenized query: (n,) float32."""
        ids = [self._model.vocab_dict[t] for t in tokens if t and t in self._model.vocab_dict]
        if not ids:
            return np.zeros(len(self), dtype=np.float32)
        return self._model.get_scores_from_ids(ids)

    def structured_scores(self, groups: list[list[list[str]]]) -> np.ndarray:
        """BM25 of a structured query: a sum over groups of the best alternative in each.

        Args:
            groups: each group is a list of alternatives (synonyms, translations); an
                alternative is a list of tokens whose scores add up.
        """
        total = np.zeros(len(self), dtype=np.float32)
        for group in groups:
            best = np.zeros(len(self), dtype=np.float32)
            for alternative in group:
                np.maximum(best, self.scores(alternative), out=best)
            total += best
        return total

    def search(self, tokens: list[str], k: int, allowed: np.ndarray | None = None,
               scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows with a positive score, best first: (scores, rows).

        Args:
            scores: precomputed scores of every row (a structured query); ``tokens`` is then unused.
        """
        scores = self.scores(tokens) if scores is None else scores
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            mask[allowed] = True
            scores = np.where(mask, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if len(positive) > k:
            top = np.argpartition(-scores[positive], k - 1)[:k]
            positive = positive[top]
        order = positive[np.lexsort((positive, -scores[positive]))]
        return scores[order].astype(np.float32), order.astype(np.int64)

    def save(self, folder: Path) -> None:
        path = folder / self.DIR
        self._model.save(str(path))
        (path / "qa_params.json").write_text(json.dumps({"k1": self.k1, "b": self.b}))

    @classmethod
    def load(cls, folder: Path) -> "SparseIndex":
        path = folder / cls.DIR
        params = json.loads((path / "qa_params.json").read_text())
        return cls(_bm25s().BM25.load(str(path), mmap=False), params["k1"], params["b"])
