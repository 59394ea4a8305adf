"""Building at scale: where the clause encoder runs, its batches, and the build's memory-lean parts."""

from __future__ import annotations

import numpy as np
import pytest

from qa.encoders import load_encoder
from qa.encoders.device import encode_processes, release_freed_memory, resolve_device
from qa.errors import QAError

torch = pytest.importorskip("torch")
NO_GPU = not torch.cuda.is_available()
TEXTS = ["培育技术经纪人2576人次", "全区科技型企业总量目前已达1311家", "technology brokers were trained"]


# --------------------------------------------------------------------------- device and processes


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: auto picks it")
def test_auto_is_the_cpu_where_torch_sees_no_gpu(monkeypatch):
    assert resolve_device("auto") == "cpu"
    assert resolve_device("CPU ") == "cpu"
    monkeypatch.delenv("QA_DEVICE", raising=False)
    assert resolve_device() == "cpu"  # the default is auto


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_with_what_to_do():
    with pytest.raises(QAError) as refused:
        resolve_device("cuda")
    message = str(refused.value)
    assert "QA_DEVICE=cuda" in message and "no CUDA GPU" in message and "QA_DEVICE=cpu" in message


@pytest.mark.parametrize("value", ["gpu", "cuda:0", "mps", "0"])
def test_an_unknown_device_is_refused(monkeypatch, value):
    with pytest.raises(QAError, match="choose auto, cpu or cuda"):
        resolve_device(value)
    monkeypatch.setenv("QA_DEVICE", value)
    with pytest.raises(QAError, match=f"QA_DEVICE='{value}'"):
        resolve_device()


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", ""])
def test_a_bad_number_of_processes_is_refused(value):
    with pytest.raises(QAError, match="QA_ENCODE_PROCESSES"):
        encode_processes(value)


def test_processes_default_to_one(monkeypatch):
    monkeypatch.delenv("QA_ENCODE_PROCESSES", raising=False)
    assert encode_processes() == 1 and encode_processes(" 3 ") == 3


def test_the_encoder_reads_the_device_when_it_loads(monkeypatch):
    monkeypatch.setenv("QA_DEVICE", "cpu")
    encoder = load_encoder("sentence-transformers:minilm")
    assert encoder.describe()["device"] == "cpu" and str(encoder._st.device) == "cpu"
    monkeypatch.setenv("QA_DEVICE", "gpu")  # a new setting loads the model again, and is checked
    with pytest.raises(QAError, match="QA_DEVICE='gpu'"):
        load_encoder("sentence-transformers:minilm")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_qa_index_on_cuda_without_a_gpu_is_one_line_not_a_traceback(monkeypatch, capsys, tmp_path, mini_docs):
    from qa.cli import main

    monkeypatch.setenv("QA_DEVICE", "cuda")
    code = main(["index", "--docs", str(mini_docs), "--index", str(tmp_path / "idx"),
                 "--encoder", "sentence-transformers:minilm"])
    err = capsys.readouterr().err
    assert code != 0 and "QA_DEVICE=cuda" in err and "Traceback" not in err
    assert not (tmp_path / "idx" / "manifest.json").exists()


