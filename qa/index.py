"""An index: documents, their clauses in segments, a FAISS index and BM25 postings, in one folder.

Folder layout (open formats, no pickle)::

    manifest.json        format, config, encoder, tokenizer, corpus and its files' hashes,
                         segments, counts, sha256 of every file
    documents.jsonl      the live documents
    vocab.json           BM25 vocabulary (append-only) and parameters
    dense.faiss          FAISS index over every row (IndexFlatIP, or IVF when large)
    deleted.npy          rows of removed or replaced documents
    crosslingual.json    English -> Chinese lookup for BM25 (qa.crosslingual)
    segments/sNNNN/      clauses.jsonl (+ offsets), rows' documents, BM25 postings, rows' sections
                         and the sections' mean vectors (.npy)

Rows: row ``i`` is the i-th clause counting through the segments in order (segment offset +
position in the segment); it is the FAISS id and the Milvus key. Removed rows keep their number
(tombstoned in deleted.npy) until a compaction renumbers everything. Each document contributes
its card (``qa.cards``) as the row before its clauses.

A changed document is not re-indexed with everything else: its old rows are marked
deleted and its new clauses become a segment of their own (``Index.update``); unchanged
segment files are hard-linked into the new version. When deleted rows pile up the next
update compacts everything into one segment.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from . import __version__, cards, crosslingual, sections, store
from . import tokenize as tok
from .clauses import chunk, refers_back
from .config import FORMAT_VERSION, IndexConfig
from .dense import DenseIndex
from .encoders import Encoder
from .encoders.cache import EmbeddingCache, encode_passages
from .errors import IndexCorrupt, IndexMismatch, NoDocuments
from .sparse import GroupedBM25, Postings, SparseIndex
from .types import Clause, Document

#: True for a progress bar on stderr, or a function told (clauses embedded, clauses to embed)
Progress = Union[bool, Callable[[int, int], None]]

log = logging.getLogger(__name__)

#: Compact into one segment when this share of rows is deleted (and at least COMPACT_MIN_DELETED
#: rows: deleted rows of a small index cost nothing), or past this many segments.
COMPACT_DELETED_SHARE = 0.25
COMPACT_MIN_DELETED = 1000
COMPACT_SEGMENTS = 16
#: Clauses scored by Milvus's built-in BM25 per question (the others count 0).
BUILTIN_FETCH = 200


def embed_text(clause: Clause, config: IndexConfig, context: str = "") -> str:
    """The text embedded for a clause: its heading path, the context it refers to, the clause."""
    if clause.kind == "card":
        return cards.index_text(clause)
    head = " > ".join(clause.heading) + "\n" if config.embed_heading and clause.heading else ""
    return head + context + clause.text


def bm25_text(clause: Clause, config: IndexConfig, context: str = "") -> str:
    """The text BM25 indexes: section headings (not the title), the context referred to, the clause."""
    if clause.kind == "card":
        return cards.index_text(clause)
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
        same_paragraph = (prev is not None and prev.doc_id == clause.doc_id and prev.kind == clause.kind == "clause"
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


class Segment:
    """The clauses of one segment, read from disk on demand (a million clauses stay on disk).

    Files: clauses.jsonl, clauses.offsets.npy (byte offset of each line, then the file
    size), row_doc.npy (per row, an index into doc_ids.json), the BM25 postings,
    row_section.npy (per row, its section in this segment) and section_vectors.npy.
    """

    def __init__(self, folder: Path, doc_ids: list[str], row_doc: np.ndarray, postings: Postings,
                 row_section: np.ndarray, section_vectors: np.ndarray, clauses: list[Clause] | None = None) -> None:
        self.folder = folder
        self.doc_ids = doc_ids
        self.row_doc = row_doc
        self.postings = postings
        self.row_section = row_section
        self.section_vectors = section_vectors
        self._clauses = clauses
        self._map: mmap.mmap | None = None
        self._offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.row_doc)

    def clause(self, row: int) -> Clause:
        if self._clauses is not None:
            return self._clauses[row]
        if self._map is None:  # offsets first: another thread reads them as soon as the map is set
            self._offsets = np.load(self.folder / "clauses.offsets.npy", allow_pickle=False)
            with open(self.folder / "clauses.jsonl", "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(
                    self.folder / "clauses.jsonl") else None
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        return Clause.from_json(json.loads(self._map[start:end]))

    @staticmethod
    def write(folder: Path, clauses: Sequence[Clause], postings: Postings, vectors: np.ndarray) -> "Segment":
        folder.mkdir(parents=True)
        offsets = [0]
        with open(folder / "clauses.jsonl", "wb") as handle:
            for c in clauses:
                line = (json.dumps(c.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
                handle.write(line)
                offsets.append(offsets[-1] + len(line))
        np.save(folder / "clauses.offsets.npy", np.asarray(offsets, dtype=np.int64), allow_pickle=False)
        doc_ids = list(dict.fromkeys(c.doc_id for c in clauses))
        where = {d: i for i, d in enumerate(doc_ids)}
        row_doc = np.asarray([where[c.doc_id] for c in clauses], dtype=np.int32)
        np.save(folder / "row_doc.npy", row_doc, allow_pickle=False)
        (folder / "doc_ids.json").write_text(json.dumps(doc_ids, ensure_ascii=False), encoding="utf-8")
        postings.save(folder)
        row_section, n_sections = sections.assign(clauses)
        section_vectors = sections.mean_vectors(row_section, n_sections, vectors)
        np.save(folder / "row_section.npy", row_section, allow_pickle=False)
        np.save(folder / "section_vectors.npy", section_vectors, allow_pickle=False)
        return Segment(folder, doc_ids, row_doc, postings, row_section, section_vectors, list(clauses))

    @classmethod
    def load(cls, folder: Path) -> "Segment":
        doc_ids = json.loads((folder / "doc_ids.json").read_text(encoding="utf-8"))
        return cls(folder, doc_ids, np.load(folder / "row_doc.npy", allow_pickle=False), Postings.load(folder),
                   np.load(folder / "row_section.npy", allow_pickle=False),
                   np.load(folder / "section_vectors.npy", allow_pickle=False))


class ClauseView(Sequence[Clause]):
    """All clauses of an index in row order (deleted rows included, as FAISS sees them)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.offsets = np.cumsum([0] + [len(s) for s in segments])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        s = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return self.segments[s].clause(row - int(self.offsets[s]))

    def __iter__(self) -> Iterator[Clause]:
        for segment in self.segments:
            for i in range(len(segment)):
                yield segment.clause(i)


