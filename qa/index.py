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

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from . import __version__, cards, crosslingual, homophones, jsonl, sections, store
from .backends import payload
from . import tokenize as tok
from .clauses import chunk, refers_back
from .config import FORMAT_VERSION, IndexConfig
from .dense import DenseIndex
from .encoders import Encoder
from .encoders.cache import EmbeddingCache, encode_passages
from .errors import IndexCorrupt, IndexMismatch, NoDocuments
from .retrieval import Selection
from .segments import ClauseView, Segment
from .sparse import GroupedBM25, SparseIndex
from .types import Clause, Document

#: True for a progress bar on stderr, or a function told (clauses embedded, clauses to embed)
Progress = Union[bool, Callable[[int, int], None]]

log = logging.getLogger(__name__)

#: Compact into one segment when this share of rows is deleted (and at least COMPACT_MIN_DELETED
#: rows: deleted rows of a small index cost nothing), or past this many segments.
COMPACT_DELETED_SHARE = 0.25
COMPACT_MIN_DELETED = 1000
COMPACT_SEGMENTS = 16


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


class Index:
    """Clauses plus the two retrievers over them: the local store of ``qa.retrieval``.

    With the Milvus backend the folder keeps what the building machine needs to update the
    collection (documents, clauses, postings; no vectors) and questions are answered by
    ``searcher()``, which reads Milvus alone, as every other query server does.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], documents: list[Document],
                 segments: list[Segment], dense: DenseIndex | None, sparse: SparseIndex,
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
              skipped: Sequence[dict[str, str]] = (), force: bool = False, release_encoder: bool = False) -> "Index":
        """Chunk, embed and index ``documents``; publish the folder at ``target`` atomically.

        ``release_encoder``: free the encoder's memory once the clauses are embedded, for the index
        phase, where a build's memory peaks (for a caller that does not ask questions with it).
        """
        if not documents:
            raise NoDocuments(f"nothing to index in {corpus.get('path', 'the corpus')}: no readable documents")
        started = time.perf_counter()
        clauses, vectors, tokens = _prepare(documents, encoder, config, cache, progress)
        if not clauses:
            raise NoDocuments("the documents contain no text to index")
        store.checkpoint("embedded")
        if release_encoder:
            encoder.release()
        return cls.from_parts(documents, clauses, vectors, tokens, encoder, target, config, corpus, skipped,
                              embed_seconds=time.perf_counter() - started, force=force, progress=progress)

    @classmethod
    def from_parts(cls, documents: Sequence[Document], clauses: Sequence[Clause], vectors: np.ndarray,
                   tokens: Iterable[Sequence[str]], encoder: Encoder, target: Path, config: IndexConfig,
                   corpus: dict[str, Any], skipped: Sequence[dict[str, str]] = (), embed_seconds: float = 0.0,
                   dense_kind: str = "auto", force: bool = False, progress: Progress = False) -> "Index":
        """Write an index from clauses already embedded and tokenized (``build`` does both first).

        Benchmarks use this to make large collections from vectors they already have.

        Args:
            vectors: (len(clauses), dim) float32 unit rows, as ``encoder`` would produce.
            tokens: the BM25 tokens of each clause, read once (a generator is fine).
            dense_kind: "auto" (by size), "flat" or "ivf".
            force: replace a Milvus collection that holds another corpus's index.
            progress: a bar (True) or a callback for writing the rows to a remote store.
        """
        started = time.perf_counter()
        sparse = SparseIndex.build(tokens, config.k1, config.b)
        remote = _remote(config)
        dense = None if remote else DenseIndex.build(vectors, kind=dense_kind)
        lexicon = crosslingual.build_lexicon(sparse.vocabulary(), tok.tokenize) if config.crosslingual else {}
        manifest = _manifest(config, encoder, corpus, documents, len(clauses), skipped, lexicon)
        manifest["seconds"] = {"embed": round(embed_seconds, 3)}
        if remote:
            row_section, n_sections = sections.assign(clauses)
            grouped = GroupedBM25(sparse, row_section, n_sections)
            batch = payload.rows_batch(np.arange(len(clauses)), clauses, vectors, sparse, 0, row_section, grouped,
                                       documents)
            counts = Counter(c.doc_id for c in clauses)
            remote.rebuild(batch, payload.statistics(manifest, documents, sparse, grouped, lexicon, dict(counts)),
                           force=force, progress=progress)

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
        remote = _remote(self.config)
        dense = None
        if not remote:
            dense = self.dense.copy()  # queries may still be reading the old one
            if clauses:
                dense.add(vectors)
        lexicon = (crosslingual.build_lexicon(sparse.vocabulary(), tok.tokenize)
                   if self.config.crosslingual and clauses else self.lexicon)
        manifest = _manifest(self.config, encoder, corpus, documents, sparse.n, skipped, lexicon)
        if remote:  # the collection changes in place; readers see the new statistics at their next check
            new_section, n_new = sections.assign(clauses)
            base = len(self.section_vectors)
            row_section = np.concatenate([self.row_section, new_section.astype(np.int64) + base])
            first = len(self.clauses)
            grouped = GroupedBM25(sparse, row_section, base + n_new)
            batch = payload.rows_batch(np.arange(first, first + len(clauses)), clauses, vectors, sparse,
                                       len(sparse.segments) - 1, new_section.astype(np.int64) + base, grouped,
                                       documents)
            counts = Counter({d: n for d, n in self.clause_counts().items() if d not in gone})
            counts.update(c.doc_id for c in clauses)
            statistics = payload.statistics(manifest, documents, sparse, grouped, lexicon, dict(counts))
            remote.apply(drop, np.unique(self.row_section[drop]), batch, statistics, progress=progress)
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
            documents = [Document.from_json(d) for d in jsonl.read(folder / "documents.jsonl")]
            segments = [Segment.load(folder / "segments" / n) for n in manifest["segments"]]
            deleted = np.load(folder / "deleted.npy", allow_pickle=False)
            sparse = SparseIndex.load(folder, [s.folder for s in segments], deleted)
            config = IndexConfig.from_json(manifest["config"])
            dense = None if _remote(config) else DenseIndex.load(folder)
            lexicon = crosslingual.load(folder)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexCorrupt(f"{folder}: cannot be read ({type(exc).__name__}: {exc})") from exc
        rows = sum(len(s) for s in segments)
        stored = rows if dense is None else len(dense)  # Milvus is checked when the searcher opens it
        if not (rows == stored == len(sparse)) or sparse.n != manifest["counts"]["clauses"]:
            raise IndexCorrupt(f"{folder}: {rows} clause rows, {stored} vectors, {len(sparse)} BM25 rows, "
                               f"{sparse.n} live of {manifest['counts']['clauses']} expected: the parts do not match")
        return cls(folder, manifest, documents, segments, dense, sparse, lexicon)

    # -- searching (the interface of qa.retrieval) -------------------------------------

    def searcher(self):
        """What answers questions: this index, or with the Milvus backend a reader of the
        collection that needs nothing from this folder (``qa.backends.remote``)."""
        remote = _remote(self.config)
        return remote.reader() if remote else self

    def fresh(self) -> "Index":
        """The current version: a local index changes only by ``update``, which returns a new one."""
        return self

    def select(self, selection: Selection | None) -> np.ndarray | None:
        """The live rows a selection admits (sorted), or None for no filter."""
        if not selection:
            return None
        keep = [d for d, doc in self.documents.items() if selection.admits(d, doc.meta)]
        parts = [self._doc_rows[d] for d in keep if d in self._doc_rows]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def rows_of_documents(self, doc_ids: Sequence[str] | None) -> np.ndarray | None:
        """Live rows of the given documents (sorted), or None for no filter."""
        return self.select(Selection(doc_ids=tuple(doc_ids))) if doc_ids else None

    def search_dense(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None = None
                     ) -> list[list[Candidate]]:
        scores, rows = self.dense.search(vectors, k, allowed, self.deleted if len(self.deleted) else None)
        return [[Candidate(int(r), float(s), dense=float(s)) for s, r in zip(srow, rrow) if r >= 0]
                for srow, rrow in zip(scores, rows)]

    def similarities(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of the question to each row: (len(rows),) float64."""
        return self.dense.similarities(vector, np.asarray(rows, dtype=np.int64))

    def section_similarities(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of the question to the section of each row: (len(rows),) float32."""
        return self.section_vectors[self.row_section[np.asarray(rows, dtype=np.int64)]] @ vector

    def clauses_at(self, rows: Sequence[int]) -> list[Clause]:
        return [self.clauses[int(r)] for r in rows]

    def lexical(self, question: str, tokens: list[str], sections: bool = False,
                corrections: bool = True) -> "LocalLexical":
        """BM25 of the question against every clause (and every section when ``sections``).

        English words that are not in the vocabulary are looked up in the dictionary
        (see ``qa.crosslingual``) and scored as groups of Chinese alternatives; with
        ``corrections``, so are the words a homophone slip may have meant (``qa.homophones``).
        """
        translated = crosslingual.query_groups(question, tokens, self.sparse, self.lexicon, tok.STOPWORDS)
        found = homophones.slips(question, self.sparse) if corrections else []
        query = homophones.extend(translated, tokens, self.sparse, found)
        clause = self.sparse.scores(tokens) if query is None else self.sparse.structured_scores(query)
        section = None
        if sections:
            section = (self.section_bm25.scores(tokens) if query is None
                       else self.section_bm25.structured_scores(query))
        return LocalLexical(self, clause, section, translated is not None, tuple(found))

    def coverage(self, question: str) -> float:
        """Share of the question's information (stop words aside) carried by words that occur in
        the collection (``qa.retrieval.coverage``)."""
        return coverage(question, self.sparse, self.lexicon)

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


class LocalLexical:
    """BM25 of one question over a local index: every row's score, every section's."""

    def __init__(self, index: Index, scores: np.ndarray, section_scores: np.ndarray | None,
                 translated: bool, slips: tuple[homophones.Slip, ...] = ()) -> None:
        self.index, self.scores, self.section_scores, self.translated = index, scores, section_scores, translated
        self.slips = slips

    def top(self, k: int, allowed: np.ndarray | None = None) -> list[Candidate]:
        """Top-k clauses by BM25, best first (rows scoring 0 left out)."""
        top, rows = self.index.sparse.search([], k, allowed, scores=self.scores)
        return [Candidate(int(r), float(s), bm25=float(s)) for s, r in zip(top, rows)]

    def clauses(self, rows: Sequence[int]) -> np.ndarray:
        return self.scores[np.asarray(rows, dtype=np.int64)].astype(np.float64)

    def sections(self, rows: Sequence[int]) -> np.ndarray | None:
        if self.section_scores is None:
            return None
        return self.section_scores[self.index.row_section[np.asarray(rows, dtype=np.int64)]].astype(np.float64)

    def plus(self, other: "LocalLexical", weight: float) -> "LocalLexical":
        """This question's scores plus ``weight`` times another's (a follow-up with its predecessor)."""
        section = (None if self.section_scores is None or other.section_scores is None
                   else self.section_scores + weight * other.section_scores)
        return LocalLexical(self.index, self.scores + weight * other.scores, section,
                            self.translated or other.translated, self.slips)


def coverage(question: str, vocabulary, lexicon: crosslingual.Lexicon) -> float:
    """Share of the question's information (stop words aside) carried by words that occur in
    the collection, each word weighted by its specificity in general Chinese
    (``tok.specificity``): "怎么办理护照？" shares 办理 with the documents but not 护照, which
    says far more. English words count as known when the dictionary translates them into
    words of the collection. 0.0 for a question without words. Both stores use this.
    """
    words = tok.words(question)
    if not words:
        return 0.0
    weights = [tok.specificity(w) for w in words]
    known = sum(weight for w, weight in zip(words, weights) if w in vocabulary or
                (w.isascii() and bool(crosslingual.translate(w, lexicon, tok.STOPWORDS))))
    return known / sum(weights)


def _prepare(documents: Sequence[Document], encoder: Encoder, config: IndexConfig,
             cache: EmbeddingCache | None, progress: Progress) -> tuple[list[Clause], np.ndarray, Iterator[list[str]]]:
    """Clauses, their vectors and their BM25 tokens (computed as they are read, once)."""
    clauses: list[Clause] = []
    for doc in documents:
        if cards.has_card(doc):
            clauses.append(cards.make_card(doc))
        clauses.extend(chunk(doc, config.chunk)[0])
    context = contexts(documents, clauses, config)
    vectors = _embed(encoder, [embed_text(c, config, x) for c, x in zip(clauses, context)], cache, progress)
    # tokenized as the BM25 index reads them: as a list, 100k clauses held ~5M token strings
    # (~0.4 GB) until the index was written
    tokens = (tok.tokenize(bm25_text(c, config, x)) for c, x in zip(clauses, context))
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
                         "rules": crosslingual.RULES, "english_keys": len(lexicon)},
    }


def _write_common(folder: Path, documents: Sequence[Document], dense: DenseIndex, sparse: SparseIndex,
                  lexicon: crosslingual.Lexicon) -> None:
    jsonl.write(folder / "documents.jsonl", (d.to_json() for d in documents))
    if isinstance(dense, DenseIndex):
        dense.save(folder)
    store.checkpoint("dense-written")
    sparse.save_vocab(folder)
    np.save(folder / "deleted.npy", sparse.deleted_rows(), allow_pickle=False)
    crosslingual.save(lexicon, folder)


def _remote(config: IndexConfig):
    """The remote store this index writes to (``qa.backends.remote.RemoteStore``), or None for a
    local index. The one place that reads the backend setting."""
    if config.backend == "local":
        return None
    from .backends.remote import RemoteStore

    return RemoteStore(config)


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
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n)
            if callable(progress):  # not bar.n: a disabled bar (a callback instead of a bar) stays at 0
                progress(done, len(texts))

        return encode_passages(encoder, texts, cache, progress=advance)
