"""Crash safety: `qa index` killed with SIGKILL at any point leaves a loadable, correct index;
queries keep being answered while a rebuild runs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from qa import Corpus, Pipeline
from qa.index import Index
from qa.store import FAULT_ENV

CHECKPOINTS = ["embedded", "files-written", "manifest-written", "swapped"]


def _index_cmd(docs, index):
    return [sys.executable, "-m", "qa.cli", "index", "--docs", str(docs), "--index", str(index)]


def _env(**extra):
    return {**os.environ, "HF_HUB_OFFLINE": "1", **extra}


@pytest.fixture()
def built(tmp_path, mini_docs):
    index = tmp_path / "index" / "main"
    subprocess.run(_index_cmd(mini_docs, index), check=True, env=_env(), capture_output=True)
    return mini_docs, index


def _edit(docs, n):
    (docs / "new.md").write_text(f"# 第{n}版通知\n\n充电桩补贴标准调整为每千瓦{300 + n}元。\n", encoding="utf-8")


@pytest.mark.parametrize("point", CHECKPOINTS)
def test_kill_at_each_checkpoint_keeps_a_correct_index(built, point):
    docs, index = built
    before = Index.load(index)
    _edit(docs, 1)
    proc = subprocess.run(_index_cmd(docs, index), env=_env(**{FAULT_ENV: point}), capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    after = Index.load(index)  # loadable, checksums match
    if point == "swapped":  # the new index was published just before the kill
        assert "new" in after.documents
    else:
        assert list(after.clauses) == list(before.clauses) and after.manifest == before.manifest
    # and the next run repairs whatever was left half-done
    pipe = Pipeline.open(index, Corpus(docs, "folder"))
    assert "301元" in pipe.ask("充电桩补贴标准", k=1).hits[0].clause.text
    # a killed build's leftovers go with the next build
    _edit(docs, 2)
    assert pipe.refresh()
    assert [p.name for p in index.parent.glob(".main.v*")] == [index.resolve().name]


def test_kill_at_random_moments(built):
    docs, index = built
    rng = random.Random(7)
    for n in range(2, 8):
        _edit(docs, n)
        proc = subprocess.Popen(_index_cmd(docs, index), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        loaded = Index.load(index)
        assert loaded.clauses and len(loaded.clauses) == len(loaded.dense) == len(loaded.sparse)
        newest = loaded.documents.get("new")
        assert newest is None or "充电桩补贴标准" in newest.text
    pipe = Pipeline.open(index, Corpus(docs, "folder"))
    assert "307元" in pipe.ask("充电桩补贴标准", k=1).hits[0].clause.text


def test_queries_are_answered_during_a_rebuild_and_switch_atomically(tmp_path, mini_docs):
    pipe = Pipeline.open(tmp_path / "index" / "main", Corpus(mini_docs, "folder"))
    old = pipe.index
    _edit(mini_docs, 9)
    errors, answers = [], []
    stop = threading.Event()

    def ask_loop():
        while not stop.is_set():
            try:
                answers.append(pipe.ask("充电桩补贴标准", k=3))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(exc)

    threads = [threading.Thread(target=ask_loop) for _ in range(2)]
    for t in threads:
        t.start()
    assert pipe.refresh()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert not errors and answers
    assert pipe.index is not old and "new" in pipe.index.documents
    # every answer came wholly from one index: the old one had no clause about 309元
    assert "309元" in answers[-1].hits[0].clause.text
    for a in answers:
        assert all(h.clause.doc_id in (pipe.index.documents if "309元" in a.hits[0].clause.text
                                       else old.documents) for h in a.hits)
