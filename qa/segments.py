"""Segment storage: the clauses of one index segment on disk, read on demand.

A segment folder holds clauses.jsonl (+ offsets), the rows' documents, BM25 postings, the rows'
sections and the sections' mean vectors (.npy). Rows of a segment are numbered from 0; an
index's row is its segment's offset plus that number (see ``qa.retrieval``).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from . import sections
from .sparse import Postings
from .types import Clause


class Segment:
    """The clauses of one segment, read from disk on demand (a million clauses stay on disk).

    Files: clauses.jsonl, clauses.offsets.npy (byte offset of each line, then the file
    size), row_doc.npy (per row, an index into doc_ids.json), the BM25 postings,
    row_section.npy (per row, its section in this segment) and section_vectors.npy.
    """

    def __init__(self, folder: Path, doc_ids: list[str], row_doc: np.ndarray, postings: Postings,
                 row_section: np.ndarray, section_vectors: np.ndarray, clauses: list[Clause] | None = None) -> None:
        self.folder = folder
        self.doc_ids = doc_ids
        self.row_doc = row_doc
        self.postings = postings
        self.row_section = row_section
        self.section_vectors = section_vectors
        self._clauses = clauses
        self._map: mmap.mmap | None = None
        self._offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.row_doc)

    def clause(self, row: int) -> Clause:
        if self._clauses is not None:
            return self._clauses[row]
        if self._map is None:  # offsets first: another thread reads them as soon as the map is set
            self._offsets = np.load(self.folder / "clauses.offsets.npy", allow_pickle=False)
            with open(self.folder / "clauses.jsonl", "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(
                    self.folder / "clauses.jsonl") else None
        start, end = int(self._offsets[row]), int(self._offsets[row + 1])
        return Clause.from_json(json.loads(self._map[start:end]))

    @staticmethod
    def write(folder: Path, clauses: Sequence[Clause], postings: Postings, vectors: np.ndarray) -> "Segment":
        folder.mkdir(parents=True)
        offsets = [0]
        with open(folder / "clauses.jsonl", "wb") as handle:
            for c in clauses:
                line = (json.dumps(c.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
                handle.write(line)
                offsets.append(offsets[-1] + len(line))
        np.save(folder / "clauses.offsets.npy", np.asarray(offsets, dtype=np.int64), allow_pickle=False)
        doc_ids = list(dict.fromkeys(c.doc_id for c in clauses))
        where = {d: i for i, d in enumerate(doc_ids)}
        row_doc = np.asarray([where[c.doc_id] for c in clauses], dtype=np.int32)
        np.save(folder / "row_doc.npy", row_doc, allow_pickle=False)
        (folder / "doc_ids.json").write_text(json.dumps(doc_ids, ensure_ascii=False), encoding="utf-8")
        postings.save(folder)
        row_section, n_sections = sections.assign(clauses)
        section_vectors = sections.mean_vectors(row_section, n_sections, vectors)
        np.save(folder / "row_section.npy", row_section, allow_pickle=False)
        np.save(folder / "section_vectors.npy", section_vectors, allow_pickle=False)
        return Segment(folder, doc_ids, row_doc, postings, row_section, section_vectors, list(clauses))

    @classmethod
    def load(cls, folder: Path) -> "Segment":
        doc_ids = json.loads((folder / "doc_ids.json").read_text(encoding="utf-8"))
        return cls(folder, doc_ids, np.load(folder / "row_doc.npy", allow_pickle=False), Postings.load(folder),
                   np.load(folder / "row_section.npy", allow_pickle=False),
                   np.load(folder / "section_vectors.npy", allow_pickle=False))


class ClauseView(Sequence[Clause]):
    """All clauses of an index in row order (deleted rows included, as FAISS sees them)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.offsets = np.cumsum([0] + [len(s) for s in segments])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        s = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return self.segments[s].clause(row - int(self.offsets[s]))

    def __iter__(self) -> Iterator[Clause]:
        for segment in self.segments:
            for i in range(len(segment)):
                yield segment.clause(i)
