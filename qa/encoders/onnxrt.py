"""A sentence-transformers folder run by ONNX Runtime: the same vectors, less overhead per call.

The graph is exported once from the folder (torch + onnx, about 10 s) into
``index/models/onnx/<name>-<weights>/`` and holds the transformer layers, mean pooling and
normalisation. The word-embedding table (384 MB of the converted e5's 470 MB) stays out of
the graph: rows are looked up in ``model.safetensors`` through a memory map, so loading
takes 0.2 s instead of 1.5 s and only the rows a text uses are read.

Only folders whose pooling is the mean of the token vectors (E5, MiniLM, ...) and whose
word embeddings are stored in float32 or float16 are exported; other models run through
sentence-transformers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency, QAError
from ..store import replace_folder
from .base import PrefixedEncoder

log = logging.getLogger(__name__)

GRAPH = "encoder.onnx"
INFO = "export.json"  #: written last: its presence and content identify a complete export
EXPORTER_VERSION = 1  #: bump when the graph this module writes changes
OPSET = 17
_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16}


class OnnxEncoder(PrefixedEncoder):
    """Questions and passages through an exported graph; token ids from the folder's tokenizer.json.

    Args:
        model: a sentence-transformers name or folder, as for ``sentence-transformers:``.
        batch_size: passages per call of the graph.
    """

    def __init__(self, model: str, batch_size: int = 32) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependency("onnxruntime") from exc
        self.model = model
        self._weights = describe_model(model)
        self.folder = Path(self._weights["path"])
        graph = export(self.folder)
        info = json.loads((graph / INFO).read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The pool's threads would otherwise spin after each call and take the core that the
        # FAISS and BM25 searches of the same question need next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(graph / GRAPH), options, providers=["CPUExecutionProvider"])
        self._runtime = ort.__version__
        self._table = word_embeddings(self.folder)
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()  # _cut() cuts, so that token_count() counts everything
        self.max_tokens = int(info["max_tokens"])
        self.dim = int(info["dim"])
        self.query_prefix, self.passage_prefix = info["prefixes"]["query"], info["prefixes"]["passage"]
        self.batch_size = batch_size

    def _encode(self, texts: list[str]) -> np.ndarray:
        rows = [self._cut(e.ids) for e in self._tokenizer.encode_batch(texts)]
        order = np.argsort([len(r) for r in rows], kind="stable")  # batches of like lengths: less padding
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for start in range(0, len(rows), self.batch_size):
            chosen = order[start:start + self.batch_size]
            batch = [rows[i] for i in chosen]
            ids = np.zeros((len(batch), max(map(len, batch))), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, tokens in enumerate(batch):
                ids[row, :len(tokens)] = tokens
                mask[row, :len(tokens)] = 1
            embeds = np.asarray(self._table[ids], dtype=np.float32)  # padding rows are masked out
            out[chosen] = self._session.run(None, {"inputs_embeds": embeds, "attention_mask": mask})[0]
        return out

    def _cut(self, ids: list[int]) -> list[int]:
        """The first ``max_tokens - 1`` tokens and the closing special token, as sentence-transformers cuts."""
        return ids if len(ids) <= self.max_tokens else ids[:self.max_tokens - 1] + ids[-1:]

    def token_count(self, text: str) -> int:
        return len(self._tokenizer.encode(self.query_prefix + text).ids)

    def describe(self) -> dict[str, Any]:
        return {**self._weights, "dim": self.dim, "precision": "float32", "runtime": f"onnxruntime=={self._runtime}",
                "prefixes": {"query": self.query_prefix, "passage": self.passage_prefix}}


def describe_model(model: str) -> dict[str, Any]:
    """The folder's identity (st.describe_model): the graph computes the folder's own vectors."""
    from .st import describe_model as describe_folder

    return {**describe_folder(model), "backend": "onnx"}


# --------------------------------------------------------------------------- export


def export_dir(folder: Path, weights: str) -> Path:
    """Where the graph of ``folder`` (whose weights are identified by ``weights``) is kept."""
    from .e5_convert import default_target

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(folder).name)
    return default_target().parent / "onnx" / f"{name}-{weights}"


def export(folder: Path, force: bool = False) -> Path:
    """Export ``folder`` once; return the directory of its graph.

    Written under a temporary name and renamed into place, ``export.json`` last, so a
    directory with a readable ``export.json`` is complete.
    """
    weights = describe_model(str(folder))["weights"]
    target = export_dir(folder, weights)
    if not force and _is_current(target):
        return target
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise MissingDependency("onnx") from exc
    pooling = _read_json(Path(folder) / "1_Pooling" / "config.json")
    # sentence-transformers before 6 saved one flag per mode; 6 saves "pooling_mode": "mean"
    if not (pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode") == "mean"):
        raise QAError(f"{folder}: only models with mean pooling can run through onnx; "
                      "use sentence-transformers:<model> for this one")
    word_embeddings(folder)  # fails early if the table cannot be memory-mapped

    started = time.monotonic()
    st_config = _read_json(Path(folder) / "config_sentence_transformers.json")
    prompts = st_config.get("prompts") or {}
    bert_config = _read_json(Path(folder) / "sentence_bert_config.json")
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused pooler "newly initialized" is not news
    try:
        transformer = AutoModel.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager",
                                                local_files_only=True).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    hidden = int(transformer.config.hidden_size)
    max_tokens = int(bert_config.get("max_seq_length") or transformer.config.max_position_embeddings)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.exporting-", dir=target.parent))
    os.chmod(work, 0o755)
    try:
        sample = torch.randn(2, 5, hidden)
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # a padded row, so masking is traced
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python branches that the fixed graph does not need
            torch.onnx.export(_mean_pooled(transformer), (sample, mask), str(work / GRAPH),
                              input_names=["inputs_embeds", "attention_mask"], output_names=["embedding"],
                              dynamic_axes={"inputs_embeds": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "embedding": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        info = {"exporter_version": EXPORTER_VERSION, "folder": str(folder), "weights": weights,
                "dim": hidden, "max_tokens": max_tokens, "opset": OPSET, "torch": torch.__version__,
                "prefixes": {"query": prompts.get("query", ""),
                             "passage": prompts.get("passage", prompts.get("document", ""))},
                "graph_bytes": (work / GRAPH).stat().st_size,
                "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (work / INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
        replace_folder(work, target, lambda: _is_current(target))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already after a successful rename
    log.info("exported %s to ONNX in %.1fs", folder, time.monotonic() - started)
    return target


def _mean_pooled(transformer):
    """``transformer`` followed by mean pooling over the unmasked tokens and normalisation."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, inputs_embeds, attention_mask):
            tokens = self.inner(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    return MeanPooled(transformer)


def _is_current(target: Path) -> bool:
    try:
        info = json.loads((target / INFO).read_text(encoding="utf-8"))
        return (info.get("exporter_version") == EXPORTER_VERSION
                and (target / GRAPH).stat().st_size == info.get("graph_bytes"))
    except (OSError, ValueError, AttributeError):
        return False


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def word_embeddings(folder: Path) -> np.ndarray:
    """The word-embedding table of ``folder/model.safetensors``, memory-mapped (read-only)."""
    path = Path(folder) / "model.safetensors"
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise QAError(f"{path}: cannot read the safetensors header ({exc})") from exc
    names = [k for k in header if k.endswith("word_embeddings.weight")]
    if len(names) != 1 or header[names[0]]["dtype"] not in _SAFETENSORS_DTYPES:
        raise QAError(f"{path}: no float32 or float16 word-embedding table to map; "
                      "use sentence-transformers:<model> for this model")
    meta = header[names[0]]
    begin, _ = meta["data_offsets"]
    return np.memmap(path, dtype=_SAFETENSORS_DTYPES[meta["dtype"]], mode="r",
                     offset=8 + length + begin, shape=tuple(meta["shape"]))
