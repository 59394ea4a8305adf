"""Milvus as the place where an index's vectors live: dense ANN and our BM25 as sparse vectors.

A collection row is a clause row of the index: its dense vector, its BM25 weights as a
sparse vector (term id -> tf / (tf + k1 * (1 - b + b * len / avgdl)), from our own jieba
tokens), and scalar fields to filter on (document id, issuing agency, date). A question's
sparse vector holds idf(t) times its count, so the inner product Milvus computes is the
BM25 score the local backend computes; idf comes from the index's live statistics at query
time, avgdl is the one at the time a row was written (rows written before many later
additions drift slightly until the next compaction rewrites them).

Works with Milvus Lite (a local file such as ``./milvus.db``), a standalone server or a
cluster (``http://host:19530``); the token, if any, comes from ``QA_MILVUS_TOKEN``.
Imported lazily: ``pip install "qa-policy[milvus]"`` installs pymilvus and milvus-lite.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MissingDependency, QAError

log = logging.getLogger(__name__)

TOKEN_ENV = "QA_MILVUS_TOKEN"
#: set to 1 (or ``qa index --insecure``) to send a token over plain http:// to another machine
INSECURE_ENV = "QA_MILVUS_INSECURE"


def check_uri(uri: str, token: str, insecure: bool = False) -> None:
    """Refuse a URI that would leak a secret: credentials written into it (they would be saved in
    the index manifest and printed in messages), or a token sent in the clear to another machine.

    Raises:
        QAError: saying where the secret belongs instead.
    """
    from urllib.parse import urlsplit

    from ..net import is_loopback

    if "://" not in uri:
        return  # a Milvus Lite file
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise QAError(f"the Milvus URI carries credentials; give {parts.scheme}://{parts.hostname}"
                      f"{f':{parts.port}' if parts.port else ''} and put the token in {TOKEN_ENV}")
    if not token or parts.scheme == "https" or insecure:
        return
    host = parts.hostname or ""
    if not is_loopback(host):
        raise QAError(f"refusing to send the Milvus token over plain {parts.scheme}:// to {host}: use https://, "
                      f"or pass --insecure ({INSECURE_ENV}=1) on a network you trust")
DENSE, SPARSE, TEXT, BUILTIN = "dense", "sparse", "text", "bm25_builtin"


def _client(uri: str):
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # milvus-lite imports pkg_resources
            from pymilvus import MilvusClient
    except ImportError as exc:
        raise MissingDependency("pymilvus", extra="milvus") from exc
    # Milvus Lite starts its server as a child process that inherits our environment. Our short
    # OpenMP spin (qa/__init__.py) slowed its searches (100k FLAT, a question end to end p50
    # 31.5 ms, 25.3 ms with a passive server; measured): the server gets passive waiting, our
    # own pools have read their setting already.
    spin = os.environ.get("GOMP_SPINCOUNT")
    os.environ["GOMP_SPINCOUNT"] = "0"
    try:
        token = os.environ.get(TOKEN_ENV, "")
        check_uri(uri, token, os.environ.get(INSECURE_ENV) == "1")
        return MilvusClient(uri=uri, token=token)
    except QAError:
        raise
    except Exception as exc:  # the server is down, the file is not a Milvus Lite file, ...
        raise QAError(f"cannot connect to Milvus at {uri}: {exc}") from exc
    finally:
        if spin is None:
            os.environ.pop("GOMP_SPINCOUNT", None)
        else:
            os.environ["GOMP_SPINCOUNT"] = spin


class MilvusStore:
    """One collection holding an index's dense vectors and BM25 weights.

    Offers the search interface of ``qa.dense.DenseIndex`` (so the index can use it in
    its place) plus sparse search and server-side hybrid search with RRF.
    """

    kind = "milvus"

    def __init__(self, uri: str, collection: str, dim: int) -> None:
        self.uri, self.collection, self._dim = uri, collection, dim
        self._client = _client(uri)
        self._count: int | None = None

    @classmethod
    def create(cls, uri: str, collection: str, dim: int, builtin_bm25: bool = False) -> "MilvusStore":
        """A new, empty collection (an existing one of that name is replaced).

        Args:
            builtin_bm25: also keep each clause's text with Milvus's own BM25 function over its
                ``chinese`` analyzer (Milvus >= 2.5). It scores differently from our BM25: its own
                tokenizer, no character bigrams, no English translation.
        """
        from pymilvus import DataType, Function, FunctionType

        store = cls(uri, collection, dim)
        client = store._client
        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = client.create_schema(auto_id=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("agency", DataType.VARCHAR, max_length=256)
        schema.add_field("date", DataType.VARCHAR, max_length=64)
        schema.add_field(DENSE, DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        params = client.prepare_index_params()
        params.add_index(DENSE, index_type="FLAT", metric_type="IP")
        params.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        if builtin_bm25:
            schema.add_field(TEXT, DataType.VARCHAR, max_length=8192, enable_analyzer=True,
                             analyzer_params={"type": "chinese"})
            schema.add_field(BUILTIN, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=[TEXT],
                                         output_field_names=[BUILTIN]))
            params.add_index(BUILTIN, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection(collection, schema=schema, index_params=params)
        return store

    @classmethod
    def connect(cls, uri: str, collection: str, dim: int) -> "MilvusStore":
        """An existing collection, loaded for search (Milvus does not load it on reopen)."""
        store = cls(uri, collection, dim)
        if not store._client.has_collection(collection):
            raise QAError(f"Milvus at {uri} has no collection {collection!r}: rebuild with qa index")
        store._client.load_collection(collection)
        return store

    def describe(self) -> dict[str, Any]:
        return {"backend": "milvus", "uri": self.uri, "collection": self.collection}

    # -- writing --------------------------------------------------------------------------

    def upsert(self, rows: np.ndarray, doc_ids: Sequence[str], metas: Sequence[dict[str, str]],
               vectors: np.ndarray, weights: Sequence[dict[int, float]], texts: Sequence[str] | None = None,
               batch: int = 2000) -> None:
        for start in range(0, len(rows), batch):
            data = [{"row": int(r), "doc_id": d, "agency": m.get("agency", "")[:250],
                     "date": (m.get("published") or m.get("written") or m.get("date", ""))[:60],
                     DENSE: v.tolist(), SPARSE: w}
                    for r, d, m, v, w in zip(rows[start:start + batch], doc_ids[start:start + batch],
                                             metas[start:start + batch], vectors[start:start + batch],
                                             weights[start:start + batch])]
            if texts is not None:
                for item, text in zip(data, texts[start:start + batch]):
                    item[TEXT] = text[:8000]
            self._client.upsert(self.collection, data)
        self._client.flush(self.collection)
        self._count = None

    def delete(self, rows: np.ndarray) -> None:
        if len(rows):
            self._client.delete(self.collection, ids=[int(r) for r in rows])
            self._client.flush(self.collection)
            self._count = None

    # -- the DenseIndex interface -----------------------------------------------------------

    def __len__(self) -> int:
        if self._count is None:
            result = self._client.query(self.collection, filter="row >= 0", output_fields=["count(*)"])
            self._count = int(result[0]["count(*)"])
        return self._count

    @property
    def dim(self) -> int:
        return self._dim

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               deleted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query by inner product (deleted rows are gone from the collection)."""
        if allowed is not None and not len(allowed):
            return _arrays([[] for _ in queries], k)
        results = self._client.search(self.collection, data=[q.tolist() for q in queries], anns_field=DENSE,
                                      limit=max(1, k), filter=_rows_filter(allowed),
                                      search_params={"metric_type": "IP"})
        return _arrays(results, k)

    def similarities(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner product of ``vector`` with each of ``rows``: one filtered search, no vectors fetched."""
        if not len(rows):
            return np.zeros(0, np.float64)
        scores, found = self.search(vector[None], len(rows), allowed=np.asarray(rows))
        by_row = {int(r): float(s) for s, r in zip(scores[0], found[0]) if r >= 0}
        return np.asarray([by_row.get(int(r), 0.0) for r in rows], dtype=np.float64)

    def vector(self, row: int) -> np.ndarray:
        return self.vectors(np.asarray([row]))[0]

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros((0, self._dim), np.float32)
        got = {int(e["row"]): e[DENSE] for e in self._client.get(self.collection, ids=[int(r) for r in rows],
                                                                  output_fields=[DENSE])}
        return np.asarray([got[int(r)] for r in rows], dtype=np.float32)

    # -- sparse and hybrid ------------------------------------------------------------------

    def sparse_search(self, weights: dict[int, float], k: int, allowed: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by BM25 (inner product of the question's idf weights and the rows' weights)."""
        if not weights or (allowed is not None and not len(allowed)):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        results = self._client.search(self.collection, data=[weights], anns_field=SPARSE, limit=max(1, k),
                                      filter=_rows_filter(allowed), search_params={"metric_type": "IP"})
        scores, rows = _arrays(results, k)
        keep = scores[0] > 0
        return scores[0][keep], rows[0][keep]

    def text_search(self, question: str, k: int, allowed: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by Milvus's own BM25 over its ``chinese`` analyzer (``builtin_bm25`` collections)."""
        if allowed is not None and not len(allowed):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        results = self._client.search(self.collection, data=[question], anns_field=BUILTIN, limit=max(1, k),
                                      filter=_rows_filter(allowed), search_params={"metric_type": "BM25"})
        scores, rows = _arrays(results, k)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def hybrid_rrf(self, vector: np.ndarray, weights: dict[int, float], k: int, fetch: int, rrf_k: int = 60,
                   allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Milvus's own hybrid search: dense and sparse top-``fetch`` fused by RRF (k = ``rrf_k``)."""
        from pymilvus import AnnSearchRequest, RRFRanker

        if allowed is not None and not len(allowed):
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        expr = _rows_filter(allowed)
        requests = [AnnSearchRequest([vector.tolist()], DENSE, {"metric_type": "IP"}, fetch, expr=expr or None)]
        if weights:
            requests.append(AnnSearchRequest([weights], SPARSE, {"metric_type": "IP"}, fetch, expr=expr or None))
        results = self._client.hybrid_search(self.collection, requests, RRFRanker(rrf_k), limit=k)
        scores, rows = _arrays(results, k)
        return scores[0], rows[0]

    def close(self) -> None:
        """Disconnect; a Milvus Lite file is also released, so another process can open it."""
        self._client.close()
        if "://" not in self.uri:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)


def _rows_filter(allowed: np.ndarray | None) -> str:
    if allowed is None:
        return ""
    return f"row in {json.dumps([int(r) for r in allowed])}"


def _arrays(results, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full((len(results), k), -np.inf, dtype=np.float32)
    rows = np.full((len(results), k), -1, dtype=np.int64)
    for i, hits in enumerate(results):
        for j, hit in enumerate(list(hits)[:k]):
            scores[i, j], rows[i, j] = hit["distance"], hit["id"]
    return scores, rows
