"""Second stages against each other on the test parts, and what each costs per question.

    .venv/bin/python bench/ranker_compare.py                 # off vs learned: 8 evaluations (~20 min) and the timing
    .venv/bin/python bench/ranker_compare.py --reuse /tmp    # reads reports already written by the same commands
                                                             # (and runs those missing)
    .venv/bin/python bench/ranker_compare.py --reranks learned,cross --out bench/results/cross-encoder.json

Accuracy: ``qa eval ... --modes hybrid --split test --rerank off|learned --out DIR/ev-SET-RERANK`` on our
three labelled sets and the two public sets. Latency: one process per index (docs/ and the
cmrc2018 pool), the same questions asked in hybrid mode with the ranker off and on, alternately,
p50/p99 of ``Pipeline.ask(question, k=10)`` end to end. Writes bench/results/ranker.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import figures, machine, percentiles_ms, qa_eval  # noqa: E402

SHARED = ROOT.parent / "shared/benchmarks"
SETS = {
    "labelled": ["--questions", "docs/eval/questions.jsonl"],
    "reading": ["--questions", "docs/eval/reading.jsonl"],
    "outside": ["--questions", "docs/eval/outside.jsonl"],
    "cmrc2018": ["--benchmark", str(SHARED / "cmrc2018")],
    "drcd_zhs": ["--benchmark", str(SHARED / "drcd_zhs")],
}
METRICS = ("recall@1", "recall@5", "mrr@10", "answer@1")


def accuracy(folder: Path, reuse: bool, reranks: list[str]) -> dict:
    out = {}
    for name in SETS:
        row = {}
        for rerank in reranks:
            args = [*SETS[name], "--modes", "hybrid", "--split", "test", "--rerank", rerank]
            out_dir = folder / f"ev-{name}-{rerank}"
            report = qa_eval(args, out_dir, reuse)
            row[rerank] = figures(report["modes"]["hybrid"], METRICS)
            row["questions"] = report["questions"]
            row.setdefault("commands", []).append(" ".join(["qa", "eval", *args, "--out", str(out_dir)]))
        first, last = reranks[0], reranks[-1]
        row["change"] = {m: round(row[last][m] - row[first][m], 4) for m in row[first]}
        out[name] = row
    return out


def latency(index_dir: Path, corpus, questions: list[str], reranks: list[str]) -> dict:
    from qa.pipeline import Pipeline

    pipe = Pipeline.open(index_dir, corpus)
    configs = {r: replace(pipe.search_config, rerank=r) for r in reranks}
    seconds = {r: [] for r in configs}
    for q in questions[:20]:  # warm-up: jieba, caches, the ranker's model
        for r, config in configs.items():
            pipe.search_config = config
            pipe.ask(q, k=10)
    for q in questions:
        for r, config in configs.items():
            pipe.search_config = config
            started = time.perf_counter()
            pipe.ask(q, k=10)
            seconds[r].append(time.perf_counter() - started)
    pipe.close()
    return {"clauses": pipe.index.manifest["counts"]["clauses"], "questions": len(questions),
            **{r: percentiles_ms(s) for r, s in seconds.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", type=Path, default=None, help="folder with ev-SET-RERANK reports already written (missing ones are run)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--reranks", default="off,learned", help="the stages compared; 'change' is last minus first")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/ranker.json")
    args = parser.parse_args()
    reranks = args.reranks.split(",")
    from qa.pipeline import Corpus

    folder = args.reuse or Path("/tmp/qa-ranker-compare")
    result = {"command": "python bench/ranker_compare.py " + " ".join(sys.argv[1:]), "machine": machine(),
              "ranker": json.loads((ROOT / "qa/models/ranker.json").read_text(encoding="utf-8"))["sha256"],
              "accuracy_test": accuracy(folder, args.reuse is not None, reranks)}
    if "cross" in reranks:
        from qa import cross
        from qa.config import SearchConfig

        result["cross_encoder"] = {"files": cross.check()["files"], "depth": SearchConfig.cross_depth,
                                   "weight": SearchConfig.cross_weight}
    docs_questions = [json.loads(line)["question"] for line in
                      (ROOT / "docs/eval/questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    cmrc = [json.loads(line)["question"] for line in
            (SHARED / "cmrc2018/questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    result["latency_ms"] = {
        "docs": latency(ROOT / "index/main", Corpus(ROOT / "docs", "folder"), docs_questions[:args.questions],
                        reranks),
        "cmrc2018_pool": latency(ROOT / "index/bench-cmrc2018", Corpus(SHARED / "cmrc2018/passages.jsonl", "pool"),
                                 cmrc[::max(1, len(cmrc) // args.questions)][:args.questions], reranks),
    }
    out = args.out
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(result["accuracy_test"], indent=1)[:3000])
    print(json.dumps(result["latency_ms"], indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
