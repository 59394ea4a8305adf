"""Rank fusion: pure functions over ranked lists of ids."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = 60,
        weights: Sequence[float] | None = None) -> list[tuple[Hashable, float]]:
    """Reciprocal-rank fusion (Cormack et al., 2009).

    score(d) = sum over lists of weight / (k + rank of d in that list), ranks from 1.

    Args:
        rankings: ranked id lists, best first; an id absent from a list adds nothing.
        k: the damping constant; 60 is the published default.
        weights: one weight per list (default 1 each).

    Returns:
        (id, score) pairs, best first; ties keep the order of first appearance.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def convex(dense: np.ndarray, bm25: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """Convex combination of normalised scores over one candidate set.

    score = alpha * minmax(dense) + (1 - alpha) * bm25 / max(bm25)

    Cosine similarities of a small encoder crowd into a narrow band (0.85-0.93 here), so
    they are min-max scaled over the candidates; BM25 is divided by its best score, so a
    candidate without any query term gets 0 from it. Unlike RRF this keeps how far apart
    the candidates are, which is what lets a decisive keyword match win.

    Args:
        dense, bm25: (n,) scores of the same n candidates.
        alpha: weight of the dense side, in [0, 1].

    Returns:
        (n,) scores in [0, 1].
    """
    dense = np.asarray(dense, dtype=np.float64)
    bm25 = np.asarray(bm25, dtype=np.float64)
    if len(dense) == 0:
        return np.zeros(0)
    spread = dense.max() - dense.min()
    d = (dense - dense.min()) / spread if spread > 0 else np.ones_like(dense)
    b = bm25 / bm25.max() if bm25.max() > 0 else np.zeros_like(bm25)
    return alpha * d + (1 - alpha) * b


def contextual(dense: np.ndarray, bm25: np.ndarray, section_dense: np.ndarray | None,
               section_bm25: np.ndarray | None, alpha: float = 0.7, beta: float = 0.0) -> np.ndarray:
    """Convex fusion of the clause's own scores and its section's.

    score = (1 - beta) * convex(dense, bm25, alpha) + beta * convex(section_dense, section_bm25, alpha)

    so a clause inside the passage about the question's topic rises above a clause that only
    shares words with the question. ``beta`` = 0 (or no section scores) is plain ``convex``.

    Args:
        dense, bm25: (n,) the candidates' own cosine and BM25.
        section_dense, section_bm25: (n,) the same for each candidate's section, or None.
        alpha: weight of the dense side within each pair.
        beta: weight of the section, in [0, 1].
    """
    own = convex(dense, bm25, alpha)
    if section_dense is None or section_bm25 is None or beta <= 0:
        return own
    return (1 - beta) * own + beta * convex(section_dense, section_bm25, alpha)
