"""Incremental updates: a changed file is re-indexed on its own, with the same results as a rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from qa import Corpus, Pipeline
from qa.index import COMPACT_SEGMENTS, Index


def _open(tmp_path, docs, name="main", **kw):
    return Pipeline.open(tmp_path / "index" / name, Corpus(docs, "folder"), **kw)


def test_a_changed_file_becomes_a_new_segment_and_answers_like_a_rebuild(tmp_path, mini_docs):
    pipe = _open(tmp_path, mini_docs)
    assert pipe.index.manifest["segments"] == ["s0001"]
    (mini_docs / "utf16.txt").write_text("人工智能产业园区已入驻企业150家，年产值突破90亿元。", encoding="utf-8")
    (mini_docs / "new.md").write_text("# 充电设施补贴\n\n公共充电桩按每千瓦300元补贴。", encoding="utf-8")
    (mini_docs / "notice-gbk.txt").unlink()
    assert pipe.refresh()
    index = pipe.index
    assert index.manifest["segments"] == ["s0001", "s0002"]
    assert set(index.documents) == {"policy", "utf16", "new"}
    assert len(index.deleted) == 3  # the old utf16 clause and the two of the removed notice
    # nothing of the old or removed text comes back
    for q in ("园区入驻企业多少家", "申报截止时间", "充电桩补贴"):
        for hit in pipe.ask(q, k=10).hits:
            assert "120家" not in hit.clause.text and "6月30日" not in hit.clause.text
    rebuilt = _open(tmp_path, mini_docs, name="fresh", rebuild="always")
    for q in ("园区入驻企业多少家", "充电桩补贴标准", "专项资金5000万元", "知识产权质押融资"):
        for mode in ("bm25", "dense", "hybrid"):
            a, b = pipe.ask(q, k=5, mode=mode), rebuilt.ask(q, k=5, mode=mode)
            assert [h.clause.text for h in a.hits] == [h.clause.text for h in b.hits], (q, mode)
            assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-4)
    # the removed notice's words are gone from the collection, though its tokens stay in the
    # vocabulary until a compaction: the no-match check sees the same coverage as after a rebuild
    for q in ("知识价值信用贷款改革试点方案", "科技型企业认定申报截止时间"):
        assert pipe.index.coverage(q) == pytest.approx(rebuilt.index.coverage(q))
    assert pipe.index.coverage("知识价值信用贷款改革试点方案") < 0.5
    # the update survives a reload, with its deletions
    loaded = Index.load(tmp_path / "index" / "main")
    assert np.array_equal(loaded.deleted, index.deleted) and loaded.clause_counts() == index.clause_counts()
    assert loaded.neighbours("new#0001")[0].text.startswith("公共充电桩")


def test_updates_link_unchanged_segments_instead_of_copying(tmp_path, mini_docs):
    pipe = _open(tmp_path, mini_docs)
    first = pipe.index.folder / "segments" / "s0001" / "clauses.jsonl"
    inode = first.stat().st_ino
    (mini_docs / "new.txt").write_text("新增一条政策：对首次认定的企业奖励20万元。", encoding="utf-8")
    pipe.refresh()
    assert (pipe.index.folder / "segments" / "s0001" / "clauses.jsonl").stat().st_ino == inode


def test_many_updates_compact_into_one_segment(tmp_path, mini_docs):
    pipe = _open(tmp_path, mini_docs)
    for n in range(COMPACT_SEGMENTS + 1):
        (mini_docs / "rolling.txt").write_text(f"第{n}次修订：补贴标准调整为每千瓦{300 + n}元。", encoding="utf-8")
        pipe.refresh()
    assert len(pipe.index.segments) < COMPACT_SEGMENTS
    hits = pipe.ask("补贴标准每千瓦", k=3, mode="bm25").hits
    assert f"{300 + COMPACT_SEGMENTS}元" in hits[0].clause.text
    assert sum(1 for h in hits if "修订" in h.clause.text) == 1  # only the live version


def test_warm_up_prepares_the_lexicon_an_update_rebuilds(tmp_path, mini_docs):
    from qa import crosslingual

    pipe = _open(tmp_path, mini_docs)
    crosslingual._tokens.cache_clear()
    pipe.index.warm_up()
    warmed = crosslingual._tokens.cache_info()
    assert warmed.currsize > 0
    (mini_docs / "new.txt").write_text("新增一条政策：对首次认定的企业奖励20万元。", encoding="utf-8")
    assert pipe.refresh()
    after = crosslingual._tokens.cache_info()
    assert after.hits >= warmed.currsize  # the update re-used the words cut during the warm-up
    assert pipe.index.lexicon == Index.load(pipe.index.folder).lexicon
