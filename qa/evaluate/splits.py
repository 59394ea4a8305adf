"""A fixed dev/test split of every question set.

Tuned numbers (fusion weights, the no-match line) are chosen on the dev part and reported on
the test part, so a reported figure never comes from the questions it was tuned on. A question
falls into a part by a seeded hash of its key, not by its position: adding or removing other
questions never moves it. Benchmark questions are split by their gold passage, so that no
passage has questions on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

#: Changing the seed or the share reshuffles every set: never change them to improve a figure.
SEED = "qa-policy-split-1"
TEST_SHARE = 0.5
SPLITS = ("dev", "test", "all")

T = TypeVar("T")


def split_of(key: str, seed: str = SEED, test_share: float = TEST_SHARE) -> str:
    """"test" or "dev" for a question key (its qid, or its gold passage for benchmarks)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2 ** 64 < test_share else "dev"


def select(items: Sequence[T], split: str, key=lambda q: q.split) -> list[T]:
    """The items of one part ("dev", "test") or all of them ("all")."""
    if split not in SPLITS:
        from ..errors import QAError

        raise QAError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return list(items) if split == "all" else [q for q in items if key(q) == split]
