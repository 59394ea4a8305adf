"""The corpus an index is built from, and when an index must be built again.

``Pipeline`` (searching) uses these to keep its index current: ``build_index`` reads a corpus
and writes its index; ``mismatch`` and ``stale`` say why an existing index cannot be used as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import crosslingual
from . import tokenize as tok
from .config import IndexConfig
from .encoders import Encoder, describe, load_encoder
from .encoders.cache import EmbeddingCache
from .errors import QAError
from .index import Index, Progress
from .ingest import list_files, load_folder
from .ingest.pool import load_pool


@dataclass(frozen=True)
class Corpus:
    """Where the documents come from: a folder of files or a JSON-lines passage pool."""

    path: Path
    kind: str  # "folder" | "pool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(os.path.abspath(self.path)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Corpus":
        return cls(Path(data["path"]), data["kind"])

    def sources(self) -> dict[str, str]:
        """sha256 of every file, by its path under the corpus folder."""
        if self.kind == "pool":
            return {self.path.name: hashlib.sha256(self.path.read_bytes()).hexdigest()}
        return {str(p.relative_to(self.path)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in list_files(self.path)}

    def fingerprint(self, sources: dict[str, str] | None = None) -> str:
        sources = self.sources() if sources is None else sources
        return hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        sources = self.sources()
        return {"kind": self.kind, "path": str(self.path), "hash": self.fingerprint(sources), "sources": sources}

    def signature(self) -> tuple:
        """Cheap change detector: names, sizes and modification times."""
        paths = [self.path] if self.kind == "pool" else list_files(self.path)
        out = []
        for p in paths:
            try:
                st = p.stat()
                out.append((str(p), st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(p), -1, -1))
        return tuple(out)

    def load(self):
        if not self.path.exists():
            raise QAError(f"{self.path}: no such {'file' if self.kind == 'pool' else 'folder'}")
        if self.kind == "pool":
            return load_pool(self.path), []
        return load_folder(self.path)


def cache_for(index_dir: Path) -> EmbeddingCache:
    """The embedding cache shared by the indexes that live beside ``index_dir``."""
    return EmbeddingCache(Path(index_dir).absolute().parent / "cache" / "embeddings.sqlite")


def build_index(corpus: Corpus, index_dir: Path, config: IndexConfig, encoder: Encoder | None = None,
                progress: Progress = False, force: bool = False) -> Index:
    """Read the corpus and build its index at ``index_dir`` (atomically replacing any old one).

    Args:
        force: replace a Milvus collection that holds another corpus's index.
    """
    encoder = encoder or load_encoder(config.encoder)
    description = corpus.describe()  # hashed before reading, so an edit during the build is seen as stale
    documents, skipped = corpus.load()
    cache = cache_for(index_dir)
    try:
        # the clause encoder is freed after embedding unless it also embeds the questions
        return Index.build(documents, encoder, Path(index_dir), config, description, cache=cache,
                           progress=progress, skipped=[{"path": s.path, "reason": s.reason} for s in skipped],
                           force=force, release_encoder=config.query_encoder not in ("", config.encoder))
    finally:
        cache.close()


def mismatch(index: Index, config: IndexConfig) -> str:
    """Why the index cannot be used with these settings, or ''.

    The encoder is compared by what its files say (``qa.encoders.describe``), so checking
    an index does not load the model that built it.
    """
    built = index.manifest
    if index.config != config:
        have, want = index.config.to_json(), config.to_json()
        diff = ", ".join(f"{k}={have[k]!r} (now {want[k]!r})" for k in want if have.get(k) != want[k])
        return f"the index was built with other settings: {diff}"
    want, have = describe(config.encoder), built.get("encoder", {})
    for key in ("backend", "model", "weights"):
        if want.get(key) != have.get(key):
            return f"the index was built with encoder {key}={have.get(key)!r}, now {want.get(key)!r}"
    if built.get("tokenizer") != tok.describe():
        return "the index was built with another tokenizer"
    if config.crosslingual and built.get("crosslingual", {}).get("rules") != crosslingual.RULES:
        return "the index's English lookup was built by older rules"
    return ""


def check_family(config: IndexConfig) -> None:
    """Questions and clauses must be embedded into the same vector space."""
    if not config.query_encoder or config.query_encoder == config.encoder:
        return
    clauses, questions = describe(config.encoder)["family"], describe(config.query_encoder)["family"]
    if clauses != questions:
        raise QAError(f"the query encoder {config.query_encoder} does not embed like {config.encoder} "
                      f"({questions} vs {clauses}); leave the query encoder empty to use the same one")


def stale(index: Index, corpus: Corpus | None) -> str:
    if corpus is None:
        return ""
    recorded = index.manifest.get("corpus", {})
    if recorded.get("path") != str(corpus.path) or recorded.get("kind") != corpus.kind:
        return f"the index was built from {recorded.get('path')}, not {corpus.path}"
    try:
        if corpus.fingerprint() != recorded.get("hash"):
            return "the documents changed since the index was built"
    except OSError as exc:
        raise QAError(f"cannot read the documents at {corpus.path}: {exc}") from exc
    return ""
