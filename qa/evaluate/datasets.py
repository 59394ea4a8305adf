"""Labelled questions: our own set (gold = quoted text spans) and benchmark sets (gold = passage ids).

Our labels quote the cleaned text instead of naming clause ids, so they survive any change
to the chunker; the quotes are resolved to character offsets when the set is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import jsonl
from ..errors import QAError
from ..types import Document
from .splits import split_of


class GoldMissing(QAError):
    """A gold quote no longer occurs in the documents."""


@dataclass(frozen=True)
class GoldSpan:
    doc_id: str
    start: int
    end: int

    def overlaps(self, doc_id: str, start: int, end: int) -> bool:
        return doc_id == self.doc_id and start < self.end and self.start < end


@dataclass(frozen=True)
class Question:
    """One labelled question.

    Attributes:
        spans: gold text spans (our set): a clause overlapping any of them answers.
        cards: documents whose card answers (a question about a document's metadata).
        gold_ids: gold passage ids (benchmarks): a clause from any of them answers.
        answers: answer strings of the benchmark's reading-comprehension task.
        quotes: the gold quotes as written in the label file (for reports).
    """

    qid: str
    question: str
    spans: tuple[GoldSpan, ...] = ()
    gold_ids: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    type: str = ""
    lang: str = ""
    cards: tuple[str, ...] = ()
    split: str = ""
    extra: dict = field(default_factory=dict, compare=False)


def resolve_quote(quote: str, source: str, documents: Iterable[Document]) -> list[GoldSpan]:
    """Every place the quote occurs in the documents that came from file ``source``."""
    spans = []
    for doc in documents:
        if doc.source != source and doc.doc_id != source:
            continue
        start = doc.text.find(quote)
        while start >= 0:
            spans.append(GoldSpan(doc.doc_id, start, start + len(quote)))
            start = doc.text.find(quote, start + 1)
    return spans


def resolve_meta(gold: dict, documents: Iterable[Document]) -> tuple[list[str], list[GoldSpan]]:
    """A metadata gold ({"source", "doc_id", "meta": key}): the document's card answers, and so
    does a clause of that document that states the value itself (a reporter's name in the text)."""
    cards, spans = [], []
    for doc in documents:
        if doc.doc_id != gold.get("doc_id") or not doc.meta.get(gold["meta"]):
            continue
        cards.append(doc.doc_id)
        spans.extend(resolve_quote(str(doc.meta[gold["meta"]]), doc.doc_id, [doc]))
    return cards, spans


def load_labelled(path: Path, documents: Sequence[Document]) -> list[Question]:
    """Load a labelled set and resolve its quotes and metadata gold.

    A gold entry is a quote ({"source", "quote"}: the text, found in the cleaned documents of
    that source file) or a metadata field ({"source", "doc_id", "meta": key}).

    Raises:
        GoldMissing: listing every quote that is not found, so a cleaning change that
            breaks labels fails loudly instead of silently lowering the scores.
    """
    questions, missing = [], []
    for row in jsonl.read(path):
        spans: list[GoldSpan] = []
        cards: list[str] = []
        for gold in row.get("gold", []):
            if "meta" in gold:
                found_cards, found = resolve_meta(gold, documents)
                if not found_cards:
                    missing.append(f"{row['qid']}: {gold.get('doc_id')}: metadata {gold['meta']!r}")
                cards.extend(found_cards)
            else:
                found = resolve_quote(gold["quote"], gold["source"], documents)
                if not found:
                    missing.append(f"{row['qid']}: {gold['source']}: 「{gold['quote']}」")
            spans.extend(found)
        qid = str(row["qid"])
        questions.append(Question(qid=qid, question=row["question"], spans=tuple(spans),
                                  quotes=tuple(g.get("quote") or f"[{g['meta']}]" for g in row.get("gold", [])),
                                  type=row.get("type", ""), lang=row.get("lang", ""), cards=tuple(cards),
                                  split=labelled_part(row, f"{path}: {qid}")))
    if missing:
        raise GoldMissing(f"{len(missing)} gold quote(s) not found in the cleaned documents:\n  " + "\n  ".join(missing))
    return questions


def load_benchmark(folder: Path, limit: int | None = None) -> list[Question]:
    """Questions of a benchmark folder (``questions.jsonl`` with gold_ids and answers).

    Args:
        limit: keep an evenly spread subset of this many questions (for quick runs).
    """
    path = Path(folder) / "questions.jsonl"
    rows = jsonl.read(path)
    for n, row in enumerate(rows, 1):
        _check_benchmark_row(row, f"{path}: question {n}")
    if limit and limit < len(rows):
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return [Question(qid=str(r["qid"]), question=r["question"], gold_ids=tuple(map(str, r["gold_ids"])),
                     answers=tuple(r.get("answers", ())), type=r.get("split", ""), lang="zh",
                     split=benchmark_part(r)) for r in rows]


def _check_benchmark_row(row, where: str) -> None:
    """A clear error for a question line the layout does not allow (a judge's own set, say)."""
    if not isinstance(row, dict):
        raise QAError(f"{where}: not a JSON object")
    missing = [key for key in ("qid", "question", "gold_ids") if key not in row]
    if missing:
        raise QAError(f"{where}: missing {', '.join(missing)} (each line needs qid, question and gold_ids: "
                      "the ids of the passages in passages.jsonl that answer it)")
    if not isinstance(row["question"], str) or not row["question"].strip():
        raise QAError(f"{where}: the question is empty or not text")
    gold = row["gold_ids"]
    if not isinstance(gold, list) or not gold:
        raise QAError(f"{where}: gold_ids must be a non-empty list of passage ids")
    answers = row.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise QAError(f"{where}: answers must be a list of strings")
    fixed_part(row, f"{where} ({row['qid']!r})")


def fixed_part(row: dict, where: str) -> str | None:
    """The part a question line fixes for itself ("part": "dev" or "test"; a set kept whole for
    testing, or a pool rebuilt from another set keeping that set's parts), or None."""
    part = row.get("part")
    if part is not None and part not in ("dev", "test"):
        raise QAError(f"{where}: \"part\" must be \"dev\" or \"test\", not {part!r}")
    return part


def labelled_part(row: dict, where: str) -> str:
    """A labelled question's part: its own "part" field where the line fixes one, else by its qid."""
    return fixed_part(row, where) or split_of(str(row["qid"]))


def benchmark_part(row: dict) -> str:
    """A benchmark question's part: its own "part" field where the folder fixes one, else by its
    first gold passage, so that the questions of one passage never sit on both sides."""
    return row.get("part") or split_of(str(row["gold_ids"][0]))


def check_gold_in_pool(questions: Sequence[Question], pool: Path) -> None:
    """Raise GoldMissing when a question's gold passages are none of the pool's ids: such a
    question could only ever score zero, which reads as a retrieval failure, not a data error."""
    ids = {str(row.get("id")) for row in jsonl.read(pool) if isinstance(row, dict)}
    orphans = [q for q in questions if not ids.intersection(q.gold_ids)]
    if orphans:
        shown = ", ".join(f"{q.qid} ({', '.join(q.gold_ids[:3])})" for q in orphans[:5])
        raise GoldMissing(f"{len(orphans)} of {len(questions)} questions name no passage of {pool}: {shown}"
                          f"{' …' if len(orphans) > 5 else ''}; check that gold_ids use the passages' \"id\" values")


def merge_pools(folders: Sequence[Path], target: Path) -> Path:
    """Write the passages of several benchmark folders into one pool file (if it changed)."""
    parts = [(Path(f) / "passages.jsonl").read_bytes() for f in folders]
    data = b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_bytes() != data:
        target.write_bytes(data)
    return target


def feedback_to_labels(path: Path, documents: Sequence[Document]) -> list[dict]:
    """Turn the 👍 votes an editor accepted into labelled questions (the clause is the gold quote).

    Votes not yet reviewed, rejected ones, 👎 votes and votes for clauses of documents no longer
    indexed (or whose text changed) are left out: anyone may vote, only reviewed votes are gold.

    Returns:
        Rows in the labelled-set format, ready to be written as JSON lines.
    """
    from ..feedback import Feedback

    by_doc = {d.doc_id: d for d in documents}
    labels: dict[str, dict] = {}
    for row in sorted(Feedback(path).accepted(), key=lambda r: r.get("time", "")):
        doc = by_doc.get(row.get("doc_id") or "")
        if row.get("vote") != "up" or doc is None or not row.get("text") or row["text"] not in doc.text:
            continue
        question = row["question"]
        entry = labels.setdefault(question, {"qid": f"fb{len(labels) + 1:04d}", "question": question, "gold": [],
                                             "type": "feedback", "lang": "en" if question.isascii() else "zh"})
        if not any(g["quote"] == row["text"] for g in entry["gold"]):
            entry["gold"].append({"source": doc.source, "quote": row["text"]})
    return list(labels.values())
