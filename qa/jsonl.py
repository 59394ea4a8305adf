"""JSON-lines files: one JSON object per line, as the index, the labelled sets and the benchmarks keep them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import QAError


class MissingFile(QAError, FileNotFoundError):
    """Also a FileNotFoundError, so a caller that handles a missing file as an OSError still does."""


class BadLine(QAError, ValueError):
    """Also a ValueError, so a caller that handles unreadable JSON as a ValueError still does."""


def read(path: Path) -> list[Any]:
    """Every non-blank line's value, in order; a missing file or a line that is not JSON is a
    clear error naming the file and the line."""
    path = Path(path)
    if not path.exists():
        raise MissingFile(f"{path}: no such file")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise BadLine(f"{path}:{n}: not JSON ({exc})") from exc
    return rows


def write(path: Path, rows: Iterable[Any]) -> None:
    """One line per row, UTF-8 kept readable (no \\u escapes)."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
