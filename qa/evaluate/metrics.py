"""Judging ranked clauses against gold labels, and retrieval metrics through ranx.

Runs and qrels use the standard shapes (``{qid: {doc: score}}`` / ``{qid: {doc: relevance}}``).
A clause is mapped to the unit the gold is stated in before scoring:

* our set: "GOLD" when the clause overlaps a gold span, else its own clause id — so a
  question is answered at the first rank whose clause overlaps a gold span;
* benchmarks: the passage id the clause came from; several clauses of one passage count
  once, at their best rank.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Clause
from .datasets import Question

GOLD = "GOLD"


def judge(question: Question, clauses: Sequence[Clause]) -> list[str]:
    """The ranked, de-duplicated units the clauses stand for (see the module docstring)."""
    units, seen = [], set()
    for clause in clauses:
        if question.spans or question.cards:
            hit = (clause.doc_id in question.cards if clause.kind == "card"
                   else any(g.overlaps(clause.doc_id, clause.start, clause.end) for g in question.spans))
            unit = GOLD if hit else clause.clause_id
        else:
            unit = clause.source_id or clause.doc_id
        if unit not in seen:
            seen.add(unit)
            units.append(unit)
    return units


def qrels_of(questions: Sequence[Question]) -> dict[str, dict[str, int]]:
    return {q.qid: ({GOLD: 1} if q.spans or q.cards else {g: 1 for g in q.gold_ids}) for q in questions}


def run_of(units_by_qid: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Ranked lists -> a run whose scores keep the ranking (1, 1/2, 1/3, ...)."""
    return {qid: {unit: 1.0 / rank for rank, unit in enumerate(units, 1)} for qid, units in units_by_qid.items()}


def first_relevant(question: Question, units: Sequence[str]) -> int | None:
    """1-based rank of the first relevant unit, or None."""
    relevant = {GOLD} if question.spans or question.cards else set(question.gold_ids)
    return next((rank for rank, unit in enumerate(units, 1) if unit in relevant), None)


def metric_names(ks: Sequence[int], depth: int = 10) -> list[str]:
    return [f"recall@{k}" for k in ks] + [f"mrr@{depth}", f"ndcg@{depth}"]


def compute(questions: Sequence[Question], units_by_qid: dict[str, list[str]], ks: Sequence[int],
            depth: int = 10) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean metrics and per-question metrics, computed by ranx.

    Returns:
        (means {metric: value}, per question {qid: {metric: value}})
    """
    import warnings

    from ranx import Qrels, Run, evaluate

    names = metric_names(ks, depth)
    qrels = Qrels(qrels_of(questions))
    run = Run(run_of({q.qid: units_by_qid.get(q.qid, []) for q in questions}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's cast warnings inside ranx
        means = evaluate(qrels, run, names, make_comparable=True)
        per = evaluate(qrels, run, names, return_mean=False, make_comparable=True)
    qids = list(qrels.keys())
    per_question = {qid: {name: float(per[name][i]) for name in names} for i, qid in enumerate(qids)}
    return {name: float(value) for name, value in means.items()}, per_question


def answer_in_top(question: Question, clauses: Sequence[Clause], k: int) -> bool:
    """Benchmarks' stricter measure: a top-k clause contains one of the answer strings."""
    return any(answer and answer in clause.text for clause in clauses[:k] for answer in question.answers)
