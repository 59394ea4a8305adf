"""Evaluation: metrics on a hand-computed run, span judging, gold checks, benchmarks, --compare."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from qa.cli import main
from qa.evaluate import GoldMissing, compare, compute, judge, load_labelled
from qa.evaluate.datasets import GoldSpan, Question
from qa.types import Clause, Document

BENCH = Path(__file__).resolve().parent / "data" / "bench"


def _clause(cid, doc="d", start=0, end=5, source=""):
    return Clause(clause_id=cid, doc_id=doc, text="x" * (end - start), start=start, end=end, source_id=source)


def test_metrics_match_hand_computed_values():
    # q1: relevant at rank 2; q2: at rank 1; q3: missing; q4: two gold passages at ranks 1 and 3
    questions = [Question("q1", "?", gold_ids=("A",)), Question("q2", "?", gold_ids=("B",)),
                 Question("q3", "?", gold_ids=("C",)), Question("q4", "?", gold_ids=("D", "E"))]
    units = {"q1": ["X", "A", "Y"], "q2": ["B"], "q3": ["X", "Y"], "q4": ["D", "X", "E"]}
    means, per = compute(questions, units, ks=(1, 3))
    assert per["q1"]["recall@1"] == 0 and per["q1"]["recall@3"] == 1
    assert per["q4"]["recall@1"] == 0.5 and per["q4"]["recall@3"] == 1
    assert means["recall@1"] == pytest.approx((0 + 1 + 0 + 0.5) / 4)
    assert means["recall@3"] == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert means["mrr@10"] == pytest.approx((1 / 2 + 1 + 0 + 1) / 4)
    ndcg_q1 = 1 / math.log2(3)
    ndcg_q4 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert means["ndcg@10"] == pytest.approx((ndcg_q1 + 1 + 0 + ndcg_q4) / 4)


def test_span_overlap_decides_a_hit():
    q = Question("q", "?", spans=(GoldSpan("d", 10, 20),))
    clauses = [_clause("c1", start=0, end=10), _clause("c2", start=19, end=30), _clause("c3", doc="e", start=12, end=15),
               _clause("c4", start=12, end=15)]
    # c1 ends where the gold starts: no overlap; c2 overlaps by one character; c3 is another document
    assert judge(q, clauses) == ["c1", "GOLD", "c3"]


def test_benchmark_clauses_map_back_to_passages_once():
    q = Question("q", "?", gold_ids=("P2",))
    clauses = [_clause("P1#0001", doc="P1", source="P1"), _clause("P1#0002", doc="P1", source="P1"),
               _clause("P2#0003", doc="P2", source="P2")]
    assert judge(q, clauses) == ["P1", "P2"]


def test_labels_resolve_to_offsets_and_a_missing_quote_fails(tmp_path):
    doc = Document(doc_id="a-1", title="t", text="第一句。培育技术经纪人2576人次。", source="a.txt")
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"qid": "1", "question": "?", "gold": [{"source": "a.txt", "quote": "技术经纪人2576"}]},
                                ensure_ascii=False), encoding="utf-8")
    (q,) = load_labelled(path, [doc])
    assert q.spans == (GoldSpan("a-1", 6, 15),)
    path.write_text(json.dumps({"qid": "1", "question": "?", "gold": [{"source": "a.txt", "quote": "不存在"}]},
                               ensure_ascii=False), encoding="utf-8")
    with pytest.raises(GoldMissing, match="不存在"):
        load_labelled(path, [doc])


def test_eval_check_passes_on_our_set_and_fails_loudly_on_a_broken_label(tmp_path, capsys, docs_dir):
    index = tmp_path / "index" / "main"
    assert main(["eval", "--check", "--docs", str(docs_dir), "--index", str(index)]) == 0
    assert "all found" in capsys.readouterr().out
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"qid": "x", "question": "?", "gold": [
        {"source": "004_7cff1f0ee75349d5.txt", "quote": "这句话不在文件里"}]}, ensure_ascii=False), encoding="utf-8")
    assert main(["eval", "--check", "--questions", str(broken), "--docs", str(docs_dir), "--index", str(index)]) == 2
    assert "这句话不在文件里" in capsys.readouterr().err


def test_benchmark_eval_end_to_end_and_compare(tmp_path, capsys):
    out = tmp_path / "r1"
    args = ["eval", "--benchmark", str(BENCH), "--index", str(tmp_path / "idx"), "--out", str(out), "-k", "1,3"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["modes"]) == {"hybrid", "dense", "bm25"}
    assert report["modes"]["bm25"]["metrics"]["recall@1"] == 1.0  # lexical overlap is total here
    assert report["modes"]["hybrid"]["answer_in"]["answer@3"] == 1.0
    assert report["index"]["counts"]["documents"] == 4
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| hybrid |" in md
    # a doctored old report in which b1 was at rank 3: the diff says it is fixed now
    old = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for row in old["per_question"]["hybrid"]:
        if row["qid"] == "b1":
            row["rank"] = 3
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(old), encoding="utf-8")
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "r2"), "--compare", str(old_path)]) == 0
    text = capsys.readouterr().out
    assert "fixed (now rank 1): 1" in text and "b1: 3 -> 1" in text


@pytest.mark.parametrize("line, message", [
    ({"qid": "x", "question": "问"}, "question 2: missing gold_ids"),
    ({"qid": "x", "question": "问", "gold_ids": "b1"}, "question 2: gold_ids must be a non-empty list"),
    ({"qid": "x", "question": " ", "gold_ids": ["b1"]}, "question 2: the question is empty"),
    ({"qid": "x", "question": "问", "gold_ids": ["no-such-passage"]}, "1 of 2 questions name no passage"),
])
def test_a_bad_benchmark_question_is_a_clear_error_before_any_index_is_built(tmp_path, capsys, line, message):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "passages.jsonl").write_bytes((BENCH / "passages.jsonl").read_bytes())
    first = (BENCH / "questions.jsonl").read_text(encoding="utf-8").splitlines()[0]
    (folder / "questions.jsonl").write_text(first + "\n" + json.dumps(line, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    index = tmp_path / "idx"
    assert main(["eval", "--benchmark", str(folder), "--index", str(index), "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not index.exists()


def test_compare_reports_broken_questions():
    row = {"qid": "q1", "question": "问", "rank": 1}
    old = {"modes": {"hybrid": {"metrics": {"recall@1": 1.0}}}, "per_question": {"hybrid": [row]}}
    new = {"modes": {"hybrid": {"metrics": {"recall@1": 0.0}}}, "per_question": {"hybrid": [{**row, "rank": 4}]}}
    text = compare(old, new)
    assert "broken (was rank 1): 1" in text and "recall@1 -1.000" in text


def test_only_reviewed_up_votes_become_labelled_questions(tmp_path, capsys, docs_dir):
    from qa.feedback import Feedback

    index = tmp_path / "index" / "main"
    brokers = {"question": "技术经纪人培养了多少？", "clause_id": "x", "doc_id": "004_7cff1f0ee75349d5",
               "text": "获批国家技术转移人才培养基地,引入川渝优质讲师资源,培育技术经纪人2576人次。"}
    firms = {"question": "江北区科技型企业", "clause_id": "y", "doc_id": "000_6fc131b340d0f134-2",
             "text": "今年一季度，该区新增科技型企业51家，全区科技型企业总量目前已达1311家。"}
    path = tmp_path / "feedback.jsonl"
    store = Feedback(path)
    accepted = store.vote("ann", brokers, "up")
    rejected = store.vote("bob", firms, "up")
    store.vote("carl", firms, "up")  # never reviewed: not gold
    store.vote("dora", {**brokers, "clause_id": "z", "text": "不存在的条款"}, "up")
    assert store.review([accepted["id"]], "accepted", by="ed") == 1
    assert store.review([rejected["id"], "nonexistent"], "rejected", by="ed") == 1
    out = tmp_path / "fb"
    assert main(["eval", "--feedback", str(path), "--docs", str(docs_dir), "--index", str(index),
                 "--out", str(out), "--modes", "hybrid"]) == 0
    rows = [json.loads(line) for line in (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1 and rows[0]["gold"][0]["source"] == "004_7cff1f0ee75349d5.txt"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["questions"] == 1 and report["modes"]["hybrid"]["metrics"]["recall@5"] == 1.0
