"""Train the learned ranker (qa/rerank.py) on dev data only, and write it to qa/models/.

    .venv/bin/python bench/train_ranker.py          # ~10 min with built indexes
    make ranker                                     # also judges the newest feature groups (~25 min)

Data: the dev parts (qa/evaluate/splits.py) of our two labelled sets over docs/ and of the two
public sets (cmrc2018, drcd_zhs: split by gold passage, at most ``--limit`` questions each), as
bench/tune.py uses them; the test parts are never read here. For each question the pipeline
gives the fused top ``rerank.TOP_N`` candidates and their feature rows exactly as ``ask`` would
(``Pipeline.rerank_inputs``). Labels: 2 for a clause that answers (overlaps the gold span; for a
benchmark, comes from the gold passage and contains the answer string), 1 for another clause of
a gold benchmark passage, 0 otherwise. A question weighs 1/sqrt(questions in its set), so the
two sets of a few dozen questions over docs/ are not drowned by the 1,500 of each benchmark,
nor repeated twenty-fold.

The dev questions are cut again, by a seeded hash, into a part to fit and a part (1/5) to stop
on: the number of trees is the one with the best clause-level MRR@10 on that part, each question
weighing there as it does in training (so the 7 reading questions of the stopping part cannot
swing the choice as they did when each set counted alike); the model is then refit on all dev
questions with that number of trees. ``--without`` also fits, on the same parts, models that
lack the named groups of features, and records them beside the full one on the stopping part
and, with ``--cv K``, by K-fold cross-validation over all dev questions (each scored by a model
that never saw it; the stopping fifth holds only 7 reading and 16 labelled questions, so one of
them moves its weighted figure by a few thousandths): how features were judged before they were
kept (bench/results/ranker-features.json); ``--unconstrained`` also judges the model fitted without
the monotone constraints (``RISING``/``FALLING``). Those models are judged in parallel processes.
LightGBM runs single-threaded with ``deterministic``, so the same data give the same model. Writes qa/models/ranker.txt, its card
qa/models/ranker.json (sha256, features, parameters, data, the stopping part's figures) and
bench/results/ranker-train.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from qa import jsonl, rerank  # noqa: E402
from qa.evaluate.metrics import GOLD, answer_in_top, judge  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from tune import dev_sets  # noqa: E402

PARAMS = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [1, 3, 10], "learning_rate": 0.05,
          "num_leaves": 15, "min_data_in_leaf": 20, "feature_fraction": 0.9, "lambdarank_truncation_level": 10,
          "num_threads": 1, "deterministic": True, "force_row_wise": True, "seed": 0, "verbosity": -1}
#: Features along which a candidate's score may only rise (or only fall): a clause that matches more of the
#: question, all else equal, never ranks lower. Without these LightGBM also learns dips that fit a few dev
#: questions; with them it scored better on the stopping part and under cross-validation
#: (bench/results/ranker-features.json, "unconstrained").
RISING = ("fused", "fused_gap", "dense", "dense_norm", "bm25", "bm25_norm", "section_dense", "section_bm25_norm",
          "coverage", "bigrams", "heading_bigrams", "numbers", "asked", "asked_gap")
FALLING = ("fused_rank", "dense_rank", "bm25_rank")
PARAMS["monotone_constraints"] = [1 if f in RISING else -1 if f in FALLING else 0 for f in rerank.FEATURES]
PARAMS["monotone_constraints_method"] = "advanced"
MAX_TREES = 600
SEED = "qa-ranker-stop-1"


def label(question, clause) -> int:
    if question.answers:  # a benchmark question: passage-level gold, answer strings
        if judge(question, [clause])[0] not in question.gold_ids:
            return 0
        return 2 if answer_in_top(question, [clause], 1) else 1
    return 2 if judge(question, [clause])[0] == GOLD else 0


def gather(name: str, index_dir: Path, corpus, questions: list) -> list[dict]:
    pipe = Pipeline.open(index_dir, corpus)
    out = []
    for start in range(0, len(questions), 64):
        chunk = questions[start:start + 64]
        for q, (rows, x) in zip(chunk, pipe.rerank_inputs([q.question for q in chunk])):
            clauses = pipe.index.clauses_at(rows)
            out.append({"set": name, "qid": q.qid, "question": q.question, "x": x, "texts": [c.text for c in clauses],
                        "y": np.array([label(q, c) for c in clauses], dtype=np.int32)})
    pipe.close()
    return out


def feedback_set(path: Path) -> tuple:
    """("feedback", index folder, corpus, questions) from the accepted 👍 votes in ``path``.

    Every voted question is used (it is the site's own data, not a split of a test set); 👎 votes
    are not: a question without an answering clause teaches LambdaRank nothing.
    """
    import tempfile

    from qa import evaluate as ev
    from qa.pipeline import Corpus

    corpus = Corpus(ROOT / "docs", "folder")
    documents = corpus.load()[0]
    rows = ev.feedback_to_labels(path, documents)
    if not rows:
        raise SystemExit(f"{path}: no accepted 👍 votes for clauses of the documents in docs/")
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        labels = Path(f.name)
    jsonl.write(labels, rows)
    return "feedback", ROOT / "index/main", corpus, ev.load_labelled(labels, documents)


def mrr(groups: list[dict], scores: list[np.ndarray]) -> float:
    """Clause-level MRR@10: the first candidate labelled 2 (an answering clause)."""
    total = 0.0
    for g, s in zip(groups, scores):
        ranked = g["y"][np.argsort(-s, kind="stable")][:10]
        hits = np.flatnonzero(ranked == 2)
        total += 1.0 / (hits[0] + 1) if len(hits) else 0.0
    return total / max(1, len(groups))


def dataset(groups: list[dict], weights: dict[str, float]):
    import lightgbm

    x = np.concatenate([g["x"] for g in groups])
    y = np.concatenate([g["y"] for g in groups])
    w = np.concatenate([np.full(len(g["y"]), weights[g["set"]]) for g in groups])
    return lightgbm.Dataset(x, y, weight=w, group=[len(g["y"]) for g in groups],
                            feature_name=list(rerank.FEATURES), free_raw_data=False)


def fit(groups: list[dict], weights: dict[str, float], trees: int, params: dict = PARAMS):
    """A LambdaRank booster of ``trees`` trees on ``groups`` (deterministic: one thread, fixed seed)."""
    import lightgbm

    return lightgbm.train(params, dataset(groups, weights), num_boost_round=trees)


def fused_order(groups: list[dict]) -> list[np.ndarray]:
    """Scores that keep each group's candidates in the order given: the fused order."""
    return [-np.arange(len(g["y"]), dtype=np.float64) for g in groups]


def stopping_part(qid: str) -> bool:
    return hashlib.sha256(f"{SEED}\0{qid}".encode()).digest()[0] < 256 // 5


def per_set(groups: list[dict], scores: list[np.ndarray]) -> dict[str, float]:
    """MRR@10 per set, their plain mean, and "weighted": each question weighing 1/sqrt(its set's
    size), as in training, so a set counts by the square root of its questions."""
    names = sorted({g["set"] for g in groups})
    out, sizes = {}, {}
    for name in names:
        pick = [i for i, g in enumerate(groups) if g["set"] == name]
        sizes[name] = len(pick)
        out[name] = round(mrr([groups[i] for i in pick], [scores[i] for i in pick]), 4)
    out["mean"] = round(float(np.mean([out[n] for n in names])), 4)
    roots = {n: np.sqrt(sizes[n]) for n in names}
    out["weighted"] = round(float(sum(roots[n] * out[n] for n in names) / sum(roots.values())), 4)
    return out


def without(groups: list[dict], names: list[str]) -> list[dict]:
    """The groups with the named features' columns set to 0 (constant, so LightGBM never splits on them)."""
    columns = [rerank.FEATURES.index(n) for n in names]
    out = []
    for g in groups:
        x = g["x"].copy()
        x[:, columns] = 0.0
        out.append({**g, "x": x})
    return out


def stop_on(fitting: list[dict], stop: list[dict], weights: dict[str, float],
            params: dict = PARAMS) -> tuple[int, dict, dict]:
    """(trees, weighted MRR@10 by trees, per-set MRR@10 at those trees) of a model fitted on ``fitting``."""
    booster = fit(fitting, weights, MAX_TREES, params)
    curve = {}
    for trees in range(25, MAX_TREES + 1, 25):
        curve[trees] = per_set(stop, [booster.predict(g["x"], num_iteration=trees) for g in stop])["weighted"]
    best = max(curve, key=lambda t: (curve[t], -t))
    return best, curve, per_set(stop, [booster.predict(g["x"], num_iteration=best) for g in stop])


def cross_validated(groups: list[dict], weights: dict[str, float], trees: int, folds: int,
                    params: dict = PARAMS) -> dict:
    """Per-set and weighted MRR@10 when every dev question is scored by a model fitted on the
    other folds: a steadier judge of a feature group than the stopping fifth alone, whose few
    questions of our own sets move the weighted figure by thousandths each."""
    def fold(qid: str) -> int:
        return hashlib.sha256(f"{SEED}-cv\0{qid}".encode()).digest()[0] % folds

    scores: list = [None] * len(groups)
    for k in range(folds):
        booster = fit([g for g in groups if fold(g["qid"]) != k], weights, trees, params)
        for i, g in enumerate(groups):
            if fold(g["qid"]) == k:
                scores[i] = booster.predict(g["x"])
    return per_set(groups, scores)


_JUDGED: dict = {}  # what the judging processes read: set before they fork, so the groups are not pickled


def assess(job: tuple[list[str], dict]) -> dict:
    """The model lacking the named features (none: all) and fitted with the given parameters, on the
    stopping part and cross-validated."""
    names, params = job
    fitting, stop, groups, weights, folds = (_JUDGED[k] for k in ("fitting", "stop", "groups", "weights", "folds"))
    trees, curve, scores = stop_on(without(fitting, names), without(stop, names), weights, params)
    out = {"trees": trees, "curve": curve, "learned_mrr@10": scores}
    if folds:
        out["cross_validated_mrr@10"] = cross_validated(without(groups, names), weights, trees, folds, params)
    return out


def main() -> int:
    import lightgbm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--limit", type=int, default=1500, help="dev questions per benchmark")
    parser.add_argument("--out", type=Path, default=rerank.MODEL_DIR)
    parser.add_argument("--feedback", type=Path, default=None, metavar="FEEDBACK.jsonl",
                        help="also learn from the 👍 votes an editor accepted (index/feedback.jsonl): each "
                             "becomes a question whose gold is the voted clause, over docs/ (index/main)")
    parser.add_argument("--without", default="", metavar="NAME,...[;NAME,...]",
                        help="also judge, on the stopping part, a model lacking each ';'-separated group of "
                             "features (writes bench/results/ranker-features.json)")
    parser.add_argument("--unconstrained", action="store_true",
                        help="with --without: also judge the model fitted without the monotone constraints")
    parser.add_argument("--cv", type=int, default=0, metavar="K",
                        help="with --without: also judge each model by K-fold cross-validation over all dev questions")
    args = parser.parse_args()
    started = time.time()
    groups = []
    sets = dev_sets(args.shared, args.limit)
    if args.feedback:
        sets.append(feedback_set(args.feedback))
    for name, index_dir, corpus, questions in sets:
        groups += [g for g in gather(name, index_dir, corpus, questions) if len(g["y"])]
        print(f"{name}: {sum(g['set'] == name for g in groups)} questions", flush=True)
    counts = {name: sum(g["set"] == name for g in groups) for name in sorted({g["set"] for g in groups})}
    weights = {name: 1.0 / np.sqrt(n) for name, n in counts.items()}
    fitting = [g for g in groups if not stopping_part(g["qid"])]
    stop = [g for g in groups if stopping_part(g["qid"])]
    fused = per_set(stop, fused_order(stop))  # MRR@10 of the fused order on the stopping part
    groups_lacking = [part.split(",") for part in args.without.split(";")] if args.without else []
    free = {k: v for k, v in PARAMS.items() if not k.startswith("monotone")}
    jobs = [([], PARAMS)] + [(names, PARAMS) for names in groups_lacking] + (
        [([], free)] if args.without and args.unconstrained else [])
    _JUDGED.update(fitting=fitting, stop=stop, groups=groups, weights=weights, folds=args.cv)
    if len(jobs) == 1:
        judged = [assess(jobs[0])]
    else:  # one process per model judged (each fit is single-threaded and deterministic: this only saves time)
        with ProcessPoolExecutor(max_workers=min(len(jobs), len(os.sched_getaffinity(0))),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            judged = list(pool.map(assess, jobs))
    best, curve, learned = judged[0]["trees"], judged[0]["curve"], judged[0]["learned_mrr@10"]
    if args.without:
        keep = ("trees", "learned_mrr@10", "cross_validated_mrr@10")
        lacking = {",".join(names): {k: j[k] for k in keep if k in j}
                   for names, j in zip(groups_lacking, judged[1:1 + len(groups_lacking)])}
        ablation = {"command": "python bench/train_ranker.py " + " ".join(sys.argv[1:]),
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "questions": len(stop),
                    "dev_questions": len(groups), "folds": args.cv,
                    "fused_mrr@10": fused,
                    # what the cross-validated figures compare with: the fused order over all dev questions
                    "fused_all_dev_mrr@10": per_set(groups, fused_order(groups)),
                    "all_features": {k: judged[0][k] for k in keep if k in judged[0]}, "without": lacking}
        if len(judged) > 1 + len(groups_lacking):
            ablation["unconstrained"] = {k: judged[-1][k] for k in keep if k in judged[-1]}
        (ROOT / "bench/results/ranker-features.json").write_text(
            json.dumps(ablation, indent=1, ensure_ascii=False), encoding="utf-8")
        print(json.dumps(ablation), flush=True)
    final = fit(groups, weights, best)
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "ranker.txt"
    model.write_text(final.model_to_string(), encoding="utf-8")
    card = {
        "what": "LightGBM LambdaRank over the fused top candidates (qa/rerank.py)",
        "command": "python bench/train_ranker.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": f"{platform.machine()} cores={len(os.sched_getaffinity(0))}",
        "lightgbm": lightgbm.__version__, "seconds": round(time.time() - started, 1),
        "sha256": rerank.file_sha256(model), "features": list(rerank.FEATURES), "top_n": rerank.TOP_N,
        "params": PARAMS, "trees": best,
        "data": {"dev_questions": counts, "weights": {k: round(v, 5) for k, v in weights.items()},
                 "sources": "dev parts only (qa/evaluate/splits.py): docs/eval/questions.jsonl and reading.jsonl "
                            "(this project's), cmrc2018 (CC BY-SA 4.0, Cui et al. 2019) and drcd_zhs "
                            "(CC BY-SA 3.0, Shao et al. 2018) from ../shared/benchmarks"},
        "stopping_part": {"questions": len(stop), "fused_mrr@10": fused, "learned_mrr@10": learned,
                          "weighted_by_trees": curve},
    }
    (args.out / "ranker.json").write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    results = ROOT / "bench/results/ranker-train.json"
    results.write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({"trees": best, "fused": card["stopping_part"]["fused_mrr@10"], "learned": learned}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
