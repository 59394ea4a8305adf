"""Choose the fusion settings on dev data only, and write what was chosen and why.

    .venv/bin/python bench/tune.py            # ~10 min with built indexes; writes bench/results/tuning.json

Dev data: the dev part (qa/evaluate/splits.py) of our two labelled sets over docs/ and of the
two public sets (cmrc2018, drcd_zhs: split by gold passage; their training splits could not be
had here). For every dev question the hybrid candidates are gathered once with their four scores
(clause cosine and BM25, section cosine and BM25; ``Pipeline.candidates``); every setting is then
scored on those candidates without searching again. The objective is the mean clause-level MRR@10
over the four sets (the first clause that answers: overlaps the gold span, or comes from the gold
passage and contains the answer), each set weighing the same, so the 71-question set counts as much as the 3,500-question
one. The test parts are never read here. (The no-match line is chosen by bench/nomatch.py.)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa import evaluate as ev  # noqa: E402
from qa.config import SearchConfig  # noqa: E402
from qa.evaluate.metrics import GOLD, answer_in_top, judge  # noqa: E402
from qa.fusion import contextual, rrf  # noqa: E402
from qa.pipeline import Corpus, Pipeline, cache_for  # noqa: E402

ALPHAS = [round(a, 2) for a in np.arange(0.2, 0.951, 0.05)]
BETAS = [round(b, 2) for b in np.arange(0.0, 0.701, 0.05)]
DEPTH = 10


def collection(shared: Path, name: str) -> tuple[Path, Corpus]:
    """(index folder, corpus) of docs/ ("docs") or of a benchmark's pool, as the bench scripts build them."""
    if name == "docs":
        return ROOT / "index/main", Corpus(ROOT / "docs", "folder")
    return ROOT / f"index/bench-{name}", Corpus(shared / "benchmarks" / name / "passages.jsonl", "pool")


def dev_sets(shared: Path, limit: int | None) -> list[tuple[str, Path, Corpus, list]]:
    """(name, index folder, corpus, dev questions) for each set."""
    out = []
    docs = Pipeline.open(*collection(shared, "docs"))
    documents = list(docs.index.documents.values())
    for name, path in (("labelled", ROOT / "docs/eval/questions.jsonl"), ("reading", ROOT / "docs/eval/reading.jsonl")):
        out.append((name, *collection(shared, "docs"), ev.select(ev.load_labelled(path, documents), "dev")))
    for name in ("cmrc2018", "drcd_zhs"):
        questions = ev.select(ev.load_benchmark(shared / "benchmarks" / name), "dev")
        if limit and len(questions) > limit:
            step = len(questions) / limit
            questions = [questions[int(i * step)] for i in range(limit)]
        out.append((name, *collection(shared, name), questions))
    return out


def gather(pipe: Pipeline, questions: list) -> list[dict]:
    """Per question: candidate features and, per candidate, the unit it stands for.

    The unit is the clause: a clause answers when it overlaps the gold (our sets) or, for a
    benchmark, when it comes from a gold passage and contains one of the answer strings. So the
    settings are chosen for putting the answering clause first, not only its passage.
    """
    rows = []
    for start in range(0, len(questions), 64):
        chunk = questions[start:start + 64]
        for q, f in zip(chunk, pipe.candidates([q.question for q in chunk])):
            clauses = pipe.index.clauses_at(f.rows)
            if q.answers:
                units = [GOLD if judge(q, [c])[0] in q.gold_ids and answer_in_top(q, [c], 1) else c.clause_id
                         for c in clauses]
            else:
                units = [judge(q, [c])[0] for c in clauses]
            rows.append({"q": q, "f": f, "units": units})
    return rows


def mrr(rows: list[dict], score) -> float:
    """MRR@10 over questions when candidates are ranked by ``score(features)``."""
    total = 0.0
    for row in rows:
        s = score(row["f"])
        order = np.argsort(-s, kind="stable")
        units = list(dict.fromkeys(row["units"][i] for i in order))[:DEPTH]
        total += 1.0 / (units.index(GOLD) + 1) if GOLD in units else 0.0
    return total / max(1, len(rows))


