"""The cross-encoder stage against the learned ranker on dev questions that neither has seen.

    .venv/bin/python bench/cross_unseen.py --variants DIR    # ~30 min; writes bench/results/cross-unseen.json

bench/cross_tune.py compares them on every dev question, but the shipped ranker was fitted on
those same questions, so that comparison leans towards it. Here the ranker is fitted again, with
the shipped settings and number of trees, on the dev questions outside bench/train_ranker.py's
stopping part only, and both are scored on the stopping part (a fifth of the dev questions, by a
seeded hash), which the cross-encoder never saw either (it was trained on XQuAD). The grid is
bench/cross_tune.py's; the objective is the one the ranker's trees are chosen by (clause-level
MRR@10, each question weighing 1/sqrt(its set's size), so the stopping part's 7 reading
questions do not count as much as its 687 drcd_zhs ones); the latency of each (variant, depth) is read from
bench/results/cross-tuning.json, measured there on a quiet machine. The grid's best setting is
chosen on the questions it is scored on, so "chosen_on_other_half" also scores the stage with its
setting chosen on one half of them and judged on the other (both ways, five seeded halvings)
against the ranker alone on the same halves. The test parts are never read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cross_tune import BUDGET_MS, WEIGHTS  # noqa: E402
from measure import machine  # noqa: E402
from train_ranker import fit, gather, per_set, stopping_part  # noqa: E402
from tune import dev_sets  # noqa: E402

from qa import cross  # noqa: E402

DEPTHS = (3, 5)
SPLITS = 5


def with_stage(learned: np.ndarray, logits: np.ndarray, depth: int, weight: float) -> np.ndarray:
    """One question's scores once the stage has read the ranker's best ``depth`` (``logits`` holds
    the logits of its best ``max(DEPTHS)``, best first)."""
    top = np.argsort(-learned, kind="stable")[:depth]
    return cross.blend(learned, top, logits[:depth], weight)


def chosen_elsewhere(unseen: list[dict], learned: list, logits: list, settings: list[tuple[int, float]]) -> dict:
    """The stage with its setting chosen on one half of the unseen questions and scored on the other
    (both ways, for ``SPLITS`` seeded halvings), against the ranker alone on the same halves: the
    grid's best is chosen on the questions it is scored on, so its margin over the ranker is
    flattered by the choice; this one is not."""
    def blended(depth: int, weight: float, idx: list[int]) -> list:
        return [with_stage(learned[i], logits[i], depth, weight) for i in idx]

    def objective(idx: list[int], scores: list) -> float:
        return per_set([unseen[i] for i in idx], scores)["weighted"]

    splits = []
    for seed in range(SPLITS):
        half = [hashlib.sha256(f"half-{seed}\0{g['qid']}".encode()).digest()[0] % 2 for g in unseen]
        stage = alone = 0.0
        picks = []
        for part in (0, 1):
            choose = [i for i, h in enumerate(half) if h != part]
            score = [i for i, h in enumerate(half) if h == part]
            depth, weight = max(settings, key=lambda dw: objective(choose, blended(*dw, choose)))
            picks.append({"depth": depth, "weight": weight})
            stage += objective(score, blended(depth, weight, score)) / 2
            alone += objective(score, [learned[i] for i in score]) / 2
        splits.append({"picks": picks, "stage": round(stage, 4), "learned_alone": round(alone, 4)})
    return {"splits": splits, "stage_mean": round(float(np.mean([s["stage"] for s in splits])), 4),
            "learned_alone_mean": round(float(np.mean([s["learned_alone"] for s in splits])), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--tuning", type=Path, default=ROOT / "bench/results/cross-tuning.json")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cross-unseen.json")
    args = parser.parse_args(argv)
    started = time.time()
    shipped = json.loads((ROOT / "qa/models/ranker.json").read_text(encoding="utf-8"))
    groups = []
    for name, index_dir, corpus, questions in dev_sets(args.shared, 0):
        groups += [g for g in gather(name, index_dir, corpus, questions) if len(g["y"])]
        print(f"{name}: gathered", flush=True)
    counts = {n: sum(g["set"] == n for g in groups) for n in sorted({g["set"] for g in groups})}
    weights = {n: 1.0 / np.sqrt(c) for n, c in counts.items()}
    booster = fit([g for g in groups if not stopping_part(g["qid"])], weights, shipped["trees"])
    unseen = [g for g in groups if stopping_part(g["qid"])]
    learned = [booster.predict(g["x"]) for g in unseen]
    tuning = json.loads(args.tuning.read_text(encoding="utf-8"))
    base_ms = tuning["latency_ms"]["ask_learned"]["p50_ms"]
    variants = sorted(p for p in args.variants.iterdir() if (p / cross.CARD).is_file())
    logits = {}
    for variant in variants:
        model = cross.CrossEncoder(variant)
        logits[variant.name] = []
        for g, s in zip(unseen, learned):
            top = np.argsort(-s, kind="stable")[:max(DEPTHS)]
            logits[variant.name].append(model.scores(g["question"], [g["texts"][i] for i in top]))
        print(f"{variant.name}: scored", flush=True)
    grid = []  # judged as the ranker's trees are: each question weighing 1/sqrt(its set's size)
    for name in logits:
        for depth in DEPTHS:
            for weight in WEIGHTS:
                scores = [with_stage(s, judged, depth, weight) for s, judged in zip(learned, logits[name])]
                mrr = per_set(unseen, scores)
                cost = tuning["latency_ms"][f"{name}@{depth}"]["p50_ms"]
                grid.append({"variant": name, "depth": depth, "weight": weight, "mrr": mrr, "objective": mrr["weighted"],
                             "p50_ms_with_stage": round(base_ms + cost, 1), "within_budget": base_ms + cost <= BUDGET_MS})
    alone = per_set(unseen, learned)
    allowed = [g for g in grid if g["within_budget"]]
    best = max(allowed, key=lambda g: g["objective"]) if allowed else None
    elsewhere = chosen_elsewhere(unseen, learned, logits[best["variant"]],
                                 [(g["depth"], g["weight"]) for g in allowed if g["variant"] == best["variant"]]
                                 ) if best else None
    # ties go to the first in the grid: the smaller depth and weight
    result = {"command": "python bench/cross_unseen.py " + " ".join(argv or sys.argv[1:]), "machine": machine(),
              "seconds": round(time.time() - started, 1), "ranker_trees": shipped["trees"],
              "questions": {"fitted_on": len(groups) - len(unseen), "unseen": len(unseen),
                            "unseen_by_set": {n: sum(g["set"] == n for g in unseen) for n in counts}},
              "objective": "clause-level MRR@10 over the four dev sets' stopping parts, each question weighing "
                           "1/sqrt(its set's size) (per_set's 'weighted')",
              "learned_alone": alone, "chosen": best, "stage_wins": bool(best and best["objective"] > alone["weighted"]),
              "chosen_on_other_half": elsewhere,
              "grid": grid}
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps({"learned": alone, "chosen": best, "chosen_on_other_half": elsewhere}, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
