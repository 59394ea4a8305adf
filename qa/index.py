"""An index: documents, their clauses, a FAISS index and a BM25 index, in one folder.

Folder layout (all open formats, no pickle)::

    manifest.json     format version, config, encoder, tokenizer, corpus hash, counts, checksums
    documents.jsonl   one Document per line
    clauses.jsonl     one Clause per line; line i is row i of both retrievers
    dense.faiss       FAISS IndexFlatIP over unit vectors
    bm25/             bm25s arrays (.npy) and vocabulary (.json)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, crosslingual, store
from . import tokenize as tok
from .clauses import chunk, refers_back
from .config import FORMAT_VERSION, IndexConfig
from .dense import DenseIndex
from .encoders import Encoder
from .encoders.cache import EmbeddingCache, encode_passages
from .errors import IndexCorrupt, IndexMismatch, NoDocuments
from .sparse import SparseIndex
from .types import Clause, Document

log = logging.getLogger(__name__)


def embed_text(clause: Clause, config: IndexConfig, context: str = "") -> str:
    """The text embedded for a clause: its heading path, the context it refers to, the clause."""
    head = " > ".join(clause.heading) + "\n" if config.embed_heading and clause.heading else ""
    return head + context + clause.text


def bm25_text(clause: Clause, config: IndexConfig, context: str = "") -> str:
    """The text BM25 indexes: section headings (not the title), the context referred to, the clause."""
    head = " ".join(clause.heading[1:]) + "\n" if config.bm25_heading and len(clause.heading) > 1 else ""
    return head + context + clause.text


def contexts(documents: Sequence[Document], clauses: Sequence[Clause], config: IndexConfig) -> list[str]:
    """For each clause, the earlier clause of its paragraph that it refers back to, or ''.

    "今年一季度，该区新增科技型企业51家" names no district: "该区" points at the sentence
    before. Such a clause is indexed with that sentence so that a question naming the
    district finds it; its displayed text stays as it is.
    """
    if not config.context:
        return [""] * len(clauses)
    out = []
    by_id = {d.doc_id: d for d in documents}
    for i, clause in enumerate(clauses):
        prev = clauses[i - 1] if i else None
        same_paragraph = (prev is not None and prev.doc_id == clause.doc_id
                          and "\n" not in by_id[clause.doc_id].text[prev.end:clause.start])
        out.append(prev.text if same_paragraph and refers_back(clause.text) else "")
    return out


@dataclass
class Candidate:
    """A clause row scored by one or both retrievers."""

    row: int
    score: float
    dense: float | None = None
    bm25: float | None = None


class Index:
    """Clauses plus the two retrievers over them, loaded in memory."""

    def __init__(self, folder: Path, manifest: dict[str, Any], documents: list[Document],
                 clauses: list[Clause], dense: DenseIndex, sparse: SparseIndex,
                 lexicon: crosslingual.Lexicon | None = None) -> None:
        self.folder = folder
        self.lexicon = lexicon or {}
        self.manifest = manifest
        self.config = IndexConfig.from_json(manifest["config"])
        self.documents = {d.doc_id: d for d in documents}
        self.clauses = clauses
        self.dense = dense
        self.sparse = sparse
        self.row_of = {c.clause_id: i for i, c in enumerate(clauses)}
        self._doc_rows: dict[str, np.ndarray] = {}
        for i, c in enumerate(clauses):
            self._doc_rows.setdefault(c.doc_id, []).append(i)  # type: ignore[arg-type]
        self._doc_rows = {d: np.asarray(rows, dtype=np.int64) for d, rows in self._doc_rows.items()}

    # -- building ---------------------------------------------------------------------

    @classmethod
    def build(cls, documents: Sequence[Document], encoder: Encoder, target: Path, config: IndexConfig,
              corpus: dict[str, Any], cache: EmbeddingCache | None = None, progress: bool = True,
              skipped: Sequence[dict[str, str]] = ()) -> "Index":
        """Chunk, embed and index ``documents``; publish the folder at ``target`` atomically."""
        if not documents:
            raise NoDocuments(f"nothing to index in {corpus.get('path', 'the corpus')}: no readable documents")
        started = time.perf_counter()
        clauses: list[Clause] = []
        for doc in documents:
            clauses.extend(chunk(doc, config.chunk)[0])
        if not clauses:
            raise NoDocuments("the documents contain no text to index")
        context = contexts(documents, clauses, config)
        texts = [embed_text(c, config, x) for c, x in zip(clauses, context)]
        vectors = _embed(encoder, texts, cache, progress)
        store.checkpoint("embedded")
        embedded = time.perf_counter()
        dense = DenseIndex.build(vectors)
        sparse = SparseIndex.build([tok.tokenize(bm25_text(c, config, x)) for c, x in zip(clauses, context)],
                                   config.k1, config.b)
        lexicon = crosslingual.build_lexicon(sparse.vocabulary(), tok.tokenize) if config.crosslingual else {}
        manifest = {
            "format_version": FORMAT_VERSION,
            "package": f"qa=={__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": config.to_json(),
            "encoder": encoder.describe(),
            "tokenizer": tok.describe(),
            "corpus": corpus,
            "counts": {"documents": len(documents), "clauses": len(clauses), "skipped": len(skipped)},
            "skipped": list(skipped),
            "crosslingual": {"dictionary": crosslingual.dictionary_label() if config.crosslingual else "off",
                             "english_keys": len(lexicon)},
            "seconds": {"embed": round(embedded - started, 3), "total": None},
        }

        def write(folder: Path) -> dict[str, Any]:
            _write_jsonl(folder / "documents.jsonl", (d.to_json() for d in documents))
            _write_jsonl(folder / "clauses.jsonl", (c.to_json() for c in clauses))
            dense.save(folder)
            sparse.save(folder)
            crosslingual.save(lexicon, folder)
            manifest["seconds"]["total"] = round(time.perf_counter() - started, 3)
            return manifest

        version = store.publish(target, write)
        log.info("indexed %d clauses of %d documents in %.1f s", len(clauses), len(documents),
                 time.perf_counter() - started)
        return cls(version, manifest, list(documents), clauses, dense, sparse, lexicon)

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path, verify: bool = True) -> "Index":
        """Load an index folder, checking its format and (by default) every file's checksum.

        Raises:
            IndexMissing, IndexCorrupt, IndexMismatch: with a message naming the problem.
        """
        folder = Path(folder).resolve()
        manifest = store.read_manifest(folder)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatch(f"{folder}: index format {manifest.get('format_version')}, "
                                f"this version reads format {FORMAT_VERSION}; rebuild with: qa index")
        store.verify(folder, manifest, hashes=verify)
        try:
            documents = [Document.from_json(d) for d in _read_jsonl(folder / "documents.jsonl")]
            clauses = [Clause.from_json(c) for c in _read_jsonl(folder / "clauses.jsonl")]
            dense = DenseIndex.load(folder)
            sparse = SparseIndex.load(folder)
            lexicon = crosslingual.load(folder)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorrupt(f"{folder}: cannot be read ({type(exc).__name__}: {exc})") from exc
        if not (len(clauses) == len(dense) == len(sparse) == manifest["counts"]["clauses"]):
            raise IndexCorrupt(f"{folder}: {len(clauses)} clauses, {len(dense)} vectors, "
                               f"{len(sparse)} BM25 rows: the parts do not match")
        return cls(folder, manifest, documents, clauses, dense, sparse, lexicon)

    # -- searching --------------------------------------------------------------------

    def rows_of_documents(self, doc_ids: Sequence[str] | None) -> np.ndarray | None:
        """Rows of the given documents (sorted), or None for no filter."""
        if not doc_ids:
            return None
        parts = [self._doc_rows[d] for d in doc_ids if d in self._doc_rows]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def search_dense(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
                     ) -> list[list[Candidate]]:
        scores, rows = self.dense.search(vectors, k, allowed)
        return [[Candidate(int(r), float(s), dense=float(s)) for s, r in zip(srow, rrow) if r >= 0]
                for srow, rrow in zip(scores, rows)]

    def bm25_scores(self, question: str, tokens: list[str]) -> tuple[np.ndarray, bool]:
        """BM25 scores of every clause for a question, and whether English words were translated.

        English words that are not in the vocabulary are looked up in the dictionary
        (see ``qa.crosslingual``) and scored as groups of Chinese alternatives.
        """
        foreign = [t for t in tokens if t.isascii() and t.isalpha() and t not in self.sparse]
        groups = crosslingual.translate(question, self.lexicon, tok.STOPWORDS) if foreign and self.lexicon else []
        if not groups:
            return self.sparse.scores(tokens), False
        known = [[[t]] for t in tokens if t in self.sparse]
        return self.sparse.structured_scores(known + groups), True

    def coverage(self, question: str) -> float:
        """Share of the question's words (stop words aside) that occur in the collection.

        English words count as known when the dictionary translates them into words of the
        collection. 0.0 for a question without words.
        """
        words = tok.words(question)
        if not words:
            return 0.0
        known = sum(1 for w in words if w in self.sparse or
                    (w.isascii() and bool(crosslingual.translate(w, self.lexicon, tok.STOPWORDS))))
        return known / len(words)

    def search_bm25(self, scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Candidate]:
        top, rows = self.sparse.search([], k, allowed, scores=scores)
        return [Candidate(int(r), float(s), bm25=float(s)) for s, r in zip(top, rows)]

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> list[Clause]:
        """The clause with up to ``before``/``after`` clauses of the same document around it."""
        row = self.row_of[clause_id]
        doc_rows = self._doc_rows[self.clauses[row].doc_id]
        where = int(np.searchsorted(doc_rows, row))
        lo, hi = max(0, where - before), min(len(doc_rows), where + after + 1)
        return [self.clauses[int(r)] for r in doc_rows[lo:hi]]


def _embed(encoder: Encoder, texts: list[str], cache: EmbeddingCache | None, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    with tqdm(total=len(texts), desc="embedding clauses", unit="clause", disable=not progress,
              mininterval=0.5) as bar:
        return encode_passages(encoder, texts, cache, progress=bar.update)


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
