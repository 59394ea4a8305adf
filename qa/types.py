"""The objects that travel through the system: documents, clauses, hits.

All are frozen dataclasses with plain JSON-able fields, so they can be written to the
index folder as JSON lines and read back without pickle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Heading:
    """A numbered or titled heading inside a document.

    Attributes:
        level: depth in the numbering ladder (0 = article headline, 1 = 一、, 2 = （一）, ...).
        label: the numbering marker as written ("一、", "（三）", "二是", "第五条"), or "".
        text: the heading as written in the document, marker included.
        start, end: character span of the heading in the cleaned document text.
    """

    level: int
    label: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """A cleaned source document.

    A source file usually gives one document; a newspaper page gives one per article.

    Attributes:
        doc_id: stable id derived from the file name (plus "-N" for the N-th article of a page).
        title: the document's title or the article's headline.
        text: the cleaned text; clause spans index into it.
        source: the file name under the docs folder it came from.
        meta: metadata found in the text: agency (发布机构), written/published dates (成文日期,
            发布日期), the date in the text, number (发文字号), index_no (索引号), kicker, author.
        headings: the headings found in ``text``, in order.
    """

    doc_id: str
    title: str
    text: str
    source: str
    meta: dict[str, str] = field(default_factory=dict)
    headings: tuple[Heading, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Document":
        heads = tuple(Heading(**h) for h in data.get("headings", ()))
        return cls(**{**data, "headings": heads})


@dataclass(frozen=True)
class Clause:
    """The unit of retrieval: one sentence or clause of a document.

    Attributes:
        clause_id: ``doc_id#NNNN``, numbered in document order; stable while the document is.
        doc_id: the document it belongs to.
        text: exactly ``document.text[start:end]``.
        start, end: character span in the cleaned document text.
        heading: the heading path, outermost first, without the document title.
        position: 1-based position of the clause under its innermost heading.
        source_id: for benchmark pools, the passage id the clause came from.
        kind: "clause" (a span of the text) or "card" (the document's metadata as one
            searchable row: title, agency, dates, numbers; not a span, so start == end == 0).
    """

    clause_id: str
    doc_id: str
    text: str
    start: int
    end: int
    heading: tuple[str, ...] = ()
    position: int = 1
    source_id: str = ""
    kind: str = "clause"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Clause":
        return cls(**{**data, "heading": tuple(data.get("heading", ()))})


@dataclass(frozen=True)
class Citation:
    """Where a clause stands: enough to find it again in the original document."""

    title: str
    heading: tuple[str, ...]
    position: int
    agency: str = ""
    date: str = ""
    source: str = ""

    def __str__(self) -> str:
        parts = [f"《{self.title}》"]
        if self.heading:
            parts.append(" ".join(_short_heading(h) for h in self.heading))
        if self.position:  # a document card (position 0) stands for the whole document
            parts.append(f"第{self.position}句")
        text = " ".join(parts)
        tail = "，".join(x for x in (self.agency, self.date) if x)
        return f"{text}（{tail}）" if tail else text


def _short_heading(heading: str) -> str:
    """A heading as it reads in a citation: long headings are cut after their marker."""
    return heading if len(heading) <= 24 else heading[:24] + "…"


@dataclass(frozen=True)
class Hit:
    """One ranked answer passage.

    Attributes:
        rank: 1-based rank in the result list.
        score: the fused score in hybrid mode, cosine similarity in dense mode, BM25 in bm25 mode.
        clause: the clause found.
        citation: where it stands.
        dense: cosine similarity of the clause to the question (None if not computed).
        bm25: BM25 score of the clause (None if not computed).
    """

    rank: int
    score: float
    clause: Clause
    citation: Citation
    dense: float | None = None
    bm25: float | None = None

    def to_json(self) -> dict[str, Any]:
        c = self.clause
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "clause_id": c.clause_id,
            "doc_id": c.doc_id,
            "source_id": c.source_id,
            "text": c.text,
            "heading": list(c.heading),
            "span": [c.start, c.end],
            "kind": c.kind,
            "citation": str(self.citation),
            "title": self.citation.title,
            "agency": self.citation.agency,
            "date": self.citation.date,
            "dense": None if self.dense is None else round(float(self.dense), 6),
            "bm25": None if self.bm25 is None else round(float(self.bm25), 6),
        }


#: What an interface says over the hits of an answer that is not ``confident``.
NOT_CONFIDENT = ("没有找到足够相关的条款：下面是最接近的结果，请谨慎参考。"
                 "(Nothing matches well; the closest clauses follow.)")


@dataclass(frozen=True)
class Answer:
    """The result of one question: ranked hits plus notes for the user (e.g. truncation).

    ``confident`` is False when even the best hit falls under the measured match line (``Pipeline._confident``):
    the interface then says that nothing matches well instead of presenting the hits.
    """

    question: str
    mode: str
    hits: tuple[Hit, ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    confident: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "mode": self.mode,
            "notes": list(self.notes),
            "confident": self.confident,
            "seconds": round(self.seconds, 4),
            "hits": [h.to_json() for h in self.hits],
        }