def rrf_scores(f) -> np.ndarray:
    dense = [f.rows[i] for i in np.argsort(-f.dense, kind="stable")]
    sparse = [f.rows[i] for i in np.argsort(-f.bm25, kind="stable") if f.bm25[i] > 0]
    fused = dict(rrf([dense, sparse], k=60))
    return np.array([fused.get(r, 0.0) for r in f.rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--limit", type=int, default=1500, help="at most this many dev questions per public set")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/tuning.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sets = {}
    for name, index_dir, corpus, questions in dev_sets(args.shared, args.limit):
        pipe = Pipeline.open(index_dir, corpus, search=SearchConfig(section_weight=0.5))
        pipe.query_cache = cache_for(index_dir)
        t = time.perf_counter()
        sets[name] = gather(pipe, questions)
        print(f"{name}: {len(questions)} dev questions gathered in {time.perf_counter() - t:.1f} s", flush=True)

    grid: dict[str, dict[str, float]] = {}
    for alpha in ALPHAS:
        for beta in BETAS:
            key = f"convex alpha={alpha} beta={beta}"
            grid[key] = {name: mrr(rows, lambda f, a=alpha, b=beta: contextual(
                f.dense, f.bm25, f.section_dense, f.section_bm25, a, b)) for name, rows in sets.items()}
    grid["rrf k=60"] = {name: mrr(rows, rrf_scores) for name, rows in sets.items()}
    grid["dense"] = {name: mrr(rows, lambda f: f.dense) for name, rows in sets.items()}
    grid["bm25"] = {name: mrr(rows, lambda f: f.bm25) for name, rows in sets.items()}
    for entry in grid.values():
        entry["mean"] = float(np.mean([entry[n] for n in sets]))

    convex = {k: v for k, v in grid.items() if k.startswith("convex")}
    chosen = max(convex, key=lambda k: (round(convex[k]["mean"], 4), -abs(float(k.split("beta=")[1]))))
    alpha = float(chosen.split("alpha=")[1].split()[0])
    beta = float(chosen.split("beta=")[1])
    best_per_set = {name: max(convex, key=lambda k: convex[k][name]) for name in sets}
    no_sections = max((k for k in convex if k.endswith("beta=0.0")), key=lambda k: convex[k]["mean"])
    result = {
        "command": "python bench/tune.py",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}".strip(),
        "objective": "mean over the four dev sets of clause-level MRR@10: the first clause that overlaps the "
                     "gold span (labelled sets) or comes from the gold passage and contains an answer string "
                     "(benchmarks); hybrid candidates, fetch_k=100 per retriever",
        "dev_questions": {name: len(rows) for name, rows in sets.items()},
        "chosen": {"fusion": "convex", "alpha": alpha, "section_weight": beta, "dev": grid[chosen]},
        "best_without_sections": {"setting": no_sections, "dev": grid[no_sections]},
        "previous_default": {"setting": "convex alpha=0.7 beta=0.0", "dev": grid.get("convex alpha=0.7 beta=0.0")},
        "best_per_set": {name: {"setting": k, "dev": grid[k][name]} for name, k in best_per_set.items()},
        "baselines": {k: grid[k] for k in ("rrf k=60", "dense", "bm25")},
        "grid": grid,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"chosen on dev: convex alpha={alpha} section_weight={beta}  mean MRR@10 {grid[chosen]['mean']:.4f}")
    for k in (chosen, no_sections, "convex alpha=0.7 beta=0.0", "rrf k=60", "dense", "bm25"):
        print(f"  {k:<32} " + "  ".join(f"{n} {grid[k][n]:.4f}" for n in [*sets, "mean"]))
    print("best per set:", {n: v["setting"] for n, v in result["best_per_set"].items()})
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
