"""Rank fusion: pure functions over ranked lists of ids."""

from __future__ import annotations

from collections.abc import Hashable, Sequence


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
