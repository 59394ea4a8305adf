"""An index kept whole in Milvus: the writer a build uses, and the reader every query server uses.

``RemoteStore`` receives what a build or an update made (``qa.backends.payload``): a full build
writes a new generation and then points the alias at it (``qa.backends.milvus.Head``), so queries
never see a half-built index; an update deletes and upserts rows of the live generation in place
and replaces its statistics. ``RemoteIndex`` answers questions from Milvus alone (the search
interface of ``qa.retrieval``): a query server needs only the URI and the collection name.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import crosslingual, homophones
from .. import tokenize as tok
from ..config import IndexConfig
from ..errors import IndexMismatch, QAError, StoreGone
from ..index import Candidate, coverage
from ..retrieval import Selection
from ..types import Clause, Document
from .lease import WriterLease
from .milvus import DENSE, FOREIGN, SPARSE, Generation, Head, connect, release

log = logging.getLogger(__name__)

#: Bumped when what a generation holds changes; a reader refuses other formats with a clear message.
FORMAT = 1
#: A reader looks for a new generation or new statistics at most this often (seconds).
CHECK_SECONDS = 2.0
#: Clause and section rows a reader keeps fetched (rows never change once written).
CACHE_ROWS = 20_000
#: Seconds a build waits for another build of the same collection to finish (default 3600).
LOCK_WAIT_ENV = "QA_MILVUS_LOCK_WAIT"

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client_for(uri: str):
    """One client per URI per process: a Milvus Lite file is served once per process."""
    with _clients_lock:
        if uri not in _clients:
            _clients[uri] = connect(uri)
        return _clients[uri]


def close(uri: str) -> None:
    """Disconnect from ``uri`` (a Milvus Lite file is released for another process)."""
    with _clients_lock:
        client = _clients.pop(uri, None)
    if client is not None:
        release(client, uri)


class RemoteStore:
    """Writes an index's rows and statistics to Milvus (the builder's side)."""

    def __init__(self, config: IndexConfig) -> None:
        if not config.milvus_uri or not config.collection:
            raise IndexMismatch("the Milvus backend needs --milvus-uri and --collection")
        self.uri, self.alias = config.milvus_uri, config.collection

    def rebuild(self, batch, statistics: dict[str, Any], force: bool = False, progress=False) -> None:
        """A new generation with every row, then the alias switched to it, then older ones dropped.

        Raises:
            QAError: the collection holds another corpus's index and ``force`` is not set.
        """
        client = client_for(self.uri)
        head = Head(client, self.alias)
        corpus = _corpus_key(statistics)
        with self._writer():
            current = head.read()
            if current == {"corpus": FOREIGN}:  # never dropped by us, --force or not: it may be another program's
                raise QAError(f"Milvus collection {self.alias!r} is {FOREIGN}; qa leaves it alone: choose another "
                              "--collection, or drop it with Milvus's own tools")
            if current is not None and current.get("corpus") != corpus and not force:
                raise QAError(f"Milvus collection {self.alias!r} holds the index of {current.get('corpus')}, not "
                              f"{corpus}; choose another --collection, or pass --force to replace it")
            generation = Generation.create(client, self.alias, batch.vectors.shape[1])
            try:
                with _bar(len(batch.rows), progress) as advance:
                    generation.upsert_rows(batch, advance)
                generation.write_meta({**statistics, "format": FORMAT, "dense_index": generation.dense_index,
                                       "dense_search": generation.dense_search})
            except Exception:
                generation.drop()
                raise
            head.point(generation.name, corpus)
            for name in head.generations():
                if name != generation.name:  # a reader still on it retries on the new one (StoreGone)
                    Generation(client, name).drop()
        log.info("Milvus %s: generation %s is live (%s dense index)", self.alias, generation.name,
                 generation.dense_index)

    def apply(self, rows: np.ndarray, sections: np.ndarray, batch, statistics: dict[str, Any],
              progress=False) -> None:
        """Delete rows and sections, upsert new ones and replace the statistics, in place."""
        client = client_for(self.uri)
        with self._writer():
            current = Head(client, self.alias).read()
            if current is None or current.get("corpus") != _corpus_key(statistics):
                raise QAError(f"Milvus collection {self.alias!r} does not hold this index any more; "
                              "rebuild it with: qa index --force")
            generation = Generation(client, current["generation"])
            meta = generation.read_meta()[1]
            if meta.get("format") != FORMAT:
                raise QAError(f"Milvus collection {self.alias!r} was written by another version of qa; "
                              "rebuild it with: qa index --force")
            generation.delete(rows, sections)
            with _bar(len(batch.rows), progress) as advance:
                generation.upsert_rows(batch, advance)
            generation.write_meta({**statistics, "format": FORMAT, "dense_index": meta["dense_index"],
                                   "dense_search": meta["dense_search"]})

    def reader(self) -> "RemoteIndex":
        return RemoteIndex.open(self.uri, self.alias)

    @contextmanager
    def _writer(self):
        """One writer per collection, on any machine (``qa.backends.lease``)."""
        with WriterLease(client_for(self.uri), self.alias).held(_lock_wait()):
            yield


def _lock_wait() -> float:
    """Seconds from ``QA_MILVUS_LOCK_WAIT`` (default 3600).

    Raises:
        QAError: not a number of seconds from 0.
    """
    raw = os.environ.get(LOCK_WAIT_ENV, "3600")
    try:
        seconds = float(raw.strip())
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise QAError(f"{LOCK_WAIT_ENV}={raw!r}: give the seconds a build waits for another build's lock, from 0")
    return seconds


@contextmanager
def _bar(total: int, progress):
    """One progress bar over all the batches written (``progress``: True, or a (done, total) callback)."""
    from tqdm.auto import tqdm

    with tqdm(total=total, desc="writing to Milvus", unit="row", disable=progress is not True,
              mininterval=0.5) as bar:
        def advance(done: int, total: int) -> None:
            bar.update(done - bar.n)
            if callable(progress):
                progress(done, total)

        yield advance


def _corpus_key(statistics: dict[str, Any]) -> str:
    corpus = statistics["manifest"].get("corpus", {})
    return f"{corpus.get('kind', '')}:{corpus.get('path', '')}"


class RemoteIndex:
    """One generation of an index in Milvus, with its statistics: the reader's store."""

    def __init__(self, uri: str, alias: str, generation: Generation, epoch: int, stats: dict[str, Any]) -> None:
        self.uri, self.alias, self.generation, self.epoch = uri, alias, generation, epoch
        self.folder = None
        self.manifest = stats["manifest"]
        self.config = IndexConfig.from_json(self.manifest["config"])
        self.documents = {d["doc_id"]: Document(d["doc_id"], d["title"], "", d["source"], d["meta"])
                          for d in stats["documents"]}
        self._counts = stats["counts"]
        bm25 = stats["bm25"]
        self.vocab = {t: i for i, t in enumerate(bm25["tokens"])}
        self.df = np.asarray(bm25["df"], dtype=np.int64)
        self.idf = _idf(bm25["n"], self.df)
        self.section_idf = _idf(bm25["sections_n"], np.asarray(bm25["sections_df"], dtype=np.int64))
        self.lexicon = stats["lexicon"]
        self.dense_index, self.dense_params = stats["dense_index"], stats["dense_search"]
        self._checked = time.monotonic()
        self._rows: OrderedDict[int, dict] = OrderedDict()
        self._sections: OrderedDict[int, dict] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def open(cls, uri: str, alias: str) -> "RemoteIndex":
        """The live generation of ``alias``.

        Raises:
            QAError: no such index on that server (with the command that builds one).
        """
        client = client_for(uri)
        for _ in range(3):  # a rebuild may drop the generation between reading the head and its statistics
            head = Head(client, alias).read()
            if head is None:
                raise QAError(f"Milvus at {uri} has no index named {alias!r}: build one with "
                              f"qa index --backend milvus --milvus-uri {uri} --collection {alias}")
            generation = Generation(client, head["generation"])
            try:
                generation.load()
                epoch, stats = generation.read_meta()
                if stats.get("format") != FORMAT:
                    raise QAError(f"the index {alias!r} in Milvus at {uri} was written by another version of qa "
                                  f"(format {stats.get('format')}, this one reads {FORMAT}); rebuild it with "
                                  "qa index --force")
                return cls(uri, alias, generation, epoch, stats)
            except StoreGone:
                time.sleep(0.2)
            except QAError:
                raise
            except Exception as exc:
                if "not found" not in str(exc) and "not exist" not in str(exc):
                    raise QAError(f"Milvus ({alias}): {exc}") from exc
                time.sleep(0.2)
        raise QAError(f"Milvus at {uri}: the index {alias!r} kept changing while it was opened; try again")

    def fresh(self, force: bool = False) -> "RemoteIndex":
        """This reader, or a new one when a rebuild or an update has changed the index since."""
        if not force and time.monotonic() - self._checked < CHECK_SECONDS:
            return self
        try:
            head = Head(self.generation.client, self.alias).read()
            if head is not None and head["generation"] == self.generation.name and \
                    self.generation.epoch() == self.epoch:
                self._checked = time.monotonic()
                return self
        except StoreGone:
            pass
        return RemoteIndex.open(self.uri, self.alias)

    def __contains__(self, token: str) -> bool:
        """Whether a live clause holds ``token`` (as ``SparseIndex``: the vocabulary keeps the
        words of deleted clauses too)."""
        t = self.vocab.get(token)
        return t is not None and self.df[t] > 0

    def searcher(self) -> "RemoteIndex":
        return self

    def close(self) -> None:
        close(self.uri)

    # -- the search interface (qa.retrieval) ------------------------------------------------

    @property
    def live_clauses(self) -> int:
        return int(self.manifest["counts"]["clauses"])

    def clause_counts(self) -> dict[str, int]:
        return dict(self._counts)

    def select(self, selection: Selection | None) -> str | None:
        """The selection as a Milvus filter expression, or None for no filter."""
        if not selection:
            return None
        parts = []
        if selection.doc_ids:
            parts.append(f"doc_id in {json.dumps(list(selection.doc_ids), ensure_ascii=False)}")
        if selection.agencies:
            parts.append(f"agency in {json.dumps(list(selection.agencies), ensure_ascii=False)}")
        if selection.since or selection.until:
            first, last = selection.days
            parts.append(f"day > 0 and day >= {first} and day <= {last}")
        return " and ".join(f"({p})" for p in parts)

    def search_dense(self, vectors: np.ndarray, k: int, where: str | None = None) -> list[list[Candidate]]:
        params = self.dense_params
        if "ef" in params.get("params", {}):  # HNSW looks at no fewer than k candidates
            params = {**params, "params": {"ef": max(k, params["params"]["ef"])}}
        results = self.generation.search([v.tolist() for v in vectors], DENSE, k, where or "", params)
        return [[Candidate(int(h["id"]), float(h["distance"]), dense=float(h["distance"])) for h in hits]
                for hits in results]

    def lexical(self, question: str, tokens: list[str], sections: bool = False,
                corrections: bool = True) -> "RemoteLexical":
        translated = crosslingual.query_groups(question, tokens, self, self.lexicon, tok.STOPWORDS)
        found = homophones.slips(question, self) if corrections else []
        query = homophones.extend(translated, tokens, self, found)
        groups = query if query is not None else [[[t]] for t in tokens]
        ids = [[[self.vocab[t] for t in alt if t in self] for alt in group]
               for group in groups]
        return RemoteLexical(self, [(1.0, ids)], sections, translated is not None, tuple(found))

    def similarities(self, vector: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        data = self.row_data(rows)
        return np.asarray([float(data[int(r)][DENSE] @ vector) for r in rows], dtype=np.float64)

    def section_similarities(self, vector: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        data = self.row_data(rows)
        sections = self.section_data([data[int(r)]["section"] for r in rows])
        return np.asarray([float(sections[data[int(r)]["section"]][DENSE] @ vector) for r in rows],
                          dtype=np.float32)

    def clauses_at(self, rows: Sequence[int]) -> list[Clause]:
        data = self.row_data(rows)
        return [data[int(r)]["clause"] for r in rows]

    def coverage(self, question: str) -> float:
        return coverage(question, self, self.lexicon)

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> list[Clause]:
        clauses = [c for _, c in self._document_rows(clause_id.rsplit("#", 1)[0]) if c.kind == "clause"]
        where = next((i for i, c in enumerate(clauses) if c.clause_id == clause_id), None)
        if where is None:
            return []
        return clauses[max(0, where - before):where + after + 1]

    def row_of(self, clause_id: str) -> int:
        return next((r for r, c in self._document_rows(clause_id.rsplit("#", 1)[0]) if c.clause_id == clause_id), -1)

    def rows_of_documents(self, doc_ids: Sequence[str] | None) -> list[int] | None:
        if not doc_ids:
            return None
        return sorted(r for d in doc_ids for r, _ in self._document_rows(d))

    def _document_rows(self, doc_id: str) -> list[tuple[int, Clause]]:
        found = self.generation.query(f"doc_id == {json.dumps(doc_id, ensure_ascii=False)}", ["row", "clause"])
        return sorted((int(e["row"]), Clause.from_json(json.loads(e["clause"]))) for e in found)

    # -- fetching rows (cached: a row never changes once written) -----------------------------

    def row_data(self, rows: Sequence[int]) -> dict[int, dict]:
        return self._fetch(self._rows, rows, lambda ids: self.generation.rows(ids, [DENSE, SPARSE, "section",
                                                                                    "clause"]), "row",
                           lambda e: {DENSE: np.asarray(e[DENSE], dtype=np.float32), SPARSE: e[SPARSE],
                                      "section": int(e["section"]),
                                      "clause": Clause.from_json(json.loads(e["clause"]))})

    def section_data(self, ids: Sequence[int]) -> dict[int, dict]:
        return self._fetch(self._sections, ids, lambda wanted: self.generation.section_rows(wanted, [DENSE, SPARSE]),
                           "section", lambda e: {DENSE: np.asarray(e[DENSE], dtype=np.float32), SPARSE: e[SPARSE]})

    def _fetch(self, cache: OrderedDict, keys: Sequence[int], get, key: str, convert) -> dict[int, dict]:
        wanted = list(dict.fromkeys(int(k) for k in keys))
        with self._lock:
            out = {k: cache[k] for k in wanted if k in cache}
        missing = [k for k in wanted if k not in out]
        if missing:
            for entity in get(missing):
                out[int(entity[key])] = convert(entity)
            with self._lock:
                for k in missing:
                    if k in out:
                        cache[k] = out[k]
                while len(cache) > CACHE_ROWS:
                    cache.popitem(last=False)
        lost = [k for k in wanted if k not in out]
        if lost:  # deleted by an update after the search found them: the reader is behind
            raise StoreGone(f"rows {lost[:5]} are gone from {self.generation.name}")
        return out


class RemoteLexical:
    """BM25 of one question against a remote index: Milvus finds the candidates by the sparse inner
    product, and their exact scores (the best alternative of each translated word, as the local
    store scores them) are computed from the rows' stored weights."""

    def __init__(self, index: RemoteIndex, parts: list[tuple[float, list]], sections: bool,
                 translated: bool, slips: tuple[homophones.Slip, ...] = ()) -> None:
        self.index, self.parts, self.with_sections, self.translated = index, parts, sections, translated
        self.slips = slips
        self._plans: dict[int, tuple[dict[int, float], list]] = {}

    def top(self, k: int, where: str | None = None) -> list[Candidate]:
        weights: dict[int, float] = {}
        for share, groups in self.parts:
            for group in groups:
                for alternative in group:
                    for t in alternative:
                        weights[t] = weights.get(t, 0.0) + share * float(self.index.idf[t]) / len(group)
        if not weights:
            return []
        hits = self.index.generation.search([weights], SPARSE, k, where or "", {"metric_type": "IP"})[0]
        rows = [int(h["id"]) for h in hits]
        scores = self.clauses(rows)
        order = sorted(range(len(rows)), key=lambda i: (-scores[i], rows[i]))
        return [Candidate(rows[i], float(scores[i]), bm25=float(scores[i])) for i in order if scores[i] > 0]

    def clauses(self, rows: Sequence[int]) -> np.ndarray:
        data = self.index.row_data(rows)
        return np.asarray([self._score(data[int(r)][SPARSE], self.index.idf) for r in rows], dtype=np.float64)

    def sections(self, rows: Sequence[int]) -> np.ndarray | None:
        if not self.with_sections:
            return None
        data = self.index.row_data(rows)
        sections = self.index.section_data([data[int(r)]["section"] for r in rows])
        return np.asarray([self._score(sections[data[int(r)]["section"]][SPARSE], self.index.section_idf)
                           for r in rows], dtype=np.float64)

    def plus(self, other: "RemoteLexical", weight: float) -> "RemoteLexical":
        return RemoteLexical(self.index, self.parts + [(share * weight, groups) for share, groups in other.parts],
                             self.with_sections and other.with_sections, self.translated or other.translated,
                             self.slips)

    def _score(self, row: dict[int, float], idf: np.ndarray) -> float:
        plain, choices = self._plan(idf)
        total = sum(w * row.get(t, 0.0) for t, w in plain.items())
        for share, group in choices:
            total += share * max(sum(w * row.get(t, 0.0) for t, w in alternative) for alternative in group)
        return total

    def _plan(self, idf: np.ndarray) -> tuple[dict[int, float], list]:
        """The query with ``idf`` applied: one weight per term for groups of a single alternative (a
        plain word: the sum over them is a dot product), the translated words' groups apart."""
        if id(idf) not in self._plans:
            plain: dict[int, float] = {}
            choices = []
            for share, groups in self.parts:
                for group in groups:
                    if len(group) == 1:
                        for t in group[0]:
                            plain[t] = plain.get(t, 0.0) + share * float(idf[t])
                    else:
                        choices.append((share, [[(t, float(idf[t])) for t in alt] for alt in group]))
            self._plans[id(idf)] = plain, choices
        return self._plans[id(idf)]


def _idf(n: int, df: np.ndarray) -> np.ndarray:
    return np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
