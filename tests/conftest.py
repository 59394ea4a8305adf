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


@pytest.fixture
def tiny_xquad(tmp_path) -> Path:
    """Two XQuAD-shaped paragraphs, each with a question asked in Chinese and in English."""
    import json

    folder = tmp_path / "xquad"
    folder.mkdir()
    paragraphs = [("重庆市江北区位于长江北岸。全区科技型企业总量已达1311家。高新技术企业有420家。", "江北区有多少家科技型企业？",
                   "How many tech firms does Jiangbei have?", "1311家"),
                  ("技术经纪人是促进成果转化的人才。重庆培育技术经纪人2576人次。评定职称224名。", "重庆培育了多少技术经纪人？",
                   "How many technology brokers were trained?", "2576人次")]
    for lang, column in (("zh", 1), ("en", 2)):
        data = [{"title": f"t{i}", "paragraphs": [{"context": p[0], "qas": [
            {"id": f"q{i}", "question": p[column], "answers": [{"text": p[3], "answer_start": p[0].index(p[3])}]}]}]}
            for i, p in enumerate(paragraphs)]
        (folder / f"xquad.{lang}.json").write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return folder
