"""Choose when "nothing matches" on dev data, then measure the choice on test data.

    .venv/bin/python bench/nomatch.py        # ~3 min with built indexes; writes bench/results/nomatch.json

The answer is refused when the best hit's cosine plus w times the question's coverage (the share
of its information carried by words the collection knows, ``Index.coverage``) stays under a floor
f. Both signals were used before as two separate floors; a question can be weak on one and strong
on the other, so they are weighed on one line instead.

Dev data, six groups, each weighing the same:
- answerable: our two labelled sets over docs/, and cmrc2018 and drcd_zhs over their own pools;
- off-topic: docs/eval/offtopic.jsonl over docs/, and the cmrc2018 and drcd_zhs questions (about
  Wikipedia articles) over docs/.
For each w on a grid, f is the highest floor that refuses at most ``--max-refused`` of every
answerable group; the w that refuses the most off-topic questions (mean over the three groups)
is chosen. Only then are the test parts of the same six groups read, to report the choice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import machine  # noqa: E402
from tune import collection  # noqa: E402

from qa import evaluate as ev, jsonl  # noqa: E402
from qa.pipeline import Pipeline, cache_for  # noqa: E402

WEIGHTS = [round(w, 3) for w in np.arange(0.0, 2.0001, 0.025)]
BENCHMARKS = ("cmrc2018", "drcd_zhs")


def evenly(items: list, limit: int) -> list:
    step = max(1.0, len(items) / limit)
    return [items[int(i * step)] for i in range(min(limit, len(items)))]


def open_collection(shared: Path, name: str) -> Pipeline:
    """The pipeline over docs/ ("docs") or over a benchmark's pool, as the product opens it."""
    index_dir, corpus = collection(shared, name)
    pipe = Pipeline.open(index_dir, corpus)
    pipe.query_cache = cache_for(index_dir)
    return pipe


def question_sets(shared: Path, split: str, limit: int, docs: Pipeline) -> dict[str, tuple[str, list[str]]]:
    """group name -> (collection, questions) for one split part."""
    documents = list(docs.index.documents.values())
    own = [q.question for path in ("docs/eval/questions.jsonl", "docs/eval/reading.jsonl")
           for q in ev.select(ev.load_labelled(ROOT / path, documents), split)]
    rows = jsonl.read(ROOT / "docs/eval/offtopic.jsonl")
    sets = {"answerable: labelled over docs": ("docs", own),
            "off-topic: offtopic.jsonl over docs": ("docs", [r["question"] for r in rows
                                                             if ev.split_of(r["qid"]) == split])}
    for name in BENCHMARKS:
        questions = [q.question for q in evenly(ev.select(ev.load_benchmark(shared / "benchmarks" / name), split), limit)]
        sets[f"answerable: {name} over its pool"] = (name, questions)
        sets[f"off-topic: {name} over docs"] = ("docs", questions)
    return sets


def signals(pipes: dict[str, Pipeline], sets: dict[str, tuple[str, list[str]]]) -> dict[str, np.ndarray]:
    """group -> array of (top-1 cosine, coverage) per question, as the product answers it."""
    out = {}
    for group, (name, questions) in sets.items():
        pipe = pipes[name]
        rows = []
        for start in range(0, len(questions), 64):
            chunk = questions[start:start + 64]
            for question, answer in zip(chunk, pipe.ask_many(chunk, k=1)):
                top = answer.hits[0].dense if answer.hits and answer.hits[0].dense is not None else -1.0
                rows.append((top, pipe.index.coverage(question)))
        out[group] = np.array(rows, dtype=np.float64).reshape(-1, 2)
        print(f"  {group}: {len(rows)} questions", flush=True)
    return out


def refused(values: np.ndarray, weight: float, floor: float) -> float:
    return float(np.mean(values[:, 0] + weight * values[:, 1] < floor)) if len(values) else 0.0


def choose(dev: dict[str, np.ndarray], max_refused: float) -> dict:
    answerable = [g for g in dev if g.startswith("answerable")]
    offtopic = [g for g in dev if g.startswith("off-topic")]
    best = None
    for weight in WEIGHTS:
        # the highest floor (3 decimals, rounded down) under which at most max_refused of each group falls
        floor = min(math.floor(np.sort(dev[g][:, 0] + weight * dev[g][:, 1])[int(max_refused * len(dev[g]))] * 1000)
                    / 1000 for g in answerable)
        score = float(np.mean([refused(dev[g], weight, floor) for g in offtopic]))
        if best is None or score > best[0] + 1e-12:
            best = (score, weight, floor)
    _, weight, floor = best
    return {"coverage_weight": float(weight), "floor": float(floor),
            "dev_refused": {g: round(refused(v, weight, floor), 4) for g, v in dev.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--limit", type=int, default=500, help="questions per public set and split part")
    parser.add_argument("--max-refused", type=float, default=0.03,
                        help="most of each answerable dev group the line may refuse")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/nomatch.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pipes = {name: open_collection(args.shared, name) for name in ("docs", *BENCHMARKS)}
    print("dev:", flush=True)
    dev = signals(pipes, question_sets(args.shared, "dev", args.limit, pipes["docs"]))
    chosen = choose(dev, args.max_refused)
    print("chosen on dev:", chosen, flush=True)
    print("test:", flush=True)
    test = signals(pipes, question_sets(args.shared, "test", args.limit, pipes["docs"]))
    weight, floor = chosen["coverage_weight"], chosen["floor"]
    result = {
        "command": "python bench/nomatch.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
        "machine": machine(),
        "rule": "refused when top-1 cosine + coverage_weight * coverage < floor",
        "limit_answerable_refused": args.max_refused,
        "questions": {"dev": {g: len(v) for g, v in dev.items()}, "test": {g: len(v) for g, v in test.items()}},
        "chosen": chosen,
        "test_refused": {g: round(refused(v, weight, floor), 4) for g, v in test.items()},
        "previous_floors": {"rule": "refused when coverage < 0.225 or top-1 cosine < 0.70",
                            "test_refused": {g: round(float(np.mean((v[:, 1] < 0.225) | (v[:, 0] < 0.70))), 4)
                                             for g, v in test.items()}},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    for g in test:
        print(f"  {g:<40} refused: dev {chosen['dev_refused'][g]:.3f}  test {result['test_refused'][g]:.3f}"
              f"  (previous floors, test {result['previous_floors']['test_refused'][g]:.3f})")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
