"""What a question sees of an index, whichever store holds it: the one search interface.

Two stores implement it: ``qa.index.Index`` (FAISS + BM25 postings + clause files in a folder)
and ``qa.backends.remote.RemoteIndex`` (everything in Milvus, nothing local). The pipeline
picks one when it opens and never asks which it has.

A store offers:

- ``select(selection)``: the store's own form of a filter (rows for the local store, an
  expression for Milvus), or None for no filter;
- ``search_dense(vectors, k, where)`` -> per query, ``Candidate`` rows by cosine;
- ``lexical(question, tokens, sections)`` -> a ``Lexical``: BM25 of the question against the
  clauses (and their sections), with ``top(k, where)``, ``clauses(rows)``, ``sections(rows)``;
- ``similarities(vector, rows)`` and ``section_similarities(vector, rows)``: cosines;
- ``clauses_at(rows)``, ``neighbours(clause_id)``, ``row_of(clause_id)``;
- ``documents`` (doc_id -> Document), ``clause_counts()``, ``coverage(question)``, ``lexicon``,
  ``manifest``, ``config``.

Rows: a row number names one clause (or card) in both stores: it is the FAISS id, the position
in the segments, and the Milvus primary key. The rule is enforced where rows are made, in
``qa.index`` (row ``i`` = segment offset + position in the segment; removed rows stay as
tombstones until a compaction renumbers everything, which in Milvus is a new collection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

#: "2024-09-14", "2024年9月14日", "2024.9.14", "2024/09/14"
_DATE = re.compile(r"(\d{4})\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})")


def document_date(meta: Mapping[str, Any]) -> str:
    """The date a document is cited with: published, else written, else the date in its text."""
    return str(meta.get("published") or meta.get("written") or meta.get("date") or meta.get("signed_date", ""))


def day_number(text: str) -> int:
    """A date as YYYYMMDD (0 when it has no full year-month-day): what date filters compare."""
    found = _DATE.search(text or "")
    if not found:
        return 0
    year, month, day = (int(x) for x in found.groups())
    return year * 10000 + month * 100 + day if 1 <= month <= 12 and 1 <= day <= 31 else 0


@dataclass(frozen=True)
class Selection:
    """Which documents a question searches: by id, by issuing agency, by date (inclusive).

    Empty fields do not filter. With ``since`` or ``until`` a document without a full date
    is left out. Dates are "YYYY-MM-DD" (or anything ``day_number`` reads).
    """

    doc_ids: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    since: str = ""
    until: str = ""

    def __post_init__(self) -> None:
        from .errors import QAError

        for name in ("since", "until"):
            value = getattr(self, name)
            if value and not day_number(value):
                raise QAError(f"--{name} {value!r} is not a date: write it as YYYY-MM-DD")
        object.__setattr__(self, "doc_ids", tuple(self.doc_ids))
        object.__setattr__(self, "agencies", tuple(a for a in self.agencies if a))

    def __bool__(self) -> bool:
        return bool(self.doc_ids or self.agencies or self.since or self.until)

    @property
    def days(self) -> tuple[int, int]:
        """(first, last) day as YYYYMMDD; 0 / 99991231 when open."""
        return day_number(self.since) if self.since else 0, day_number(self.until) if self.until else 99991231

    def admits(self, doc_id: str, meta: Mapping[str, Any]) -> bool:
        """Whether a document passes (the local store's filter; Milvus gets the same as an expression)."""
        if self.doc_ids and doc_id not in self.doc_ids:
            return False
        if self.agencies and meta.get("agency", "") not in self.agencies:
            return False
        if self.since or self.until:
            first, last = self.days
            day = day_number(document_date(meta))
            return bool(day) and first <= day <= last
        return True
