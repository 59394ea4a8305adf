"""The learned ranker (qa/rerank.py): the shipped model, its checks, its place in the pipeline, its training."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qa import jsonl, rerank
from qa.errors import QAError
from qa.types import Clause

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

QUESTIONS = ["江北区科技型企业总量有多少？", "科技成果转化奖励比例是多少？"]


def _clause(text: str, n: int) -> Clause:
    return Clause(f"d#{n:04d}", "d", text, 0, len(text))


def _candidates(question_words_clause: str, answering_clause: str, answer_section: float, other_section: float):
    """30 candidates: first a clause that shares the question's words, second one that answers,
    then 28 weaker ones; equal own scores for the first two, sections as given."""
    clauses = ([_clause(question_words_clause, 0), _clause(answering_clause, 1)]
               + [_clause(f"第{i}条 其他事项按有关规定执行。", i + 2) for i in range(28)])
    fused = np.array([0.80, 0.78] + list(np.linspace(0.7, 0.4, 28)))
    dense = np.array([0.86, 0.86] + list(np.linspace(0.82, 0.78, 28)))
    bm25 = np.array([12.0, 12.0] + list(np.linspace(8, 3, 28)))
    section_dense = np.array([0.80, 0.80] + list(np.linspace(0.8, 0.75, 28)))
    section_bm25 = np.array([other_section, answer_section] + list(np.linspace(6, 2, 28)))
    return clauses, fused, dense, bm25, section_dense, section_bm25


@pytest.mark.parametrize("question, words, answer", [
    (QUESTIONS[0], "江北区将加强科技型企业培育，推动企业总量提升。", "全区科技型企业总量目前已达1311家。"),
    (QUESTIONS[1], "加快推进科技成果转化工作。", "科技成果转化收益中用于奖励的比例不低于70%。"),
])
def test_a_clause_in_the_section_about_the_question_moves_above_one_that_only_shares_words(question, words, answer):
    ranker = rerank.shipped()
    # the answering clause's section is the one about the question: the ranker puts it first
    about = ranker.scores(rerank.features(question, *_candidates(words, answer, 15.0, 4.0)))
    assert about[1] > about[0]
    # the same clauses with the sections the other way round: the answer loses its lead (it may
    # keep some: "比例" next to 多少 is in it, which is what the question asks for)
    swapped = ranker.scores(rerank.features(question, *_candidates(words, answer, 4.0, 15.0)))
    assert swapped[1] - swapped[0] < about[1] - about[0]


def test_features_are_one_row_per_candidate_with_the_named_columns():
    rows = rerank.features(QUESTIONS[0], *_candidates("江北区", "1311家", 15.0, 4.0))
    assert rows.shape == (30, len(rerank.FEATURES))
    column = {name: i for i, name in enumerate(rerank.FEATURES)}
    assert rows[:, column["fused_rank"]].tolist() == list(range(30))
    assert rows[1, column["coverage"]] < rows[0, column["coverage"]]  # the word-sharing clause covers more
    assert np.isfinite(rows).all()


def test_the_words_next_to_the_question_word_are_looked_for_in_each_clause():
    column = {name: i for i, name in enumerate(rerank.FEATURES)}
    question = "瑞尼尔山又被称作什么？"  # asked: 称, 作 (山 is the topic, 又/被 carry nothing)
    clauses, *scores = _candidates("瑞尼尔山也被划分在瑞尼尔山国家公园的范围内。",
                                   "瑞尼尔山，亦称塔科马山，是一座活火山。", 5.0, 5.0)
    rows = rerank.features(question, clauses, *scores)
    assert rows[1, column["asked"]] == 0.5 and rows[0, column["asked"]] == 0.0
    assert rows[1, column["asked_gap"]] == 0.0 and rows[0, column["asked_gap"]] == -0.5
    # an English question has no Chinese question word: nothing is asked of the clause
    english = rerank.features("What else is Mount Rainier called?", clauses, *scores)
    assert not english[:, [column["asked"], column["asked_gap"]]].any()


def test_candidates_from_one_passage_count_together():
    column = {name: i for i, name in enumerate(rerank.FEATURES)}
    clauses, *scores = _candidates("江北区将加强科技型企业培育。", "全区科技型企业总量已达1311家。", 15.0, 4.0)
    # the second and the fifth candidates come from passage p, the rest each from its own
    clauses = [replace(c, source_id="p" if i in (1, 4) else f"o{i}") for i, c in enumerate(clauses)]
    rows = rerank.features(QUESTIONS[0], clauses, *scores)
    assert rows[1, column["doc_share"]] == rows[4, column["doc_share"]] == 2 / 30
    assert rows[0, column["doc_share"]] == 1 / 30
    assert rows[0, column["doc_gap"]] == 0.0  # its passage holds the best candidate
    assert rows[4, column["doc_gap"]] == rows[1, column["doc_gap"]] == pytest.approx(scores[0][0] - scores[0][1])


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    model, card = tmp_path / "ranker.txt", tmp_path / "ranker.json"
    shutil.copy(rerank.MODEL, model)
    shutil.copy(rerank.CARD, card)
    return model, card


def test_a_truncated_model_file_is_refused_with_a_clear_message(tmp_path):
    model, card = _copy(tmp_path)
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(QAError, match="does not match the checksum"):
        rerank.Ranker(model, card)


def test_a_foreign_model_file_is_refused(tmp_path):
    model, card = _copy(tmp_path)
    model.write_text("tree\nversion=v4\nnum_class=1\n", encoding="utf-8")  # some other LightGBM model
    with pytest.raises(QAError, match="does not match the checksum"):
        rerank.Ranker(model, card)


def test_a_missing_file_names_the_file_and_the_way_out(tmp_path):
    model, card = _copy(tmp_path)
    model.unlink()
    with pytest.raises(QAError, match=r"ranker\.txt is missing.*--rerank off"):
        rerank.Ranker(model, card)


def test_a_model_for_other_features_is_refused(tmp_path):
    model, card = _copy(tmp_path)
    data = json.loads(card.read_text(encoding="utf-8"))
    card.write_text(json.dumps({**data, "features": data["features"][:-1]}), encoding="utf-8")
    with pytest.raises(QAError, match="other features"):
        rerank.Ranker(model, card)


def test_the_pipeline_reorders_only_the_fused_top_and_off_keeps_the_fused_order(pipeline):
    fused = replace(pipeline.search_config, rerank="off")
    learned = replace(pipeline.search_config, rerank="learned")
    saved = pipeline.search_config
    try:
        for question in QUESTIONS:
            pipeline.search_config = fused
            before = [h.clause.clause_id for h in pipeline.ask(question, k=60).hits]
            pipeline.search_config = learned
            after = pipeline.ask(question, k=60).hits
            assert sorted(before[:rerank.TOP_N]) == sorted(h.clause.clause_id for h in after[:rerank.TOP_N])
            assert [h.clause.clause_id for h in after[rerank.TOP_N:]] == before[rerank.TOP_N:]
            assert all(a.score >= b.score for a, b in zip(after, after[1:]))  # scores fall with the rank
        pipeline.search_config = replace(saved, rerank="sometimes")
        with pytest.raises(QAError, match="unknown rerank"):
            pipeline.ask(QUESTIONS[0])
    finally:
        pipeline.search_config = saved


def test_retraining_on_a_small_fixed_set_is_deterministic(pipeline):
    import train_ranker

    questions = [row["question"] for row in jsonl.read(ROOT / "docs/eval/questions.jsonl")[:24]]
    groups = []
    for i, (rows, x) in enumerate(pipeline.rerank_inputs(questions)):
        # labels from a fixed rule, so the test needs no gold: the clause with the most question bigrams
        y = (x[:, rerank.FEATURES.index("bigrams")] == x[:, rerank.FEATURES.index("bigrams")].max()).astype(np.int32) * 2
        groups.append({"set": "s", "qid": str(i), "x": x, "y": y})
    first = train_ranker.fit(groups, {"s": 1.0}, 30)
    second = train_ranker.fit(groups, {"s": 1.0}, 30)
    x = np.concatenate([g["x"] for g in groups])
    assert np.abs(first.predict(x) - second.predict(x)).max() < 1e-5
    assert first.model_to_string() == second.model_to_string()


def test_accepted_up_votes_become_training_questions_whose_voted_clause_is_the_answer(tmp_path, pipeline):
    import train_ranker

    from qa.feedback import Feedback

    store = Feedback(tmp_path / "feedback.jsonl")
    voted = {"question": "技术经纪人培养了多少？", "clause_id": "x", "doc_id": "004_7cff1f0ee75349d5",
             "text": "获批国家技术转移人才培养基地,引入川渝优质讲师资源,培育技术经纪人2576人次。"}
    accepted = store.vote("ann", voted, "up")
    store.vote("bob", {**voted, "question": "没有审过的问题"}, "up")  # never reviewed: not used
    store.review([accepted["id"]], "accepted", by="ed")
    name, _, _, questions = train_ranker.feedback_set(tmp_path / "feedback.jsonl")
    assert name == "feedback" and [q.question for q in questions] == [voted["question"]]
    rows, _ = pipeline.rerank_inputs([voted["question"]])[0]
    labels = [train_ranker.label(questions[0], c) for c in pipeline.index.clauses_at(rows)]
    answering = [c.text for c, y in zip(pipeline.index.clauses_at(rows), labels) if y == 2]
    assert answering and all("2576" in text for text in answering)


def test_the_shipped_features_are_the_ones_judged_on_the_held_back_part():
    """bench/results/ranker-features.json was written by the run that wrote the shipped model:
    same trees, same held-back figures; and every group of features it judged is in the model."""
    card = json.loads(rerank.CARD.read_text(encoding="utf-8"))
    judged = json.loads((ROOT / "bench/results/ranker-features.json").read_text(encoding="utf-8"))
    shipped = {k: judged["all_features"][k] for k in ("trees", "learned_mrr@10")}
    assert shipped == {"trees": card["trees"], "learned_mrr@10": card["stopping_part"]["learned_mrr@10"]}
    for group in judged["without"]:
        assert set(group.split(",")) <= set(card["features"])


def test_the_shipped_model_never_ranks_a_clause_lower_for_matching_the_question_better(pipeline):
    """The monotone constraints the model was trained with (bench/train_ranker.py RISING/FALLING)
    hold on real candidate rows: raising a "more is better" feature never lowers the score,
    raising a rank never raises it."""
    import train_ranker

    card = json.loads(rerank.CARD.read_text(encoding="utf-8"))
    assert card["params"]["monotone_constraints"] == train_ranker.PARAMS["monotone_constraints"]
    ranker = rerank.shipped()
    rows = np.concatenate([x for _, x in pipeline.rerank_inputs(QUESTIONS)])
    for name, sign in [(f, 1) for f in train_ranker.RISING] + [(f, -1) for f in train_ranker.FALLING]:
        column = rerank.FEATURES.index(name)
        spread = max(1e-3, float(np.ptp(rows[:, column])))
        for step in (0.1, 0.5, 1.0):
            moved = rows.copy()
            moved[:, column] += step * spread
            assert (sign * (ranker.scores(moved) - ranker.scores(rows)) >= -1e-9).all(), name
