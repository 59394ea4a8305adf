"""Homophone slips typed with a pinyin input method (qa.homophones), on their own and through the real index."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qa import homophones
from qa import tokenize as tok

JIANGBEI = "技术经纪人是促进成果转化的人才。全市培育技术经纪人2576人次，编制年度计划，开展合作。"


def known_of(*texts: str) -> set[str]:
    """A collection's BM25 vocabulary: the tokens of its texts."""
    return {t for text in texts for t in tok.tokenize(text)}


def test_a_slip_is_searched_as_the_word_of_the_collection_it_sounds_like():
    known = known_of(JIANGBEI)
    assert homophones.slips("技术经济人在重庆能评职称不", known) == [("经济人", ["经纪人"])]
    # every stretch that may hold the slip: the longer word of the collection and the shorter one
    assert homophones.slips("年度计化有哪些", known) == [("年度计化", ["年度计划"]), ("计化", ["计划"])]


def test_words_typed_right_and_words_of_the_collection_are_left_alone():
    known = known_of(JIANGBEI, "司马繇是司马懿的孙子。司马曜是东晋皇帝。")
    assert homophones.slips("技术经纪人在重庆能评职称吗", known) == []
    assert homophones.slips("司马繇是谁的孙子", known) == []  # a rare name the documents hold is not "corrected"
    assert homophones.slips("那年哪年成立的", known_of("那年成立")) == []  # question words are not topics
    # words a question is built of are not a slip: "我是" would be searched as 我市 ("our city")
    known = known_of(JIANGBEI, "我市出台了支持政策。")
    assert homophones.slips("我是做技术转移的，有什么支持政策", known) == []
    assert homophones.slips("我是做技术转移的，喝作有什么支持政策", known) == [("喝作", ["合作"])]


def test_a_slip_adds_a_group_of_alternatives_to_the_query():
    known = known_of(JIANGBEI)
    question = "技术经济人在重庆能评职称不"
    tokens = tok.tokenize(question)
    found = homophones.slips(question, known)
    query = homophones.extend(None, tokens, known, found)
    assert [[t] for t in tokens if t in known] == [group[0] for group in query[:-1]]
    assert query[-1] == [tok.tokenize("经纪人")]
    assert homophones.extend(None, tokens, known, []) is None


def test_the_real_index_finds_the_clause_a_slip_was_meant_for(pipeline):
    question = "技术经济人在重庆能评职称不"
    index = pipeline.index
    with_slips = index.lexical(question, tok.tokenize(question))
    without = index.lexical(question, tok.tokenize(question), corrections=False)
    assert with_slips.slips == (("经济人", ["经纪人"]),) and without.slips == ()
    rows = [i for i, clause in enumerate(index.clauses) if "技术经纪人职称申报条件" in clause.text]
    assert rows and with_slips.clauses(rows)[0] > without.clauses(rows)[0]
    answer = pipeline.ask(question, k=3, mode="bm25")
    assert "技术经纪人职称" in answer.hits[0].clause.text
    assert any("经济人→经纪人" in note for note in answer.notes)
    saved = pipeline.search_config
    try:
        pipeline.search_config = replace(saved, homophones=False)
        plain = pipeline.ask(question, k=3, mode="bm25")
        assert not any("经纪人" in note for note in plain.notes)
    finally:
        pipeline.search_config = saved
    assert np.all(index.lexical("重庆技术经纪人", tok.tokenize("重庆技术经纪人")).scores
                  == index.lexical("重庆技术经纪人", tok.tokenize("重庆技术经纪人"), corrections=False).scores)
