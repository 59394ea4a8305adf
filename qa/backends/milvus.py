"""Milvus collections: connecting safely, their schemas, and the few operations the stores use.

An index named NAME is a *generation* of three collections, ``NAME_g<time>`` (clause rows),
``NAME_g<time>_sections`` and ``NAME_g<time>_meta`` (statistics as JSON parts), plus one small
collection ``NAME`` whose single row names the live generation: the alias. Milvus's own
aliases would do the same, but Milvus Lite 2.5 answers UNIMPLEMENTED to them (tried), and a
one-row upsert is atomic on every Milvus form.

A clause row: its row number (primary key), document, section, kind, the clause as JSON (text,
heading path, position, span), the document's agency and date as YYYYMMDD (filters), the dense
vector, and its BM25 weights as a sparse vector (term id -> tf / (tf + k1 * (1 - b + b * len /
avgdl)), from our own jieba tokens). A question's sparse vector holds idf(t) times its count, so
the inner product Milvus computes is our BM25 score; idf comes from the statistics of the
generation, avgdl is the one at the time a row was written (rows written before many later
additions drift slightly until the next full build rewrites them).

Works with Milvus Lite (a local file such as ``./milvus.db``, or ``milvus_lite.server`` over
the network), a standalone server or a cluster (``http://host:19530``); the token, if any,
comes from ``QA_MILVUS_TOKEN``. Imported lazily: ``pip install "qa-policy[milvus]"``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MissingDependency, QAError, StoreGone

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
DENSE, SPARSE = "dense", "sparse"
#: The vector field of a collection that holds no vectors (``create_plain``), and its value in every row.
UNUSED = "unused"
NO_VECTOR = {UNUSED: [0.0, 0.0]}
#: One JSON part of the statistics (Milvus VARCHAR holds at most 65,535 bytes).
PART_CHARS = 16_000
#: Rows per insert call.
BATCH = 2000
#: Dense index types to try in order, (type, build parameters, search parameters): the first the
#: server accepts is used. Milvus standalone and cluster take HNSW. Milvus Lite refuses it and gets
#: exact FLAT at every size: its IVF_FLAT and AUTOINDEX ignore nlist and nprobe and miss a good part
#: of the exact top-10 at a million rows (bench/results/milvus-index.json).
DENSE_INDEXES = [("HNSW", {"M": 16, "efConstruction": 200}, {"metric_type": "IP", "params": {"ef": 256}}),
                 ("FLAT", {}, {"metric_type": "IP"})]


def connect(uri: str):
    """A client for ``uri`` after checking that no secret would leak (``check_uri``)."""
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


def release(client, uri: str) -> None:
    """Disconnect; a Milvus Lite file is also released, so another process can open it."""
    client.close()
    if "://" not in uri:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


class Generation:
    """The three collections of one generation of an index, on one client."""

    def __init__(self, client, name: str) -> None:
        self.client, self.name = client, name
        self.sections, self.meta = f"{name}_sections", f"{name}_meta"

    # -- creating ---------------------------------------------------------------------------

    @classmethod
    def create(cls, client, alias: str, dim: int) -> "Generation":
        """New empty collections; ``dense_index`` and ``dense_search`` say which index the server took."""
        from pymilvus import DataType

        gen = cls(client, f"{alias}_g{time.time_ns() // 1000}")
        schema = client.create_schema(auto_id=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("section", DataType.INT64)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("clause", DataType.VARCHAR, max_length=65535)
        schema.add_field("agency", DataType.VARCHAR, max_length=256)
        schema.add_field("day", DataType.INT64)
        schema.add_field(DENSE, DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        gen.dense_index, gen.dense_search = _create_with_best_index(client, gen.name, schema)
        schema = client.create_schema(auto_id=False)
        schema.add_field("section", DataType.INT64, is_primary=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field(DENSE, DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
        _create(client, gen.sections, schema, "FLAT")  # read by key only
        schema = client.create_schema(auto_id=False)
        schema.add_field("part", DataType.INT64, is_primary=True)
        schema.add_field("data", DataType.VARCHAR, max_length=65535)
        create_plain(client, gen.meta, schema)
        return gen

    def drop(self) -> None:
        for name in (self.name, self.sections, self.meta):
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    # -- writing ----------------------------------------------------------------------------

    def upsert_rows(self, batch, progress=None) -> None:
        """Clause rows and their sections (a ``qa.backends.payload.RowsBatch``)."""
        for start in range(0, len(batch.rows), BATCH):
            end = start + BATCH
            data = [{"row": int(r), "doc_id": c.doc_id, "section": int(s), "kind": c.kind,
                     "clause": _clause_json(c), "agency": a[:250], "day": int(d), DENSE: v.tolist(), SPARSE: w}
                    for r, c, s, a, d, v, w in zip(batch.rows[start:end], batch.clauses[start:end],
                                                   batch.sections[start:end], batch.agencies[start:end],
                                                   batch.days[start:end], batch.vectors[start:end],
                                                   batch.weights[start:end])]
            self.client.upsert(self.name, data)
            if progress:
                progress(min(end, len(batch.rows)), len(batch.rows))
        for start in range(0, len(batch.section_ids), BATCH):
            end = start + BATCH
            data = [{"section": int(s), "doc_id": d, DENSE: v.tolist(), SPARSE: w}
                    for s, d, v, w in zip(batch.section_ids[start:end], batch.section_docs[start:end],
                                          batch.section_vectors[start:end], batch.section_weights[start:end])]
            self.client.upsert(self.sections, data)
        self.client.flush(self.name)
        self.client.flush(self.sections)

    def delete(self, rows: np.ndarray, sections: np.ndarray) -> None:
        if len(rows):
            self.client.delete(self.name, ids=[int(r) for r in rows])
            self.client.flush(self.name)
        if len(sections):
            self.client.delete(self.sections, ids=[int(s) for s in sections])
            self.client.flush(self.sections)

    def write_meta(self, statistics: dict[str, Any]) -> None:
        """Replace the statistics: JSON cut into parts; part 0 holds how many parts follow, so a
        reader never reads a half-written set (the old parts stay until the count moves on)."""
        text = json.dumps(statistics, ensure_ascii=False)
        parts = [text[i:i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
        epoch = time.time_ns()
        base = (epoch // 1000) * 1000  # parts of this write: base + 1 .. base + n, never reused
        for start in range(0, len(parts), 500):
            self.client.upsert(self.meta, [{"part": base + 1 + i, "data": p, **NO_VECTOR}
                                           for i, p in enumerate(parts[start:start + 500], start)])
        self.client.upsert(self.meta, [{"part": 0, "data": json.dumps({"epoch": epoch, "base": base,
                                                                       "parts": len(parts)}),
                                        **NO_VECTOR}])
        self.client.flush(self.meta)
        old = self.client.query(self.meta, filter=f"part > 0 and (part <= {base} or part > {base + len(parts)})",
                                output_fields=["part"], limit=16384)
        if old:
            self.client.delete(self.meta, ids=[int(o["part"]) for o in old])

    # -- reading ----------------------------------------------------------------------------

    def load(self) -> None:
        for name in (self.name, self.sections, self.meta):
            self.client.load_collection(name)

    def epoch(self) -> int:
        got = self._call(self.client.get, self.meta, ids=[0], output_fields=["data"])
        return int(json.loads(got[0]["data"])["epoch"]) if got else 0

    def read_meta(self) -> tuple[int, dict[str, Any]]:
        head = self._call(self.client.get, self.meta, ids=[0], output_fields=["data"])
        if not head:
            raise StoreGone(f"{self.name} has no statistics yet")
        info = json.loads(head[0]["data"])
        ids = list(range(info["base"] + 1, info["base"] + 1 + info["parts"]))
        got: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            for e in self._call(self.client.get, self.meta, ids=ids[start:start + 500], output_fields=["data"]):
                got[int(e["part"])] = e["data"]
        return int(info["epoch"]), json.loads("".join(got[i] for i in ids))

    def search(self, data: list, field: str, k: int, expr: str, params: dict) -> list:
        return self._call(self.client.search, self.name, data=data, anns_field=field, limit=max(1, k),
                          filter=expr, search_params=params)

    def rows(self, rows: Sequence[int], fields: list[str]) -> list[dict]:
        return self._call(self.client.get, self.name, ids=[int(r) for r in rows], output_fields=["row", *fields])

    def section_rows(self, ids: Sequence[int], fields: list[str]) -> list[dict]:
        return self._call(self.client.get, self.sections, ids=[int(s) for s in ids],
                          output_fields=["section", *fields])

    def query(self, expr: str, fields: list[str], limit: int = 16384) -> list[dict]:
        return self._call(self.client.query, self.name, filter=expr, output_fields=fields, limit=limit)

    def _call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            if "not found" in str(exc) or "not exist" in str(exc):
                raise StoreGone(f"Milvus collection {self.name} is gone: {exc}") from exc
            raise QAError(f"Milvus ({self.name}): {exc}") from exc


#: What ``Head.read`` says of a collection named like the index that is not one of our aliases.
FOREIGN = "something that is not a qa index (another program's collection, or an older qa's)"


class Head:
    """The alias: a one-row collection ``NAME`` naming the live generation and its corpus."""

    def __init__(self, client, alias: str) -> None:
        self.client, self.alias = client, alias

    def read(self) -> dict[str, Any] | None:
        """What the alias says, None if there is none, or {"corpus": FOREIGN} for a collection of that
        name that is not an alias (another program's, or an older qa's)."""
        if not self.client.has_collection(self.alias):
            return None
        fields = {f["name"] for f in self.client.describe_collection(self.alias)["fields"]}
        if fields != {"key", "data", UNUSED}:
            return {"corpus": FOREIGN}
        self.client.load_collection(self.alias)
        got = self.client.get(self.alias, ids=[0], output_fields=["data"])
        return json.loads(got[0]["data"]) if got else None

    def point(self, generation: str, corpus: str) -> None:
        from pymilvus import DataType

        if not self.client.has_collection(self.alias):
            schema = self.client.create_schema(auto_id=False)
            schema.add_field("key", DataType.INT64, is_primary=True)
            schema.add_field("data", DataType.VARCHAR, max_length=65535)
            create_plain(self.client, self.alias, schema)
        self.client.upsert(self.alias, [{"key": 0, "data": json.dumps({"generation": generation, "corpus": corpus},
                                                                       ensure_ascii=False), **NO_VECTOR}])
        self.client.flush(self.alias)

    def generations(self) -> list[str]:
        """Every generation of this alias on the server, oldest first (names sort by time)."""
        prefix = f"{self.alias}_g"
        return sorted(n for n in self.client.list_collections()
                      if n.startswith(prefix) and n[len(prefix):].isdigit())


def _clause_json(clause) -> str:
    data = clause.to_json()
    text = json.dumps(data, ensure_ascii=False)
    while len(text.encode("utf-8")) > 65000:  # a pathological clause: keep the citation, cut the text
        data["text"] = data["text"][:len(data["text"]) // 2]
        text = json.dumps(data, ensure_ascii=False)
    return text


def create_plain(client, name: str, schema) -> None:
    """A collection that holds no vectors (the alias, the statistics, the write lease): Milvus wants
    a vector field in every collection, so it gets a two-dimension one that stays zero (``NO_VECTOR``)."""
    from pymilvus import DataType

    schema.add_field(UNUSED, DataType.FLOAT_VECTOR, dim=2)
    _create(client, name, schema, "FLAT", vector=UNUSED)


def _create(client, name: str, schema, index_type: str, vector: str = DENSE) -> None:
    params = client.prepare_index_params()
    params.add_index(vector, index_type=index_type, metric_type="IP")
    if vector == DENSE:
        params.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=params)


def _create_with_best_index(client, name: str, schema) -> tuple[str, dict]:
    """Create the clause collection with the first dense index type the server accepts."""
    # pymilvus logs each refusal as an ERROR (through loggers with levels of their own); one is expected here
    quiet = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("pymilvus")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    refusals = []
    try:
        for index_type, build, search in DENSE_INDEXES:
            params = client.prepare_index_params()
            params.add_index(DENSE, index_type=index_type, metric_type="IP", params=build)
            params.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
            try:
                client.create_collection(name, schema=schema, index_params=params)
                return index_type, search
            except Exception as exc:  # e.g. Milvus Lite: "local mode only support FLAT IVF_FLAT AUTOINDEX"
                log.info("Milvus refused a %s index (%s); trying the next", index_type, exc)
                refusals.append(f"{index_type}: {exc}")
                if client.has_collection(name):
                    client.drop_collection(name)
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    # a server older than 2.4 has no sparse vectors, so it refuses every type for the sparse field
    raise QAError("Milvus refused the clause collection with every dense index type (it needs Milvus 2.4 or later "
                  "for the BM25 sparse vectors): " + "; ".join(refusals))
