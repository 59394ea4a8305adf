"""Choose the cross-encoder stage on dev data only: which trained variant, how deep, how blended.

    .venv/bin/python bench/cross_tune.py --variants DIR [--limit 400]    # writes bench/results/cross-tuning.json

Each folder under ``--variants`` is one output of ``bench/train_reranker.py train`` (its card
names the layers and epochs). Dev data and objective are bench/tune.py's: the dev parts of our two
labelled sets and of cmrc2018 and drcd_zhs (at most ``--limit`` questions each), mean
clause-level MRR@10 over the four sets, each weighing the same. Per question the learned ranker's
order is computed once as ``ask`` makes it (``Pipeline.rerank_inputs``), its best ``max(DEPTHS)``
clauses are read by each variant once, and every (depth, weight) is scored on those logits.

The latency budget (issue #15: p50 <= 150 ms per question over docs/ with the stage on) decides
which (variant, depth) may be chosen: the stage's own p50 over the docs/ dev questions' real
clauses, plus the p50 of a whole question with the learned ranker, measured here first while
nothing else runs. The test parts are never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import latencies, machine, percentiles_ms  # noqa: E402
from tune import DEPTH, dev_sets, gather  # noqa: E402

from qa import cross, rerank  # noqa: E402
from qa.config import SearchConfig  # noqa: E402
from qa.evaluate.metrics import GOLD  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402

DEPTHS = (3, 5, 10)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
BUDGET_MS = 150.0


def learned_top(pipe: Pipeline, rows: list[dict]) -> list[dict]:
    """Per question: the learned ranker's best ``DEPTH`` candidates (texts, scores, units)."""
    out = []
    questions = [r["q"] for r in rows]
    inputs = pipe.rerank_inputs([q.question for q in questions])
    for row, (clause_rows, x) in zip(rows, inputs):
        position = {r: i for i, r in enumerate(row["f"].rows)}
        learned = rerank.shipped().scores(x)
        order = np.argsort(-learned, kind="stable")[:DEPTH]
        chosen = [clause_rows[i] for i in order]
        out.append({"question": row["q"].question, "rows": chosen, "learned": learned[order],
                    "texts": [c.text for c in pipe.index.clauses_at(chosen)],
                    "units": [row["units"][position[r]] for r in chosen]})
    return out


def mrr(items: list[dict], key) -> float:
    total = 0.0
    for item in items:
        units = list(dict.fromkeys(item["units"][i] for i in key(item)))[:DEPTH]
        total += 1.0 / (units.index(GOLD) + 1) if GOLD in units else 0.0
    return total / max(1, len(items))


def reorder(item: dict, logits: np.ndarray, depth: int, weight: float) -> list[int]:
    """Positions in the learned order after the stage: its best ``depth`` by logit + weight x learned."""
    best = np.arange(min(depth, len(item["units"])))
    return [int(i) for i in np.argsort(-cross.blend(item["learned"], best, logits[best], weight), kind="stable")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cross-tuning.json")
    args = parser.parse_args(argv)
    variants = sorted(p for p in args.variants.iterdir() if (p / cross.CARD).is_file())
    models = {v.name: cross.CrossEncoder(v) for v in variants}
    result = {"command": "python bench/cross_tune.py " + " ".join(argv or sys.argv[1:]), "machine": machine(),
              "variants": {v.name: {k: json.loads((v / cross.CARD).read_text(encoding="utf-8")).get(k)
                                    for k in ("layers", "epochs", "lr", "rank", "hardware", "train_seconds", "files")}
                           for v in variants},
              "objective": "mean clause-level MRR@10 over the four dev sets", "sets": {}, "latency_ms": {}}
    items = {}
    for name, index_dir, corpus, questions in dev_sets(args.shared, args.limit):
        pipe = Pipeline.open(index_dir, corpus, search=SearchConfig(rerank="learned"))
        if name == "labelled":  # the budget's figures first, while nothing else runs
            asked = [q.question for q in questions]
            result["latency_ms"]["ask_learned"] = percentiles_ms(latencies(lambda q: pipe.ask(q, k=10), asked,
                                                                           warmup=asked[:5]))
            tops = {r["question"]: r["texts"] for r in learned_top(pipe, gather(pipe, questions))}
            for vname, model in models.items():
                for depth in DEPTHS:
                    result["latency_ms"][f"{vname}@{depth}"] = percentiles_ms(latencies(
                        lambda q, m=model, d=depth: m.scores(q, tops[q][:d]), asked, warmup=asked[:5]))
            print(json.dumps(result["latency_ms"]), flush=True)
        t = time.perf_counter()
        items[name] = learned_top(pipe, gather(pipe, questions))
        pipe.close()
        for vname, model in models.items():
            for item in items[name]:
                item.setdefault("logits", {})[vname] = model.scores(item["question"], item["texts"])
        print(f"{name}: {len(questions)} dev questions in {time.perf_counter() - t:.1f} s", flush=True)
        result["sets"][name] = {"questions": len(questions),
                                "learned_mrr": round(mrr(items[name], lambda it: range(len(it["units"]))), 4)}
    grid = []
    base_ms = result["latency_ms"]["ask_learned"]["p50_ms"]
    for vname in models:
        for depth in DEPTHS:
            cost = result["latency_ms"][f"{vname}@{depth}"]["p50_ms"]
            for weight in WEIGHTS:
                per_set = {name: round(mrr(its, lambda it: reorder(it, it["logits"][vname], depth, weight)), 4)
                           for name, its in items.items()}
                grid.append({"variant": vname, "depth": depth, "weight": weight, "mrr": per_set,
                             "objective": round(float(np.mean(list(per_set.values()))), 4),
                             "p50_ms_with_stage": round(base_ms + cost, 1),
                             "within_budget": base_ms + cost <= BUDGET_MS})
    learned = round(float(np.mean([s["learned_mrr"] for s in result["sets"].values()])), 4)
    allowed = [g for g in grid if g["within_budget"]]
    best = max(allowed, key=lambda g: g["objective"]) if allowed else None
    result.update({"learned_objective": learned, "grid": grid, "chosen": best,
                   "best_any_cost": max(grid, key=lambda g: g["objective"]),
                   "stage_wins_on_dev": bool(best and best["objective"] > learned)})
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps({"learned": learned, "chosen": best, "best_any_cost": result["best_any_cost"]}, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
