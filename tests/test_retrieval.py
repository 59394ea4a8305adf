"""Retrievers against reference implementations; fusion against a five-line RRF."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from qa.dense import DenseIndex
from qa.fusion import convex, rrf
from qa.sparse import SparseIndex
from qa.tokenize import tokenize


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("filtered", [False, True])
def test_dense_search_matches_numpy_brute_force(filtered):
    vectors, queries = _unit(500, 32, 0), _unit(7, 32, 1)
    allowed = np.sort(np.random.default_rng(2).choice(500, 120, replace=False)) if filtered else None
    scores, rows = DenseIndex.build(vectors).search(queries, 10, allowed)
    candidates = allowed if filtered else np.arange(500)
    sims = queries @ vectors[candidates].T
    for q in range(len(queries)):
        expected = candidates[np.argsort(-sims[q], kind="stable")[:10]]
        assert list(rows[q]) == list(expected)
        np.testing.assert_allclose(scores[q], sims[q][np.argsort(-sims[q], kind="stable")[:10]], rtol=1e-5)


def test_dense_save_load_round_trip(tmp_path):
    vectors = _unit(50, 16, 3)
    DenseIndex.build(vectors).save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    np.testing.assert_allclose(loaded.vector(7), vectors[7], rtol=1e-6)
    assert len(loaded) == 50


def _reference_rrf(rankings, k=60):
    scores = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0) + 1 / (k + rank)
    return scores


def test_rrf_matches_reference_on_random_rankings():
    rng = random.Random(4)
    for _ in range(50):
        lists = [rng.sample(range(40), rng.randrange(0, 25)) for _ in range(rng.randrange(1, 4))]
        fused = rrf(lists, k=60)
        expected = _reference_rrf(lists)
        assert dict(fused) == pytest.approx(expected)
        assert [s for _, s in fused] == sorted((s for _, s in fused), reverse=True)


def test_rrf_weights_and_ties():
    assert rrf([["a", "b"], ["b", "a"]]) == [("a", pytest.approx(2 / 61 * 0 + 1 / 61 + 1 / 62)),
                                             ("b", pytest.approx(1 / 62 + 1 / 61))]
    assert rrf([["a"], ["b"]], weights=[1.0, 2.0])[0][0] == "b"


CORPUS = ["市财政每年安排中小企业发展专项资金5000万元", "对小微企业免征登记类行政事业性收费",
          "推广知识产权质押融资，对质押贷款给予评估费补贴", "建立应急转贷机制，为企业提供短期周转资金",
          "科技型企业总量达到1311家", "培育技术经纪人2576人次，评定职称224名"]


def _lucene_bm25(docs, query, k1=1.2, b=0.75):
    """Lucene's BM25 (since Lucene 8 without the constant (k1 + 1) factor), as bm25s implements it.

    A query token that occurs twice (a two-character word is also its own bigram) counts twice.
    """
    n, avgdl = len(docs), sum(map(len, docs)) / len(docs)
    out = []
    for doc in docs:
        score = 0.0
        for term in query:
            df = sum(term in d for d in docs)
            if df:
                tf = doc.count(term)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return out


@pytest.mark.parametrize("question", ["中小企业专项资金有多少", "质押贷款评估费补贴", "科技型企业总量", "技术经纪人职称"])
def test_bm25_scores_match_a_reference_formula(question):
    docs = [tokenize(t) for t in CORPUS]
    index = SparseIndex.build(docs)
    expected = _lucene_bm25(docs, tokenize(question))
    np.testing.assert_allclose(index.scores(tokenize(question)), expected, rtol=1e-4)
    scores, rows = index.search(tokenize(question), 3)
    assert rows[0] == int(np.argmax(expected)) and scores[0] == pytest.approx(max(expected), rel=1e-4)


def test_bm25_unknown_and_empty_queries_find_nothing():
    index = SparseIndex.build([tokenize(t) for t in CORPUS])
    for tokens in ([], ["不存在的词"]):
        scores, rows = index.search(tokens, 5)
        assert len(rows) == 0


def test_tokenizer_cuts_chinese_words_and_drops_stopwords():
    tokens = tokenize("江北区有多少家科技型企业？")
    assert "江北区" in tokens and "科技型" in tokens and "企业" in tokens
    assert "江北" in tokens and "北区" in tokens  # bigrams match a differently cut "江北"
    assert "多少" not in tokens and "？" not in tokens and "有" not in tokens
    assert tokenize("ＡＢＣ１２３") == ["abc123"]  # full-width folded


def test_english_question_words_are_translated_for_bm25(pipeline):
    from qa import crosslingual
    from qa.tokenize import STOPWORDS

    groups = crosslingual.translate("How many technology brokers were trained?", pipeline.index.lexicon, STOPWORDS)
    flat = {t for group in groups for alt in group for t in alt}
    assert {"技术", "经纪人"} <= flat and any("培育" in alt or "培训" in alt for g in groups for alt in g)
    answer = pipeline.ask("How many technology brokers were trained?", k=5, mode="bm25")
    assert answer.hits and "2576" in answer.hits[0].clause.text
    assert any("CC-CEDICT" in note for note in answer.notes)
    assert not pipeline.ask("技术经纪人培育了多少", k=3, mode="bm25").notes


def _reference_convex(dense, bm25, alpha):
    lo, hi, top = min(dense.values()), max(dense.values()), max(bm25.values())
    return {c: alpha * (dense[c] - lo) / (hi - lo) + (1 - alpha) * bm25.get(c, 0) / top for c in dense}


def test_convex_fusion_matches_reference():
    rng = np.random.default_rng(5)
    d, b = rng.uniform(0.8, 0.95, 30), np.where(rng.random(30) < 0.5, rng.uniform(0, 12, 30), 0)
    expected = _reference_convex(dict(enumerate(d)), dict(enumerate(b)), 0.7)
    np.testing.assert_allclose(convex(d, b, 0.7), [expected[i] for i in range(30)])
    assert convex(d, np.zeros(30), 0.7).max() == pytest.approx(0.7)  # no keyword match: dense decides
    assert len(convex(np.zeros(0), np.zeros(0))) == 0


@pytest.mark.parametrize("question", ["技术合同成交额突破了多少？", "江北区有多少家科技型企业？"])
def test_hybrid_fuses_the_dense_and_bm25_candidates(pipeline, question):
    """Without the section term, hybrid is convex fusion of the two candidate lists (the section
    term is checked in tests/test_generalise.py)."""
    from dataclasses import replace

    alpha = pipeline.search_config.alpha
    # the fused order itself: no section term, no learned ranker after it
    plain = type(pipeline)(pipeline.index, pipeline.encoder,
                           search=replace(pipeline.search_config, section_weight=0.0, rerank="off"))
    hybrid = plain.ask(question, k=10, mode="hybrid")
    dense = {h.clause.clause_id: h.score for h in pipeline.ask(question, k=100, mode="dense").hits}
    bm25 = {h.clause.clause_id: h.score for h in pipeline.ask(question, k=100, mode="bm25").hits}
    everything = {h.clause.clause_id: h for h in pipeline.ask(question, k=1000, mode="dense").hits}
    candidates = {c: everything[c].dense for c in [*dense, *bm25]}
    expected = _reference_convex(candidates, {**{c: 0.0 for c in candidates}, **bm25}, alpha)
    ranked = sorted(expected, key=lambda c: -expected[c])[:10]
    assert [h.clause.clause_id for h in hybrid.hits] == ranked
    assert [h.score for h in hybrid.hits] == pytest.approx([expected[c] for c in ranked], abs=1e-5)


def test_rrf_fusion_when_configured(pipeline):
    from dataclasses import replace

    question = "技术合同成交额突破了多少？"
    rrf_pipe = type(pipeline)(pipeline.index, pipeline.encoder, search=replace(pipeline.search_config, fusion="rrf"))
    hybrid = rrf_pipe.ask(question, k=10)
    dense = pipeline.ask(question, k=100, mode="dense")
    bm25 = pipeline.ask(question, k=100, mode="bm25")
    fused = rrf([[h.clause.clause_id for h in dense.hits], [h.clause.clause_id for h in bm25.hits]])
    assert [h.clause.clause_id for h in hybrid.hits] == [cid for cid, _ in fused[:10]]
    assert "2800亿元" in hybrid.hits[0].clause.text


def test_document_filter(pipeline):
    doc_id = next(d for d in pipeline.index.documents if d.endswith("-3"))
    answer = pipeline.ask("科技成果转化", k=10, doc_ids=[doc_id])
    assert answer.hits and {h.clause.doc_id for h in answer.hits} == {doc_id}


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_every_dense_kind_filters_skips_deleted_rows_and_round_trips(kind, tmp_path):
    vectors = _unit(3000, 32, 11)
    queries = vectors[:10] + 0.01 * _unit(10, 32, 12)
    index = DenseIndex.build(vectors, kind=kind)
    assert index.kind == kind
    _, rows = index.search(queries, 10)
    assert np.mean([q in set(r) for q, r in enumerate(rows)]) >= 0.9  # each query's near twin is found
    deleted = np.arange(0, 3000, 2)
    _, rows = index.search(queries, 5, deleted=deleted)
    assert ((rows % 2 == 1) | (rows == -1)).all()
    _, rows = index.search(queries, 5, allowed=np.arange(100, 200), deleted=deleted)
    found = rows[rows >= 0]
    assert len(found) and ((found >= 100) & (found < 200) & (found % 2 == 1)).all()
    index.add(_unit(5, 32, 13))
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    assert loaded.kind == kind and len(loaded) == 3005
    np.testing.assert_allclose(loaded.vector(3004), index.vector(3004), rtol=1e-6)


def test_sparse_segments_equal_bm25s_and_a_rebuild():
    import bm25s

    rng = random.Random(3)
    words = [f"w{i}" for i in range(150)]
    docs = [[rng.choice(words[:rng.randint(5, 150)]) for _ in range(rng.randint(1, 25))] for _ in range(400)]
    ref = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    ref.index(docs, show_progress=False)
    split = SparseIndex.build(docs[:250]).add_segment(docs[250:])
    for _ in range(25):
        query = [rng.choice(words) for _ in range(4)]
        ids = [ref.vocab_dict[t] for t in query if t in ref.vocab_dict]
        np.testing.assert_allclose(split.scores(query), ref.get_scores_from_ids(ids), atol=1e-4)
    deleted = split.delete(np.arange(50, 120))
    rebuilt = SparseIndex.build(docs[:50] + docs[120:])
    for _ in range(25):
        query = [rng.choice(words) for _ in range(4)]
        got = deleted.scores(query)
        assert (got[50:120] == 0).all()
        np.testing.assert_allclose(np.concatenate([got[:50], got[120:]]), rebuilt.scores(query), atol=1e-5)
