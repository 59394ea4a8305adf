"""Property-based tests (hypothesis) on cleaning and clause cutting."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.clauses import chunk
from qa.ingest import load_folder, parse_text
from qa.ingest.clean import normalize

from .conftest import assert_clauses_cover

PIECES = ["科技", "企业", "创新", "成果转化", "重庆", "政策", "支持", "补贴", "1311家", "2024年", "abc", "Tech",
          "。", "，", "；", "！", "？", ";", ",", "!", "?", "、", "：", "“", "”", "（", "）", "(", ")", "《", "》",
          "一、", "二、", "（一）", "(二)", "1.", "2、", "（1）", "一是", "二是", "第一条", "第二章", "\n", "\n\n",
          " ", "\u3000", "\t", "<img src=x>", "#", "**"]
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=120).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _documents(text):
    return parse_text(text, source="t.md", doc_id="t", markdown=True)


@SETTINGS
@given(texts)
def test_clause_spans_match_are_ordered_and_lose_nothing(text):
    for doc in _documents(text):
        assert_clauses_cover(doc)


@SETTINGS
@given(texts)
def test_cleaning_keeps_every_visible_character_of_plain_text(text):
    kept = Counter(ch for d in _documents(text) for ch in d.text if not ch.isspace())
    visible = Counter(ch for ch in normalize(text) if not ch.isspace())
    assert not kept - visible  # nothing invented
    assert set(visible - kept) <= {"#"}  # only Markdown heading markers may go


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(texts, texts)
def test_ids_are_stable_when_another_document_changes(tmp_path_factory, first, second):
    folder = tmp_path_factory.mktemp("docs")
    (folder / "a.md").write_text("甲文件\n\n" + first, encoding="utf-8")
    (folder / "b.md").write_text("乙文件\n\n" + second, encoding="utf-8")
    before = [c for d in load_folder(folder)[0] if d.doc_id == "a" for c in chunk(d)[0]]
    (folder / "b.md").write_text("乙文件已修改\n\n" + second[::-1] + "新增条款。", encoding="utf-8")
    after = [c for d in load_folder(folder)[0] if d.doc_id == "a" for c in chunk(d)[0]]
    assert before == after
