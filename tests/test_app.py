"""The UI's rendering and upload rules, without a browser."""

from __future__ import annotations

import pytest

from qa.audit import AuditLog
from qa.ingest.upload import Library, UploadRefused, safe_name
from qa.ui import render as app

XSS = "<img src=x onerror=alert(1)>"


def test_escape_shows_html_and_markdown_literally():
    out = app.esc(f"{XSS} **粗体** [链接](javascript:alert(1)) `code`")
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out
    assert "\\*\\*" in out and "\\[" in out and "\\`" in out


def test_highlight_marks_words_and_escapes_the_rest():
    out = app.highlight(f"企业总量{XSS}达到1311家", ["企业", "1311", "家"])
    assert "<mark>企业</mark>" in out and "<mark>1311</mark>" in out
    assert "<mark>家</mark>" not in out  # single characters are not highlighted
    assert "<img" not in out


def test_card_carries_citation_context_and_no_raw_html(pipeline):
    answer = pipeline.ask("重庆建成了多少家制造业创新中心？", k=1)
    html = app.card(pipeline, answer.hits[0], app.query_terms(pipeline, answer.question))
    assert "11家市级" in html and "第3句" in html and "市科技局" in html
    assert "<details>" in html and "印发《市级产业创新中心建设工作指引》" in html
    assert "```text\n《重庆市科学技术局" in html


def test_summary_says_when_nothing_matches(pipeline):
    assert "没有找到足够相关的条款" in app.summary(pipeline.ask("猫咪一天应该喂几次？", k=3))
    assert "没有找到足够相关的条款" in app.summary(pipeline.ask("Who wrote Pride and Prejudice?", k=3))
    assert "找到 3 条相关条款" in app.summary(pipeline.ask("江北区科技型企业总量有多少？", k=3))


@pytest.mark.parametrize("given, expected", [
    ("../../etc/passwd.txt", "passwd.txt"), ("..\\..\\x.md", "x.md"), (".hidden.txt", "hidden.txt"),
    ("关于 开展 认定的通知.DOCX", "关于_开展_认定的通知.docx"), ("a;rm -rf ~.pdf", "a_rm_-rf.pdf"),
])
def test_safe_names_cannot_leave_the_folder(given, expected):
    assert safe_name(given) == expected


def test_upload_refuses_unsupported_broken_large_and_existing(tmp_path):
    docs = tmp_path / "docs"
    library = Library(docs, AuditLog(tmp_path / "audit.jsonl"))

    def add_document(source, docs, name=None, overwrite=False, max_bytes=None):
        library.max_bytes = max_bytes or 20 * 2**20
        return library.add(source, name, overwrite)

    good = tmp_path / "ok.txt"
    good.write_text("通知：申报截止时间为6月30日。", encoding="utf-8")
    assert add_document(good, docs).name == "ok.txt"
    with pytest.raises(UploadRefused, match="already exists"):
        add_document(good, docs)
    good.write_text("通知：申报截止时间延至7月31日。", encoding="utf-8")
    assert "7月31日" in add_document(good, docs, overwrite=True).read_text(encoding="utf-8")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00")
    with pytest.raises(UploadRefused, match="unsupported file type"):
        add_document(exe, docs)
    docx = tmp_path / "broken.docx"
    docx.write_bytes(b"PK\x03\x04 not a real docx")
    with pytest.raises(UploadRefused, match="cannot read this .docx"):
        add_document(docx, docs)
    with pytest.raises(UploadRefused, match="upload limit"):
        add_document(good, docs, name="big.txt", max_bytes=10)
    assert sorted(p.name for p in docs.iterdir()) == [".history", ".uploads", "ok.txt"]
    assert list((docs / ".uploads").iterdir()) == []
