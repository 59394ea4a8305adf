"""A persistent cache of passage embeddings keyed by (encoder, text).

Rebuilding the index after one document changes re-embeds only the clauses whose text is
new. SQLite gives crash-safe writes and concurrent readers without extra packages.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .base import Encoder


def encoder_key(encoder: Encoder) -> str:
    """Identifies the vectors an encoder produces: backend, model, weights and precision."""
    d = encoder.describe()
    return f"{d['backend']}|{d['model']}|{d.get('weights', '')}|{d.get('precision', '')}|{d['dim']}"


class EmbeddingCache:
    """Vectors by (encoder key, passage text) in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def _key(space: str, text: str) -> str:
        return hashlib.sha1(f"{space}\x00{text}".encode()).hexdigest()

    def get_many(self, space: str, texts: Sequence[str], dim: int) -> list[np.ndarray | None]:
        """Each text's vector, or None where the cache has none."""
        out = np.zeros((len(texts), dim), dtype=np.float32)
        found = self.read_into(space, texts, out)
        return [row if hit else None for row, hit in zip(out, found)]

    def read_into(self, space: str, texts: Sequence[str], out: np.ndarray) -> np.ndarray:
        """Write the cached vector of ``texts[i]`` into ``out[i]``; return (len(texts),) bool, True where found.

        Rows are copied 500 at a time, so reading 100k cached vectors holds one copy of them
        (``out``) rather than every blob as well.
        """
        dim = out.shape[1]
        found = np.zeros(len(texts), dtype=bool)
        for i in range(0, len(texts), 500):
            rows_of: dict[str, list[int]] = {}  # a text may occur twice: one key, both rows
            for j, text in enumerate(texts[i:i + 500]):
                rows_of.setdefault(self._key(space, text), []).append(i + j)
            with self._lock:
                hits = self._db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(rows_of))})",
                                        list(rows_of)).fetchall()
            for key, blob in hits:
                if len(blob) == 4 * dim:
                    rows = rows_of[key]
                    out[rows] = np.frombuffer(blob, dtype=np.float32)
                    found[rows] = True
        return found

    def put_many(self, space: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(self._key(space, t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def encode_passages(encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache | None = None,
                    batch_size: int = 64, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Embed passages, taking what the cache has and storing what it lacks.

    Args:
        progress: called with the number of texts finished after each batch.

    Returns:
        (len(texts), dim) float32 unit vectors.
    """
    return encode_cached(encoder, texts, cache, "passage", batch_size, progress)


def encode_queries(encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """Embed questions through the cache (evaluation asks the same questions again and again)."""
    return encode_cached(encoder, texts, cache, "query", batch_size)


def encode_cached(encoder: Encoder, texts: Sequence[str], cache: EmbeddingCache | None, kind: str,
                  batch_size: int = 64, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Embed ``texts`` as ``kind`` ("passage" or "query"), reusing and filling the cache."""
    encode = encoder.encode_passages if kind == "passage" else encoder.encode_queries
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    space = f"{encoder_key(encoder)}|{kind}"
    todo = list(range(len(texts)))
    if cache is not None:
        found = cache.read_into(space, texts, out)
        todo = np.flatnonzero(~found).tolist()
        if progress:
            progress(len(texts) - len(todo))
    # identical texts (repeated boilerplate) are embedded once
    unique: dict[str, list[int]] = {}
    for i in todo:
        unique.setdefault(texts[i], []).append(i)
    # similar lengths side by side: a batch is padded to its longest text, so mixing a
    # 20-character clause with a 300-character one wastes most of the batch's work
    pending = sorted(unique, key=len)
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        vectors = encode(batch)
        for text, vec in zip(batch, vectors):
            out[unique[text]] = vec
        if cache is not None:
            cache.put_many(space, batch, vectors)
        if progress:
            progress(sum(len(unique[t]) for t in batch))
    return out
