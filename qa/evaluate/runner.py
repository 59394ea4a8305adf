"""Run labelled questions through a pipeline in every mode and collect metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .. import rerank
from ..pipeline import Pipeline
from .datasets import Question
from .metrics import answer_in_top, compute, first_relevant, judge

#: Clauses fetched per question: several clauses of one passage collapse into one unit.
FETCH = 50


def run_eval(pipe: Pipeline, questions: Sequence[Question], name: str, modes: Sequence[str] = ("hybrid", "dense", "bm25"),
             ks: Sequence[int] = (1, 3, 5, 10), batch: int = 64) -> dict[str, Any]:
    """Evaluate every mode on the same questions.

    Returns:
        A JSON-able report: metrics per mode, per-question ranks, timings, and the index
        manifest and config it measured.
    """
    report: dict[str, Any] = {
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "questions": len(questions),
        "ks": list(ks),
        "modes": {},
        "per_question": {},
        "index": _manifest_summary(pipe.index.manifest),
        "search": _search_summary(pipe),
    }
    depth = max(10, max(ks))
    for mode in modes:
        started = time.perf_counter()
        units, per_q = {}, []
        answer_hits = {k: 0 for k in ks}
        for start in range(0, len(questions), batch):
            chunk = questions[start:start + batch]
            answers = pipe.ask_many([q.question for q in chunk], k=FETCH, mode=mode)
            for q, answer in zip(chunk, answers):
                clauses = [h.clause for h in answer.hits]
                units[q.qid] = judge(q, clauses)[:depth]
                if q.answers:
                    for k in ks:
                        answer_hits[k] += answer_in_top(q, clauses, k)
                first = answer.hits[0] if answer.hits else None
                per_q.append({
                    "qid": q.qid, "question": q.question, "type": q.type, "lang": q.lang,
                    "rank": first_relevant(q, units[q.qid]),
                    "gold": list(q.quotes or q.gold_ids),
                    "first": None if first is None else {"clause_id": first.clause.clause_id,
                                                         "text": first.clause.text, "citation": str(first.citation)},
                })
        seconds = time.perf_counter() - started
        means, _ = compute(questions, units, ks, depth=10)
        entry: dict[str, Any] = {"metrics": means, "seconds": round(seconds, 3),
                                 "ms_per_question": round(1000 * seconds / max(1, len(questions)), 3)}
        if any(q.answers for q in questions):
            entry["answer_in"] = {f"answer@{k}": answer_hits[k] / len(questions) for k in ks}
        report["modes"][mode] = entry
        report["per_question"][mode] = per_q
    report["by_type"] = _by_type(report, ks)
    return report


def _by_type(report: dict[str, Any], ks: Sequence[int]) -> dict[str, dict[str, dict[str, float]]]:
    """Recall@k per question type and mode, from the ranks (for our set's mixed question kinds)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode, rows in report["per_question"].items():
        kinds = sorted({r["type"] for r in rows if r["type"]})
        for kind in kinds:
            sel = [r for r in rows if r["type"] == kind]
            out.setdefault(kind, {})[mode] = {
                "n": len(sel), **{f"recall@{k}": sum(1 for r in sel if r["rank"] and r["rank"] <= k) / len(sel)
                                  for k in ks}}
    return out


def _manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    keep = ("format_version", "package", "created", "config", "encoder", "tokenizer", "corpus", "counts", "seconds")
    return {k: manifest.get(k) for k in keep}


def calibrate(pipe: Pipeline, questions: Sequence[Question], offtopic: Sequence[str]) -> dict[str, Any]:
    """How the "nothing matches" line behaves: answerable questions wrongly refused, and
    off-topic questions refused, plus the top-1 cosine percentiles a floor is chosen from."""
    import numpy as np

    answerable = pipe.ask_many([q.question for q in questions], k=1)
    tops = np.array([a.hits[0].dense for a in answerable if a.hits and a.hits[0].dense is not None])
    out: dict[str, Any] = {
        "top1_cosine_percentiles": {p: round(float(np.percentile(tops, p)), 4) for p in (1, 2, 5, 10, 50)}
        if len(tops) else {},
        "answerable_refused": sum(not a.confident for a in answerable) / max(1, len(answerable)),
    }
    if offtopic:
        refused = [not a.confident for a in pipe.ask_many(list(offtopic), k=1)]
        out["offtopic_refused"] = sum(refused) / len(refused)
        out["offtopic_questions"] = len(refused)
    return out


def _search_summary(pipe: Pipeline) -> dict[str, Any]:
    """The search settings measured, with the learned ranker's checksum when it was on."""
    settings = asdict(pipe.search_config)
    if settings["rerank"] != "off":
        settings["ranker_sha256"] = rerank.shipped().card["sha256"]
    return settings
