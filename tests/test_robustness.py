"""Bad input: odd questions get an answer or a clear message; bad files are skipped with a reason."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.cli import main
from qa.errors import EmptyQuestion
from qa.ingest import load_folder

QUESTIONS = {
    "control": "江北区\x00\x07科技型企业\x1b[31m总量",
    "lone-surrogate": "科技\ud800企业\udfff总量",
    "emoji": "🚀🚀 江北区科技型企业有多少家？👍",
    "mixed-scripts": "Jiangbei 江北区 технологии 科技企业 كم عدد",
    "markdown": "**江北区** [科技](javascript:alert(1)) `企业` # 总量",
    "html-js": "<script>alert(1)</script><img src=x onerror=alert(1)>技术合同成交额",
    "sql": "'; DROP TABLE clauses; -- 技术经纪人",
    "shell": "$(rm -rf /) `reboot` && cat /etc/passwd | 制造业创新中心",
    "long": "江北区科技型企业总量有多少？" * 8000,
    "only-punctuation": "？？？！！。。，",
    "numbers": "1311",
}


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_odd_questions_get_an_answer_or_a_clear_message(pipeline, name):
    question = QUESTIONS[name]
    for mode in ("hybrid", "dense", "bm25"):
        answer = pipeline.ask(question, k=3, mode=mode)
        assert answer.question and len(answer.question) <= 512
        json.dumps(answer.to_json(), ensure_ascii=False).encode("utf-8")  # serialisable, no lone surrogates
    if name == "long":
        assert any("question has" in n for n in answer.notes)


@pytest.mark.parametrize("question", ["", "   ", "\x00\x01", "\ud800", "\u200b\u200b"])
def test_questions_with_nothing_to_search_are_refused_clearly(pipeline, question):
    with pytest.raises(EmptyQuestion):
        pipeline.ask(question)


@pytest.mark.parametrize("name", ["control", "html-js", "shell", "emoji"])
def test_cli_answers_odd_questions_without_traceback(pipeline, capsys, name):
    code = main(["ask", QUESTIONS[name], "--index", str(pipeline.index_dir), "-k", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    assert json.loads(out)["hits"]


def _make_pdf_without_text(path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with open(path, "wb") as handle:
        writer.write(handle)


def test_bad_documents_are_skipped_with_reasons_and_the_rest_indexed(tmp_path, docs_dir):
    folder = tmp_path / "docs"
    shutil.copytree(docs_dir, folder, ignore=shutil.ignore_patterns("eval"))
    text = "关于推进人工智能产业发展的若干措施。对新落户企业给予最高500万元奖励。"
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 50)
    (folder / "truncated.txt").write_bytes(text.encode("utf-8")[:-1])
    (folder / "gbk.txt").write_bytes(text.encode("gbk"))
    (folder / "gb18030.md").write_bytes(("# 标题\n\n" + text).encode("gb18030"))
    (folder / "utf16.txt").write_bytes(text.encode("utf-16"))
    with open(folder / "huge.txt", "wb") as handle:  # 50 MB
        handle.seek(50 * 1024 * 1024 - 1)
        handle.write(b"\n")
    _make_pdf_without_text(folder / "scan.pdf")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04broken zip")
    (folder / "page.html").write_text(
        "<html><head><title>通知</title><script>alert('x'); document.cookie</script></head><body>"
        "<nav>首页 | 政务公开</nav><article><h1>关于申报科技型企业的通知</h1><p>" + text * 3 + "</p></article>"
        "<script>steal()</script></body></html>", encoding="utf-8")
    documents, skipped = load_folder(folder)
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"empty.txt", "binary.txt", "huge.txt", "scan.pdf", "broken.docx"}
    assert "empty" in reasons["empty.txt"] and "not text" in reasons["binary.txt"]
    assert "limit" in reasons["huge.txt"] and "text layer" in reasons["scan.pdf"]
    assert "cannot read this .docx" in reasons["broken.docx"]
    by_source = {d.source: d for d in documents}
    for name in ("truncated.txt", "gbk.txt", "gb18030.md", "utf16.txt"):
        assert "最高500万元" in by_source[name].text or "最高500万" in by_source[name].text, name
    page = by_source["page.html"]
    assert "最高500万元奖励" in page.text and "alert" not in page.text and "steal" not in page.text
    assert sum(1 for d in documents if d.source.startswith("00")) == 4  # the real documents survived
