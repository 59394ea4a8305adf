"""Shared fixtures: the real corpus in docs/, a tiny corpus in tests/data, indexes built once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DATA = Path(__file__).resolve().parent / "data"
NEWSPAPER = "000_6fc131b340d0f134.txt"
WEBPAGE = "004_7cff1f0ee75349d5.txt"


@pytest.fixture(scope="session")
def docs_dir() -> Path:
    return DOCS


@pytest.fixture(scope="session")
def real_documents():
    from qa.ingest import load_folder

    documents, skipped = load_folder(DOCS)
    assert not skipped
    return documents


@pytest.fixture(scope="session")
def corpus() -> tuple[list[str], list[str]]:
    """Every clause of docs/ and every labelled question: the texts encoders are checked on."""
    import json

    from qa.clauses import chunk
    from qa.ingest import load_folder

    docs, _ = load_folder(DOCS)
    clauses = [c.text for d in docs for c in chunk(d)[0]]
    lines = (DOCS / "eval/questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    assert len(clauses) >= 20 and len(questions) >= 20
    return clauses, questions


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """The product path: docs/ indexed with the default encoders into a temporary folder."""
    from qa import Corpus, Pipeline

    folder = tmp_path_factory.mktemp("index")
    corpus_dir = folder / "docs"
    shutil.copytree(DOCS, corpus_dir, ignore=shutil.ignore_patterns("eval"))
    return Pipeline.open(folder / "main", Corpus(corpus_dir, "folder"))


@pytest.fixture()
def mini_docs(tmp_path) -> Path:
    """A writable copy of the tiny corpus (Markdown with 第X条, GBK, UTF-16)."""
    target = tmp_path / "docs"
    shutil.copytree(DATA / "mini", target)
    return target


def assert_clauses_cover(doc) -> None:
    """Every clause equals the document at its span; spans are ordered and disjoint; every
    visible character of the document is in a clause or a heading; ids are unique."""
    from qa.clauses import chunk

    clauses, headings = chunk(doc)
    last_end = 0
    for c in clauses:
        assert doc.text[c.start:c.end] == c.text
        assert c.start >= last_end and c.end > c.start
        last_end = c.end
    covered = set()
    for span in [*clauses, *headings]:
        covered.update(range(span.start, span.end))
    lost = [i for i, ch in enumerate(doc.text) if not ch.isspace() and i not in covered]
    assert not lost, (doc.text[lost[0]:lost[0] + 20], doc.text)
    assert len({c.clause_id for c in clauses}) == len(clauses)
