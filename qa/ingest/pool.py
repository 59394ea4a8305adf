"""Benchmark passage pools: JSON lines of {"id", "title", "text"}, one document per passage."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import QAError
from ..types import Document
from .clean import normalize


def load_pool(path: Path) -> list[Document]:
    """Read a passage pool; each passage id is kept as ``source_id`` on its clauses.

    The text is normalised (control characters, spaces) but not re-laid-out: pool passages
    are single paragraphs already.
    """
    documents = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pid, text = str(row["id"]), str(row["text"])
            except (ValueError, KeyError, TypeError) as exc:
                raise QAError(f"{path}:{n}: not a passage line with id and text ({exc})") from exc
            if pid in seen:
                continue
            seen.add(pid)
            clean = " ".join(normalize(text).split("\n")).strip()
            if clean:
                documents.append(Document(doc_id=pid, title=str(row.get("title") or pid), text=clean,
                                          source=path.name, meta={"source_id": pid, "kind": "passage"}))
    return documents