def test_qa_index_device_flag_wins_over_the_environment_and_refuses_others(monkeypatch, capsys, tmp_path, mini_docs):
    from qa.cli import main
    from qa.index import Index

    with pytest.raises(SystemExit):  # argparse: not one of auto, cpu, cuda
        main(["index", "--docs", str(mini_docs), "--index", str(tmp_path / "idx"), "--device", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    monkeypatch.setenv("QA_DEVICE", "gpu")  # refused if it were read; --device is
    assert main(["index", "--docs", str(mini_docs), "--index", str(tmp_path / "idx"),
                 "--encoder", "sentence-transformers:minilm", "--device", "cpu"]) == 0
    assert Index.load(tmp_path / "idx").manifest["encoder"]["device"] == "cpu"


# --------------------------------------------------------------------------- batches


def test_cpu_batches_keep_to_the_token_budget_and_cover_every_text(monkeypatch):
    import qa.encoders.st as st

    encoder = load_encoder("sentence-transformers:minilm")
    texts = [("政策" * n)[:n] for n in (5, 400, 30, 250, 5, 120, 500, 60)] * 6
    monkeypatch.setattr(st, "TOKEN_BUDGET", 1024)
    batches = encoder._batches(texts)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    lengths = [len(ids) for ids in encoder._st.tokenizer(texts, truncation=True,
                                                         max_length=encoder.max_tokens)["input_ids"]]
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= encoder.batch_size
        assert len(batch) == 1 or len(batch) * longest <= 1024
    assert len(batches) > len(texts) // encoder.batch_size + 1  # long texts did get smaller batches


def test_small_batches_embed_like_the_library_in_one_call(monkeypatch):
    from sentence_transformers import SentenceTransformer

    import qa.encoders.st as st

    texts = TEXTS + ["第十二条 " + "申请人应当提交材料。" * 40, "短"]
    monkeypatch.setattr(st, "TOKEN_BUDGET", 256)
    ours = load_encoder("sentence-transformers:minilm").encode_passages(texts)
    ref = SentenceTransformer(st.resolve("minilm"), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.slow
def test_two_cpu_processes_embed_like_one(monkeypatch):
    texts = [f"第{i}条 " + "科技型企业" * (i % 7 + 1) for i in range(40)]
    monkeypatch.setenv("QA_ENCODE_PROCESSES", "1")
    one = load_encoder("sentence-transformers:minilm").encode_passages(texts)
    monkeypatch.setenv("QA_ENCODE_PROCESSES", "2")
    encoder = load_encoder("sentence-transformers:minilm")
    assert encoder.processes == 2
    two = encoder.encode_passages(texts)
    assert encoder._pool is not None and len(encoder._pool["processes"]) == 2
    np.testing.assert_allclose(two, one, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_queries(TEXTS[:1]), load_encoder(  # one question: no pool round trip
        "sentence-transformers:minilm").encode_queries(TEXTS[:1]), atol=1e-6)


def test_releasing_freed_memory_is_safe_to_call():
    import platform

    from qa.encoders.device import _malloc_trim

    release_freed_memory()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None


# --------------------------------------------------------------------------- cache and postings


def test_cache_fills_rows_in_place_repeated_texts_included(tmp_path):
    from qa.encoders.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path / "c.sqlite")
    rng = np.random.default_rng(0)
    texts = [f"条款{i}" for i in range(1200)]
    vectors = rng.standard_normal((1200, 8)).astype(np.float32)
    cache.put_many("s", texts[::2], vectors[::2])
    cache.put_many("s", ["short blob"], np.ones((1, 4), np.float32))  # another dimension: not a hit
    # texts[:3] again: repeats in another 500-row read; texts[1100] again: within the same read
    asked = texts + texts[:3] + ["short blob", "never stored", texts[1100]]
    out = np.full((len(asked), 8), -7, dtype=np.float32)
    found = cache.read_into("s", asked, out)
    expected = np.array([i % 2 == 0 for i in range(1200)] + [True, False, True, False, False, True])
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(out[:1200][expected[:1200]], vectors[::2])
    np.testing.assert_array_equal(out[1200], vectors[0])
    np.testing.assert_array_equal(out[-1], vectors[1100])
    assert (out[~expected] == -7).all()  # rows not found are left alone
    got = cache.get_many("s", ["条款2", "条款3"], 8)
    np.testing.assert_array_equal(got[0], vectors[2])
    assert got[1] is None
    assert cache.read_into("other space", texts[:4], out[:4]).sum() == 0


def _reference_postings(token_ids: list[list[int]], vocab_size: int):
    """The construction the flat one replaced: (term * n + row) keys, counted by np.unique."""
    n = len(token_ids)
    terms = np.concatenate([np.asarray(t, dtype=np.int64) for t in token_ids if t])
    rows = np.repeat(np.arange(n), [len(t) for t in token_ids])
    keys, counts = np.unique(terms * n + rows, return_counts=True)
    indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n, minlength=vocab_size), out=indptr[1:])
    return indptr, (keys % n).astype(np.int32), counts.astype(np.float32)


def test_postings_from_one_flat_array_equal_the_reference():
    from qa.sparse import Postings

    rng = np.random.default_rng(1)
    token_ids = [rng.integers(0, 50, size=rng.integers(0, 30)).tolist() for _ in range(300)]
    token_ids[7] = []  # an empty row
    token_ids[8] = [3, 3, 3, 49]  # a term repeated in one row
    built = Postings.build(token_ids, 60)  # ten ids past the last used: empty postings
    indptr, rows, tf = _reference_postings(token_ids, 60)
    np.testing.assert_array_equal(built.indptr, indptr)
    np.testing.assert_array_equal(built.rows, rows)
    np.testing.assert_array_equal(built.tf, tf)
    assert built.rows.dtype == np.int32 and built.tf.dtype == np.float32
    np.testing.assert_array_equal(built.lengths, [len(t) for t in token_ids])
    rows3, tf3 = built.term(3)
    assert tf3[list(rows3).index(8)] == 3.0
    assert len(Postings.build([[], []], 5).rows) == 0


def test_sparse_index_ids_follow_first_appearance_across_segments():
    from qa.sparse import SparseIndex

    index = SparseIndex.build([["科技", "企业"], [], ["企业", "企业", "人才"]])
    assert index.vocab == {"科技": 0, "企业": 1, "人才": 2}
    grown = index.add_segment([["人才", "政策"]])
    assert grown.vocab == {"科技": 0, "企业": 1, "人才": 2, "政策": 3}
    assert index.vocab == {"科技": 0, "企业": 1, "人才": 2}  # the old index is left as it was
    scores = grown.scores(["人才"])
    assert scores[0] == scores[1] == 0 and scores[2] > 0 and scores[3] > 0
