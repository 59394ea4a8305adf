"""Clause cutting: punctuation, the numbering ladder, heading paths, spans."""

from __future__ import annotations

from qa.clauses import ChunkConfig, chunk
from qa.types import Document

from .conftest import NEWSPAPER, WEBPAGE, assert_clauses_cover


def _doc(text: str, title: str = "测试文件") -> Document:
    return Document(doc_id="t", title=title, text=text, source="t.txt")


def _all_clauses(documents):
    return [c for d in documents for c in chunk(d)[0]]


def test_spans_match_text_and_are_ordered(real_documents):
    for doc in real_documents:
        assert_clauses_cover(doc)


def test_ids_are_numbered_in_document_order(real_documents):
    doc = next(d for d in real_documents if d.source == WEBPAGE)
    clauses = chunk(doc)[0]
    assert [c.clause_id for c in clauses[:3]] == [f"{doc.doc_id}#000{i}" for i in (1, 2, 3)]
    assert len({c.clause_id for c in clauses}) == len(clauses)


def test_yishi_sentence_heads_the_clauses_after_it(real_documents):
    doc = next(d for d in real_documents if d.source == WEBPAGE)
    clauses = chunk(doc)[0]
    assert not any(c.text.startswith("二是培育专业技术转移人才") for c in clauses)
    broker = next(c for c in clauses if "培育技术经纪人2576人次" in c.text)
    assert broker.heading == (doc.title, "一、推动科技成果转移转化情况", "(三)构建科技成果转移转化体系。",
                              "二是培育专业技术转移人才。")
    assert broker.position == 1
    nxt = next(c for c in clauses if "评定职称224名" in c.text)
    assert nxt.heading == broker.heading and nxt.position == 2
    plan = next(c for c in clauses if "迭代升级川渝协同创新" in c.text)
    assert plan.heading[1] == "二、下一步工作计划"


def test_newspaper_clauses_carry_their_headline(real_documents):
    clauses = _all_clauses([d for d in real_documents if d.source == NEWSPAPER])
    measures = [c for c in clauses if "科技成果赋权" in c.text]
    assert measures and all(c.heading[0] == "重庆出台促进科技成果转化“24条”" for c in measures)
    hu_yu = [c for c in clauses if "上海" in c.text]
    assert hu_yu and all(c.heading[0] == "沪渝携手推进科技创新中心建设" for c in hu_yu)
    assert not any(c.text in ("沪渝携手推进科技创新中心建设", "加快推动长江经济带高质量发展") for c in clauses)


def test_split_on_chinese_and_ascii_clause_ends_keeping_closers():
    text = "他说：“要加快建设。”随后离开！是否可行？第一项;第二项完成。版本 v1.2; beta 保留"
    clauses = chunk(_doc(text), ChunkConfig(min_chars=1))[0]
    assert [c.text for c in clauses] == ["他说：“要加快建设。”", "随后离开！", "是否可行？", "第一项;",
                                         "第二项完成。", "版本 v1.2; beta 保留"]


def test_semicolon_inside_brackets_does_not_split():
    text = "依据《若干措施（试行；修订）》执行相关政策。"
    assert [c.text for c in chunk(_doc(text))[0]] == [text]


def test_numbering_ladder_builds_nested_paths():
    text = "\n".join([
        "第一章 总则",
        "第一条 为规范管理，制定本办法。",
        "一、总体要求",
        "（一）基本原则。坚持统筹推进，坚持分类施策。",
        "1. 加强组织领导。各部门要明确责任分工。",
        "（1）建立工作专班负责日常调度协调。",
        "二、保障措施",
        "强化资金保障和人才支撑。",
    ])
    clauses = chunk(_doc(text), ChunkConfig(min_chars=1))[0]
    paths = {c.text: c.heading[1:] for c in clauses}
    assert paths["第一条 为规范管理，制定本办法。"] == ("第一章 总则", "第一条")
    assert paths["坚持统筹推进，坚持分类施策。"] == ("第一章 总则", "一、总体要求", "（一）基本原则。")
    assert paths["各部门要明确责任分工。"] == ("第一章 总则", "一、总体要求", "（一）基本原则。", "1. 加强组织领导。")
    # a numbered paragraph of one sentence is a clause of its own, under its marker
    assert paths["（1）建立工作专班负责日常调度协调。"][-1] == "（1）"
    assert paths["强化资金保障和人才支撑。"] == ("第一章 总则", "二、保障措施")


def test_short_fragments_merge_and_long_clauses_split_at_commas():
    short = chunk(_doc("沈代表:\n你提出的建议收悉，现答复如下。"))[0]
    assert [c.text for c in short] == ["沈代表:\n你提出的建议收悉，现答复如下。"]
    long_text = "，".join(f"第{i}项工作稳步推进并取得明显成效" for i in range(20)) + "。"
    pieces = chunk(_doc(long_text), ChunkConfig(max_chars=60))[0]
    assert len(pieces) > 1 and all(len(c.text) <= 60 for c in pieces)
    assert "".join(c.text for c in pieces) == long_text
