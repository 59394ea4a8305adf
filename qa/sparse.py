"""BM25 over segments of term-frequency postings, scored with live collection statistics.

bm25s bakes idf and length normalisation into its matrix when it indexes, so a document
cannot be added or removed without rebuilding everything. Here each segment stores raw
term frequencies in the same compressed-column layout (per term: rows and counts, as
``.npy``), and the Lucene BM25 formula bm25s uses ("lucene" method) is applied at query
time with statistics over the live rows of all segments:

    idf(t)   = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score    = sum over query tokens t of idf(t) * tf / (tf + k1 * (1 - b + b * len / avgdl))

so adding a segment or tombstoning rows changes N, df and avgdl exactly as a rebuild would.
A query token that occurs twice counts twice, as in bm25s and Lucene.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Postings:
    """The term frequencies of one segment.

    Attributes:
        indptr: (V_seg + 1,) int64; the postings of term t are [indptr[t], indptr[t+1]).
        rows: (nnz,) int32 local row numbers, ascending within a term.
        tf: (nnz,) float32 term frequencies.
        lengths: (n,) int32 tokens per row.
    """

    indptr: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray

    FILES = ("tf_indptr.npy", "tf_rows.npy", "tf_counts.npy", "lengths.npy")

    @classmethod
    def build(cls, token_ids: Sequence[Sequence[int]], vocab_size: int) -> "Postings":
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int32, count=len(token_ids))
        terms = np.fromiter((i for t in token_ids for i in t), dtype=np.int32, count=int(lengths.sum()))
        return cls.from_flat(terms, lengths, vocab_size)

    @classmethod
    def from_flat(cls, terms: np.ndarray, lengths: np.ndarray, vocab_size: int) -> "Postings":
        """Postings of rows given as one array of term ids, row after row.

        Args:
            terms: (lengths.sum(),) int32 term ids below ``vocab_size``.
            lengths: (n,) int32 tokens per row.
        """
        lengths = np.asarray(lengths, dtype=np.int32)
        if len(terms) == 0:
            return cls(np.zeros(vocab_size + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), lengths)
        # a stable sort by term keeps each term's rows ascending, in 4-byte arrays where a
        # (term * n + row) key would need 8 (100k clauses: ~5M tokens, ~100 MB less at the peak)
        order = np.argsort(terms, kind="stable")
        term_sorted = terms[order]
        rows = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)[order]
        del order
        first = np.ones(len(rows), dtype=bool)  # a (term, row) pair seen again adds to one posting's count
        first[1:] = (term_sorted[1:] != term_sorted[:-1]) | (rows[1:] != rows[:-1])
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, len(rows))).astype(np.float32)
        indptr = np.zeros(vocab_size + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_sorted[starts], minlength=vocab_size), out=indptr[1:])
        return cls(indptr, rows[starts], counts, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def term(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if t + 1 >= len(self.indptr):
            return self.rows[:0], self.tf[:0]
        lo, hi = self.indptr[t], self.indptr[t + 1]
        return self.rows[lo:hi], self.tf[lo:hi]

    def doc_freqs(self, live: np.ndarray, vocab_size: int) -> np.ndarray:
        """Per term, how many live rows contain it: (vocab_size,) int64."""
        terms = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        df = np.bincount(terms, weights=live[self.rows], minlength=vocab_size)
        return df[:vocab_size].astype(np.int64)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, values in zip(self.FILES, (self.indptr, self.rows, self.tf, self.lengths)):
            np.save(folder / name, values, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> "Postings":
        return cls(*(np.load(folder / name, allow_pickle=False) for name in cls.FILES))


class SparseIndex:
    """BM25 over a vocabulary shared by segments; rows are global (segment offset + local row).

    Args:
        vocab: token -> id, append-only (ids never change, so older segments stay valid).
        segments: postings in row order.
        deleted: global rows that no longer count (replaced or removed documents).
    """

    VOCAB = "vocab.json"

    def __init__(self, vocab: dict[str, int], segments: list[Postings], deleted: np.ndarray | None = None,
                 k1: float = 1.2, b: float = 0.75) -> None:
        self.vocab = vocab
        self.segments = segments
        self.k1, self.b = k1, b
        self.offsets = np.cumsum([0] + [len(s) for s in segments])
        self.live = np.ones(int(self.offsets[-1]), dtype=bool)
        if deleted is not None and len(deleted):
            self.live[np.asarray(deleted, dtype=np.int64)] = False
        self._statistics()

    def _statistics(self) -> None:
        """N, df, avgdl over live rows, and each row's length normaliser."""
        size = len(self.vocab)
        self.n = int(self.live.sum())
        self.df = np.zeros(size, dtype=np.int64)
        lengths = np.concatenate([s.lengths for s in self.segments]) if self.segments else np.zeros(0, np.int32)
        for seg, base in zip(self.segments, self.offsets):
            self.df += seg.doc_freqs(self.live[base:base + len(seg)], size)
        avgdl = float(lengths[self.live].mean()) if self.n else 1.0
        self.idf = np.log(1 + (self.n - self.df + 0.5) / (self.df + 0.5)).astype(np.float32)
        self.norm = (self.k1 * (1 - self.b + self.b * lengths / max(avgdl, 1e-9))).astype(np.float32)

    # -- building and changing -----------------------------------------------------------

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> "SparseIndex":
        """BM25 over rows of tokens (an iterable read once: a generator keeps only one row in memory)."""
        vocab: dict[str, int] = {}
        return cls(vocab, [_postings(token_lists, vocab)], None, k1, b)

    def add_segment(self, token_lists: Iterable[Sequence[str]]) -> "SparseIndex":
        """A new index with one more segment (new words extend the vocabulary); rows read once."""
        vocab = dict(self.vocab)
        return SparseIndex(vocab, [*self.segments, _postings(token_lists, vocab)], self.deleted_rows(),
                           self.k1, self.b)

    def delete(self, rows: np.ndarray) -> "SparseIndex":
        """A new index in which these global rows no longer count."""
        deleted = np.union1d(self.deleted_rows(), np.asarray(rows, dtype=np.int64))
        return SparseIndex(self.vocab, self.segments, deleted, self.k1, self.b)

    def deleted_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.live)

    def row_weights(self, segment: int) -> list[dict[int, float]]:
        """Each row's BM25 weights, term id -> tf / (tf + k1 * (1 - b + b * len / avgdl)),
        for rows of one segment (what a sparse-vector store keeps per row)."""
        seg, base = self.segments[segment], int(self.offsets[segment])
        terms = np.repeat(np.arange(len(seg.indptr) - 1), np.diff(seg.indptr))
        values = seg.tf / (seg.tf + self.norm[seg.rows.astype(np.int64) + base])
        out: list[dict[int, float]] = [{} for _ in range(len(seg))]
        for row, term, value in zip(seg.rows.tolist(), terms.tolist(), values.tolist()):
            out[row][term] = value
        return out

    def query_weights(self, tokens: list[str]) -> dict[int, float]:
        """A question's BM25 weights, term id -> idf * count: their inner product with
        ``row_weights`` is the row's BM25 score."""
        weights: dict[int, float] = {}
        for token in tokens:
            t = self.vocab.get(token)
            if t is not None and self.df[t] > 0:
                weights[t] = weights.get(t, 0.0) + float(self.idf[t])
        return weights

    # -- querying ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, token: str) -> bool:
        """Whether a live clause holds ``token``: the words of deleted clauses stay in the
        vocabulary until a compaction, but the collection no longer has them."""
        t = self.vocab.get(token)
        return t is not None and self.df[t] > 0

    def vocabulary(self) -> list[str]:
        return list(self.vocab)

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every row (deleted rows score 0): (rows,) float32."""
        scores = np.zeros(len(self.live), dtype=np.float32)
        for token in tokens:
            t = self.vocab.get(token)
            if t is None or self.df[t] == 0:
                continue
            for seg, base in zip(self.segments, self.offsets):
                rows, tf = seg.term(t)
                if len(rows):
                    where = rows.astype(np.int64) + base
                    scores[where] += self.idf[t] * tf / (tf + self.norm[where])
        scores[~self.live] = 0.0
        return scores

    def structured_scores(self, groups: list[list[list[str]]]) -> np.ndarray:
        """BM25 of a structured query: a sum over groups of the best alternative in each.

        Args:
            groups: each group is a list of alternatives (synonyms, translations); an
                alternative is a list of tokens whose scores add up.
        """
        return structured(self.scores, groups, len(self))

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

    # -- files ---------------------------------------------------------------------------

    def save_vocab(self, folder: Path) -> None:
        (folder / self.VOCAB).write_text(json.dumps({"k1": self.k1, "b": self.b, "tokens": list(self.vocab)},
                                                    ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, segment_dirs: list[Path], deleted: np.ndarray | None) -> "SparseIndex":
        data = json.loads((folder / cls.VOCAB).read_text(encoding="utf-8"))
        vocab = {t: i for i, t in enumerate(data["tokens"])}
        return cls(vocab, [Postings.load(d) for d in segment_dirs], deleted, data["k1"], data["b"])


def _postings(token_lists: Iterable[Sequence[str]], vocab: dict[str, int]) -> Postings:
    """Postings of ``token_lists`` (read once, so it may be a generator), adding new tokens to ``vocab``.

    Token ids go straight into one int32 array: a list of Python ints per row took ~36 bytes
    a token (100k clauses, ~5M tokens: ~170 MB), and a generator's token lists need never
    be in memory all at once.
    """
    terms, lengths = array("i"), array("i")  # C int: 32 bits
    for tokens in token_lists:
        lengths.append(len(tokens))
        terms.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
    return Postings.from_flat(np.frombuffer(terms, dtype=np.int32), np.array(lengths, dtype=np.int32), len(vocab))


def plain_groups(tokens: Sequence[str], known) -> list[list[list[str]]]:
    """A plain query in the structured form: each token the collection holds, a group of its own
    (what English translations and homophone alternatives are added to)."""
    return [[[t]] for t in tokens if t in known]


def structured(scores, groups: list[list[list[str]]], size: int) -> np.ndarray:
    """A sum over groups of the best alternative in each, ``scores(tokens)`` scoring one alternative."""
    total = np.zeros(size, dtype=np.float32)
    for group in groups:
        best = np.zeros(size, dtype=np.float32)
        for alternative in group:
            np.maximum(best, scores(alternative), out=best)
        total += best
    return total


class GroupedBM25:
    """BM25 of groups of rows (the sections of a document) as if each group were one text.

    A group's term frequency is the sum over its live rows, its length the sum of their
    lengths; N, df and the average length are counted over groups. Nothing is stored: the
    rows' postings are aggregated at query time, so added segments and deleted rows count
    exactly as they do for the rows themselves.

    Args:
        sparse: the row-level index.
        group_of: (rows,) group number of every global row.
        n_groups: number of groups.
    """

    def __init__(self, sparse: SparseIndex, group_of: np.ndarray, n_groups: int) -> None:
        self.sparse = sparse
        self.group_of = np.asarray(group_of, dtype=np.int64)
        self.n_groups = n_groups
        lengths = np.concatenate([s.lengths for s in sparse.segments]) if sparse.segments else np.zeros(0, np.int32)
        live = sparse.live
        glen = np.bincount(self.group_of[live], weights=lengths[live], minlength=n_groups)
        self.live = np.bincount(self.group_of[live], minlength=n_groups) > 0
        self.n = int(self.live.sum())
        avg = float(glen[self.live].mean()) if self.n else 1.0
        self.norm = sparse.k1 * (1 - sparse.b + sparse.b * glen / max(avg, 1e-9))
        self._pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every group: (n_groups,) float32."""
        sp = self.sparse
        out = np.zeros(self.n_groups, dtype=np.float64)
        for token in tokens:
            t = sp.vocab.get(token)
            if t is None or sp.df[t] == 0:
                continue
            tf = np.zeros(self.n_groups, dtype=np.float64)
            for seg, base in zip(sp.segments, sp.offsets):
                rows, counts = seg.term(t)
                if len(rows):
                    where = rows.astype(np.int64) + base
                    keep = sp.live[where]
                    tf += np.bincount(self.group_of[where[keep]], weights=counts[keep], minlength=self.n_groups)
            hit = np.flatnonzero(tf)
            if len(hit):
                idf = np.log(1 + (self.n - len(hit) + 0.5) / (len(hit) + 0.5))
                out[hit] += idf * tf[hit] / (tf[hit] + self.norm[hit])
        return out.astype(np.float32)

    def structured_scores(self, groups: list[list[list[str]]]) -> np.ndarray:
        return structured(self.scores, groups, self.n_groups)

    # -- for a store that keeps sections as sparse vectors -------------------------------

    def _live_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(term, group, summed tf) for every term of every live group (computed once: both
        ``doc_freqs`` and ``group_weights`` of one build read it)."""
        if self._pairs is None:
            self._pairs = self._aggregate_pairs()
        return self._pairs

    def _aggregate_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sp = self.sparse
        terms, groups, tfs = [], [], []
        for seg, base in zip(sp.segments, sp.offsets):
            where = seg.rows.astype(np.int64) + base
            keep = sp.live[where]
            terms.append(np.repeat(np.arange(len(seg.indptr) - 1), np.diff(seg.indptr))[keep])
            groups.append(self.group_of[where[keep]])
            tfs.append(seg.tf[keep].astype(np.float64))
        if not terms:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        key = np.concatenate(terms).astype(np.int64) * max(self.n_groups, 1) + np.concatenate(groups)
        unique, inverse = np.unique(key, return_inverse=True)
        return unique // max(self.n_groups, 1), unique % max(self.n_groups, 1), np.bincount(
            inverse, weights=np.concatenate(tfs))

    def doc_freqs(self) -> np.ndarray:
        """(vocabulary,) the number of live groups each term occurs in."""
        terms, _, _ = self._live_pairs()
        return np.bincount(terms, minlength=len(self.sparse.vocab)).astype(np.int64)

    def group_weights(self, wanted: np.ndarray) -> list[dict[int, float]]:
        """Each wanted group's BM25 weights, term id -> tf / (tf + k1 * (1 - b + b * len / avglen)):
        their inner product with idf-weighted question terms is ``scores`` for that group."""
        terms, groups, tf = self._live_pairs()
        position = {int(g): i for i, g in enumerate(wanted)}
        out: list[dict[int, float]] = [{} for _ in wanted]
        keep = np.isin(groups, wanted)
        for t, g, f in zip(terms[keep].tolist(), groups[keep].tolist(), tf[keep].tolist()):
            out[position[g]][t] = f / (f + float(self.norm[g]))
        return out
