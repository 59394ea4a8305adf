"""The encoder interface: questions and passages in, L2-normalised float32 vectors out."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """A text embedding model.

    Queries and passages are encoded by separate calls because models such as E5 prefix
    them differently ("query: " / "passage: ").

    Attributes:
        dim: vector length.
        max_tokens: the longest input the model reads; longer text is cut or windowed.
    """

    dim: int
    max_tokens: int

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Return (len(texts), dim) float32, rows of unit length."""
        ...

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Return (len(texts), dim) float32, rows of unit length."""
        ...

    def token_count(self, text: str) -> int:
        """Tokens the model would read for ``text`` as a query, special tokens included."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the index manifest records: backend, model, dim, weights hash, precision."""
        ...

    def release(self) -> None:
        """Free what the model holds in memory where that is worth it; it loads again when next used."""
        ...


class PrefixedEncoder:
    """``encode_queries`` / ``encode_passages`` for a model that reads its prefixes as text.

    Subclasses set ``dim``, ``query_prefix``, ``passage_prefix`` and implement ``_encode``
    (a non-empty list of prefixed texts -> one row per text).
    """

    dim: int
    query_prefix: str = ""
    passage_prefix: str = ""

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed([self.query_prefix + t for t in texts])

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed([self.passage_prefix + t for t in texts])

    def release(self) -> None:
        """Nothing to free by default (ONNX Runtime maps its weights)."""

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(self._encode(texts))

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32, so inner product is cosine similarity."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms)


def file_hash(path: str, limit: int | None = None) -> str:
    """sha256 of a file (or of its first ``limit`` bytes), hex, shortened to 16 characters.

    Remembered per (path, size, modification time): describing an encoder is cheap after the first time.
    """
    import os

    st = os.stat(path)
    return _file_hash(path, limit, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _file_hash(path: str, limit: int | None, size: int, mtime_ns: int) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        remaining = limit
        while True:
            block = handle.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
                if remaining <= 0:
                    break
    return digest.hexdigest()[:16]
