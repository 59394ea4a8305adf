"""Passage-level comparison: our clause ranking against whole-passage baselines.

A person who asks about a topic is served when the first result comes from the right passage.
Here a passage is a section (``qa.sections``: a document cut at its first heading levels; a
benchmark passage or a newspaper article is one section). The gold passage of a question is
the section of its gold evidence (labelled sets; metadata questions are left out) or its gold
passage (benchmarks). Three rankings of passages are compared on the same questions:

* ours: the hybrid clause ranking, each clause standing for its section, counted once;
* dense: the same encoders, embedding each whole passage (truncated by the model at 512 tokens);
* bigram BM25: Lucene BM25 over character bigrams of each whole passage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..encoders import load_encoder
from ..encoders.cache import encode_passages, encode_queries
from ..errors import QAError
from ..pipeline import Pipeline, cache_for
from ..sparse import SparseIndex
from .datasets import Question
from .metrics import compute

DEPTH = 10


def bigrams(text: str) -> list[str]:
    """Character bigrams of the non-space characters (a single character stays itself)."""
    chars = [c for c in text if not c.isspace()]
    return [a + b for a, b in zip(chars, chars[1:])] or chars


def passages(pipe: Pipeline) -> tuple[dict[int, str], dict[int, str]]:
    """Every live section's text (document text from its first to its last clause), and the
    document id of each section. Cards are left out."""
    index = _local(pipe)
    spans: dict[int, list[int]] = {}
    docs: dict[int, str] = {}
    for rows in (index.rows_of_documents([d]) for d in index.documents):
        for row in rows.tolist():
            clause = index.clauses[row]
            if clause.kind != "clause":
                continue
            s = int(index.row_section[row])
            lo, hi = spans.get(s, [clause.start, clause.end])
            spans[s] = [min(lo, clause.start), max(hi, clause.end)]
            docs[s] = clause.doc_id
    texts = {s: index.documents[docs[s]].text[lo:hi] for s, (lo, hi) in spans.items()}
    return texts, docs


def _local(pipe: Pipeline):
    """The local index (a query server reading Milvus has no document texts to cut passages from)."""
    if pipe.writer is None:
        raise QAError("--passages needs the index folder (document texts): run it where the index is built")
    return pipe.writer


def gold_sections(pipe: Pipeline, question: Question, docs: dict[int, str]) -> set[int]:
    index = _local(pipe)
    if question.gold_ids:
        wanted = set(question.gold_ids)
        return {s for s, d in docs.items() if d in wanted or index.documents[d].meta.get("source_id") in wanted}
    out = set()
    for span in question.spans:
        for row in index.rows_of_documents([span.doc_id]).tolist():
            c = index.clauses[row]
            if c.kind == "clause" and span.overlaps(c.doc_id, c.start, c.end):
                out.add(int(index.row_section[row]))
    return out


def compare(pipe: Pipeline, questions: Sequence[Question], batch: int = 64) -> dict[str, Any]:
    """MRR@10, R@1, R@5 at passage level for ours, whole-passage dense and bigram BM25."""
    texts, docs = passages(pipe)
    ids = sorted(texts)
    asked = [q for q in questions if q.type != "metadata"]
    gold = {q.qid: gold_sections(pipe, q, docs) for q in asked}
    asked = [q for q in asked if gold[q.qid]]
    judged = [Question(qid=q.qid, question=q.question, gold_ids=tuple(str(s) for s in gold[q.qid])) for q in asked]

    ours: dict[str, list[str]] = {}
    for start in range(0, len(asked), batch):
        chunk = asked[start:start + batch]
        for q, answer in zip(chunk, pipe.ask_many([q.question for q in chunk], k=50, mode="hybrid")):
            rows = [_local(pipe).row_of(h.clause.clause_id) for h in answer.hits if h.clause.kind == "clause"]
            ours[q.qid] = list(dict.fromkeys(str(int(_local(pipe).row_section[r])) for r in rows if r >= 0))[:DEPTH]

    cache = cache_for(pipe.index_dir)
    try:
        encoder = load_encoder(pipe.index.config.encoder)
        passage_vectors = encode_passages(encoder, [texts[s] for s in ids], cache)
        question_vectors = encode_queries(pipe.encoder, [q.question for q in asked], cache)
    finally:
        cache.close()
    sims = question_vectors @ passage_vectors.T
    dense = {q.qid: [str(ids[i]) for i in np.argsort(-sims[n], kind="stable")[:DEPTH]] for n, q in enumerate(asked)}

    bm25 = SparseIndex.build([bigrams(texts[s]) for s in ids])
    lexical = {}
    for q in asked:
        scores, rows = bm25.search(bigrams(q.question), DEPTH)
        lexical[q.qid] = [str(ids[r]) for r in rows]

    out: dict[str, Any] = {"questions": len(asked), "passages": len(ids),
                           "unit": "section (a benchmark passage, an article, or a document cut at its first "
                                   "two heading levels)", "systems": {}}
    for name, run in (("ours (hybrid clauses -> passage)", ours), ("dense over whole passages", dense),
                      ("character-bigram BM25 over whole passages", lexical)):
        means, _ = compute(judged, run, (1, 5), depth=DEPTH)
        out["systems"][name] = means
    return out