class Index:
    """Clauses plus the two retrievers over them."""

    def __init__(self, folder: Path, manifest: dict[str, Any], documents: list[Document],
                 segments: list[Segment], dense: DenseIndex, sparse: SparseIndex,
                 lexicon: crosslingual.Lexicon | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.config = IndexConfig.from_json(manifest["config"])
        self.documents = {d.doc_id: d for d in documents}
        self.segments = segments
        self.clauses = ClauseView(segments)
        self.dense = dense
        self.sparse = sparse
        self.lexicon = lexicon or {}
        self.deleted = sparse.deleted_rows()
        self._doc_rows = self._rows_by_document()
        counts = np.cumsum([0] + [len(s.section_vectors) for s in segments])
        self.row_section = (np.concatenate([s.row_section.astype(np.int64) + int(base)
                                            for s, base in zip(segments, counts)])
                            if segments else np.zeros(0, np.int64))
        self.section_vectors = (np.concatenate([s.section_vectors for s in segments])
                                if segments else np.zeros((0, 0), np.float32))
        self.section_bm25 = GroupedBM25(sparse, self.row_section, int(counts[-1]))

    def _rows_by_document(self) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        live = self.sparse.live
        for segment, base in zip(self.segments, self.clauses.offsets):
            rows = np.arange(len(segment), dtype=np.int64) + base
            order = np.argsort(segment.row_doc, kind="stable")
            bounds = np.searchsorted(segment.row_doc[order], np.arange(len(segment.doc_ids) + 1))
            for i, doc_id in enumerate(segment.doc_ids):
                mine = rows[order[bounds[i]:bounds[i + 1]]]
                mine = mine[live[mine]]
                if len(mine):
                    out.setdefault(doc_id, []).append(mine)
        return {d: np.sort(np.concatenate(parts)) for d, parts in out.items()}

    @property
    def live_clauses(self) -> int:
        return int(self.sparse.live.sum())

    def clause_counts(self) -> dict[str, int]:
        """Live clauses per document."""
        return {d: len(rows) for d, rows in self._doc_rows.items()}

    # -- building ---------------------------------------------------------------------

    @classmethod
    def build(cls, documents: Sequence[Document], encoder: Encoder, target: Path, config: IndexConfig,
              corpus: dict[str, Any], cache: EmbeddingCache | None = None, progress: Progress = True,
              skipped: Sequence[dict[str, str]] = ()) -> "Index":
        """Chunk, embed and index ``documents``; publish the folder at ``target`` atomically."""
        if not documents:
            raise NoDocuments(f"nothing to index in {corpus.get('path', 'the corpus')}: no readable documents")
        started = time.perf_counter()
        clauses, vectors, tokens = _prepare(documents, encoder, config, cache, progress)
        if not clauses:
            raise NoDocuments("the documents contain no text to index")
        store.checkpoint("embedded")
        return cls.from_parts(documents, clauses, vectors, tokens, encoder, target, config, corpus, skipped,
                              embed_seconds=time.perf_counter() - started)

    @classmethod
    def from_parts(cls, documents: Sequence[Document], clauses: Sequence[Clause], vectors: np.ndarray,
                   tokens: list[list[str]], encoder: Encoder, target: Path, config: IndexConfig,
                   corpus: dict[str, Any], skipped: Sequence[dict[str, str]] = (), embed_seconds: float = 0.0,
                   dense_kind: str = "auto") -> "Index":
        """Write an index from clauses already embedded and tokenized (``build`` does both first).

        Benchmarks use this to make large collections from vectors they already have.

        Args:
            vectors: (len(clauses), dim) float32 unit rows, as ``encoder`` would produce.
            tokens: the BM25 tokens of each clause.
            dense_kind: "auto" (by size), "flat" or "ivf".
        """
        started = time.perf_counter()
        sparse = SparseIndex.build(tokens, config.k1, config.b)
        if config.backend == "milvus":
            dense = _milvus(config, encoder.dim, create=True)
            dense.upsert(np.arange(len(clauses)), [c.doc_id for c in clauses], _metas(documents, clauses),
                         vectors, sparse.row_weights(0), _texts(clauses, config))
        else:
            dense = DenseIndex.build(vectors, kind=dense_kind)
        lexicon = crosslingual.build_lexicon(sparse.vocabulary(), tok.tokenize) if config.crosslingual else {}
        manifest = _manifest(config, encoder, corpus, documents, len(clauses), skipped, lexicon)
        manifest["seconds"] = {"embed": round(embed_seconds, 3)}

        def write(folder: Path) -> dict[str, Any]:
            Segment.write(folder / "segments" / "s0001", clauses, sparse.segments[0], vectors)
            _write_common(folder, documents, dense, sparse, lexicon)
            manifest["segments"] = ["s0001"]
            manifest["seconds"]["index"] = round(time.perf_counter() - started, 3)
            return manifest

        version = store.publish(target, write)
        log.info("indexed %d clauses of %d documents (%.1f s embedding, %.1f s indexing)", len(clauses),
                 len(documents), embed_seconds, time.perf_counter() - started)
        segments = [Segment.load(version / "segments" / "s0001")]
        return cls(version, manifest, list(documents), segments, dense, sparse, lexicon)

    def warm_up(self) -> None:
        """Do now what the first ``update`` would otherwise pay for: jieba's dictionary and
        the English lexicon's dictionary words (about 1.5 s in a fresh process)."""
        tok.tokenize("预热")
        if self.config.crosslingual:
            crosslingual.build_lexicon(self.sparse.vocabulary(), tok.tokenize)

    def update(self, added: Sequence[Document], removed: set[str], encoder: Encoder, target: Path,
               corpus: dict[str, Any], cache: EmbeddingCache | None = None, progress: Progress = False,
               skipped: Sequence[dict[str, str]] = ()) -> "Index":
        """A new index version with ``removed`` document ids gone and ``added`` documents in.

        Replacing a document = removing its id and adding its new version. Unchanged
        segments are hard-linked, only the new clauses are embedded (or taken from the
        cache) and tokenized. Falls back to a full build when deleted rows pile up.
        """
        started = time.perf_counter()
        gone = {d for d in removed if d in self.documents} | {d.doc_id for d in added if d.doc_id in self.documents}
        documents = [d for d in self.documents.values() if d.doc_id not in gone] + list(added)
        drop = np.concatenate([self._doc_rows[d] for d in gone if d in self._doc_rows] or [np.zeros(0, np.int64)])
        deleted_after = len(self.deleted) + len(drop)
        if (deleted_after >= max(COMPACT_MIN_DELETED, COMPACT_DELETED_SHARE * len(self.clauses))
                or len(self.segments) + 1 > COMPACT_SEGMENTS):
            log.info("compacting %d segments (%d deleted rows) into one", len(self.segments), deleted_after)
            return Index.build(documents, encoder, target, self.config, corpus, cache, progress, skipped)
        if not documents:
            raise NoDocuments("no documents left to index")
        clauses, vectors, tokens = _prepare(added, encoder, self.config, cache, progress)
        store.checkpoint("embedded")
        sparse = self.sparse.delete(drop)
        if clauses:
            sparse = sparse.add_segment(tokens)
        if self.config.backend == "milvus":
            dense = self.dense  # the collection changes in place; older views ignore rows they do not know
            dense.delete(drop)
            if clauses:
                first = len(self.clauses)
                dense.upsert(np.arange(first, first + len(clauses)), [c.doc_id for c in clauses],
                             _metas(added, clauses), vectors, sparse.row_weights(len(sparse.segments) - 1),
                             _texts(clauses, self.config))
        else:
            dense = DenseIndex(_clone(self.dense))
            if clauses:
                dense.add(vectors)
        lexicon = (crosslingual.build_lexicon(sparse.vocabulary(), tok.tokenize)
                   if self.config.crosslingual and clauses else self.lexicon)
        manifest = _manifest(self.config, encoder, corpus, documents, sparse.n, skipped, lexicon)
        names = [s.folder.name for s in self.segments]
        new_name = f"s{max(int(n[1:]) for n in names) + 1:04d}" if names else "s0001"

        def write(folder: Path) -> dict[str, Any]:
            for segment in self.segments:
                _link_tree(segment.folder, folder / "segments" / segment.folder.name)
            if clauses:
                Segment.write(folder / "segments" / new_name, clauses, sparse.segments[-1], vectors)
            _write_common(folder, documents, dense, sparse, lexicon)
            manifest["segments"] = names + ([new_name] if clauses else [])
            manifest["seconds"] = {"update": round(time.perf_counter() - started, 3)}
            return manifest

        linked = {name: info for name, info in self.manifest.get("files", {}).items() if name.startswith("segments/")}
        version = store.publish(target, write, unchanged=linked)
        segments = [Segment.load(version / "segments" / n) for n in manifest["segments"]]
        log.info("updated the index: -%d documents, +%d documents (%d clauses) in %.2f s", len(gone),
                 len(added), len(clauses), time.perf_counter() - started)
        return Index(version, manifest, documents, segments, dense, sparse, lexicon)

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
            segments = [Segment.load(folder / "segments" / n) for n in manifest["segments"]]
            deleted = np.load(folder / "deleted.npy", allow_pickle=False)
            sparse = SparseIndex.load(folder, [s.folder for s in segments], deleted)
            config = IndexConfig.from_json(manifest["config"])
            if config.backend == "milvus":
                dense = _milvus(config, manifest["encoder"]["dim"], create=False)
            else:
                dense = DenseIndex.load(folder)
            lexicon = crosslingual.load(folder)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorrupt(f"{folder}: cannot be read ({type(exc).__name__}: {exc})") from exc
        rows = sum(len(s) for s in segments)
        stored = len(dense) + (len(deleted) if getattr(dense, "kind", "") == "milvus" else 0)
        if not (rows == stored == len(sparse)) or sparse.n != manifest["counts"]["clauses"]:
            raise IndexCorrupt(f"{folder}: {rows} clause rows, {len(dense)} vectors, {len(sparse)} BM25 rows, "
                               f"{sparse.n} live of {manifest['counts']['clauses']} expected: the parts do not match")
        return cls(folder, manifest, documents, segments, dense, sparse, lexicon)

    # -- searching --------------------------------------------------------------------

    def rows_of_documents(self, doc_ids: Sequence[str] | None) -> np.ndarray | None:
        """Live rows of the given documents (sorted), or None for no filter."""
        if not doc_ids:
            return None
        parts = [self._doc_rows[d] for d in doc_ids if d in self._doc_rows]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def search_dense(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
                     ) -> list[list[Candidate]]:
        scores, rows = self.dense.search(vectors, k, allowed, self.deleted if len(self.deleted) else None)
        known = len(self.clauses)  # a shared Milvus collection may already hold a newer version's rows
        return [[Candidate(int(r), float(s), dense=float(s)) for s, r in zip(srow, rrow) if 0 <= r < known]
                for srow, rrow in zip(scores, rows)]

    def section_bm25_scores(self, question: str, tokens: list[str]) -> np.ndarray:
        """BM25 of every section for a question (English words translated as in ``bm25_scores``)."""
        query = self._structured(question, tokens)
        return self.section_bm25.scores(tokens) if query is None else self.section_bm25.structured_scores(query)

    def section_similarities(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of the question to the section of each row: (len(rows),) float32."""
        return self.section_vectors[self.row_section[np.asarray(rows, dtype=np.int64)]] @ vector

    def _structured(self, question: str, tokens: list[str]) -> list | None:
        """The question as a structured query (its known tokens, then a group of Chinese
        alternatives per translated English word or phrase), or None when nothing was translated."""
        foreign = [t for t in tokens if t.isascii() and t.isalpha() and t not in self.sparse]
        groups = crosslingual.translate(question, self.lexicon, tok.STOPWORDS) if foreign and self.lexicon else []
        return [[[t]] for t in tokens if t in self.sparse] + groups if groups else None

    def bm25_scores(self, question: str, tokens: list[str]) -> tuple[np.ndarray, bool]:
        """BM25 scores of every clause for a question, and whether English words were translated.

        English words that are not in the vocabulary are looked up in the dictionary
        (see ``qa.crosslingual``) and scored as groups of Chinese alternatives.
        """
        if self.config.backend == "milvus" and self.config.milvus_bm25 == "builtin":
            scores = np.zeros(len(self.clauses), dtype=np.float32)
            found, rows = self.dense.text_search(question, BUILTIN_FETCH)
            inside = rows < len(scores)
            scores[rows[inside]] = found[inside]
            return scores, False
        query = self._structured(question, tokens)
        return (self.sparse.scores(tokens), False) if query is None else (self.sparse.structured_scores(query), True)

    def coverage(self, question: str) -> float:
        """Share of the question's information (stop words aside) carried by words that occur in
        the collection, each word weighted by its specificity in general Chinese
        (``tok.specificity``): "怎么办理护照？" shares 办理 with the documents but not 护照, which
        says far more. English words count as known when the dictionary translates them into
        words of the collection. 0.0 for a question without words.
        """
        words = tok.words(question)
        if not words:
            return 0.0
        weights = [tok.specificity(w) for w in words]
        known = sum(weight for w, weight in zip(words, weights) if w in self.sparse or
                    (w.isascii() and bool(crosslingual.translate(w, self.lexicon, tok.STOPWORDS))))
        return known / sum(weights)

    def bm25_weights(self, question: str, tokens: list[str]) -> dict[int, float]:
        """The question as a sparse BM25 vector (term id -> idf * count) for a vector store.

        Translated English words enter as all their alternatives, each weighted by its share
        of the group: a sparse store can only add, where ``bm25_scores`` takes the best
        alternative; the candidates it finds are then ranked by ``bm25_scores``.
        """
        weights = self.sparse.query_weights([t for t in tokens if t in self.sparse])
        foreign = [t for t in tokens if t.isascii() and t.isalpha() and t not in self.sparse]
        if foreign and self.lexicon:
            for group in crosslingual.translate(question, self.lexicon, tok.STOPWORDS):
                for alternative in group:
                    for t, w in self.sparse.query_weights(alternative).items():
                        weights[t] = weights.get(t, 0.0) + w / len(group)
        return weights

    def search_bm25(self, scores: np.ndarray, k: int, allowed: np.ndarray | None = None,
                    weights: dict[int, float] | None = None) -> list[Candidate]:
        """Top-k clauses by BM25; ``scores`` are every row's (computed by ``bm25_scores``).

        With the Milvus backend the candidates come from Milvus's sparse search with the
        question's ``weights`` (``bm25_weights``), ranked by the same BM25 as locally.
        """
        if self.config.backend == "milvus" and self.config.milvus_bm25 != "builtin" and weights is not None:
            _, rows = self.dense.sparse_search(weights, k, allowed)
            rows = np.asarray([r for r in rows if 0 <= r < len(scores)], dtype=np.int64)
            order = rows[np.argsort(-scores[rows], kind="stable")] if len(rows) else rows
            return [Candidate(int(r), float(scores[r]), bm25=float(scores[r])) for r in order if scores[r] > 0]
        top, rows = self.sparse.search([], k, allowed, scores=scores)
        return [Candidate(int(r), float(s), bm25=float(s)) for s, r in zip(top, rows)]

    def row_of(self, clause_id: str) -> int:
        """The live row of a clause id (-1 if it is not in the index)."""
        for row in self._doc_rows.get(clause_id.rsplit("#", 1)[0], ()):
            if self.clauses[int(row)].clause_id == clause_id:
                return int(row)
        return -1

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> list[Clause]:
        """The clause with up to ``before``/``after`` live clauses of the same document around it."""
        doc_id = clause_id.rsplit("#", 1)[0]
        rows = self._doc_rows.get(doc_id, np.zeros(0, np.int64))
        clauses = [c for c in (self.clauses[int(r)] for r in rows) if c.kind == "clause"]
        where = next((i for i, c in enumerate(clauses) if c.clause_id == clause_id), None)
        if where is None:
            return []
        return clauses[max(0, where - before):where + after + 1]


def _prepare(documents: Sequence[Document], encoder: Encoder, config: IndexConfig,
             cache: EmbeddingCache | None, progress: Progress) -> tuple[list[Clause], np.ndarray, list[list[str]]]:
    """Clauses, their vectors and their BM25 tokens."""
    clauses: list[Clause] = []
    for doc in documents:
        if cards.has_card(doc):
            clauses.append(cards.make_card(doc))
        clauses.extend(chunk(doc, config.chunk)[0])
    context = contexts(documents, clauses, config)
    vectors = _embed(encoder, [embed_text(c, config, x) for c, x in zip(clauses, context)], cache, progress)
    tokens = [tok.tokenize(bm25_text(c, config, x)) for c, x in zip(clauses, context)]
    return clauses, vectors, tokens


def _manifest(config: IndexConfig, encoder: Encoder, corpus: dict[str, Any], documents: Sequence[Document],
              clauses: int, skipped: Sequence[dict[str, str]], lexicon: dict) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "package": f"qa=={__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config.to_json(),
        "encoder": encoder.describe(),
        "tokenizer": tok.describe(),
        "corpus": corpus,
        "counts": {"documents": len(documents), "clauses": clauses, "skipped": len(skipped)},
        "skipped": list(skipped),
        "crosslingual": {"dictionary": crosslingual.dictionary_label() if config.crosslingual else "off",
                         "english_keys": len(lexicon)},
    }


def _write_common(folder: Path, documents: Sequence[Document], dense: DenseIndex, sparse: SparseIndex,
                  lexicon: crosslingual.Lexicon) -> None:
    _write_jsonl(folder / "documents.jsonl", (d.to_json() for d in documents))
    if isinstance(dense, DenseIndex):
        dense.save(folder)
    store.checkpoint("dense-written")
    sparse.save_vocab(folder)
    np.save(folder / "deleted.npy", sparse.deleted_rows(), allow_pickle=False)
    crosslingual.save(lexicon, folder)


def _milvus(config: IndexConfig, dim: int, create: bool):
    from .backends.milvus import MilvusStore

    if not config.milvus_uri or not config.collection:
        raise IndexMismatch("the Milvus backend needs --milvus-uri and --collection")
    if create:
        return MilvusStore.create(config.milvus_uri, config.collection, dim, config.milvus_bm25 == "builtin")
    return MilvusStore.connect(config.milvus_uri, config.collection, dim)


def _texts(clauses: Sequence[Clause], config: IndexConfig) -> list[str] | None:
    return [c.text for c in clauses] if config.milvus_bm25 == "builtin" else None


def _metas(documents: Sequence[Document], clauses: Sequence[Clause]) -> list[dict[str, str]]:
    """The filterable fields of each clause's document (agency, date)."""
    by_id = {d.doc_id: d.meta for d in documents}
    return [by_id.get(c.doc_id, {}) for c in clauses]


def _clone(dense: DenseIndex):
    """A copy of the FAISS index: queries may still be reading the old one."""
    import faiss

    index = faiss.clone_index(dense._index)
    if hasattr(index, "make_direct_map"):
        index.make_direct_map()
    return index


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link a segment's files into a new version (a copy where links are not possible)."""
    import shutil

    target.mkdir(parents=True)
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


def _embed(encoder: Encoder, texts: list[str], cache: EmbeddingCache | None, progress: Progress) -> np.ndarray:
    """``progress``: True for a progress bar on stderr, or a function called with (done, total)."""
    from tqdm.auto import tqdm

    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="embedding clauses", unit="clause", disable=progress is not True,
              mininterval=0.5) as bar:
        def advance(n: int) -> None:
            bar.update(n)
            if callable(progress):
                progress(bar.n, len(texts))

        return encode_passages(encoder, texts, cache, progress=advance)


def _write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
