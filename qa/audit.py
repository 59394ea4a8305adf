"""The audit trail: one JSON line per change to the documents (who, when, what, file hash).

Append-only; lines are written whole under a lock, so concurrent writers never interleave.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def record(self, user: str, action: str, file: str, sha256: str = "", **detail: Any) -> dict:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "user": user, "action": action,
                 "file": file, "sha256": sha256, **detail}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with _LOCK:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
        return entry

    def last(self, n: int = 50) -> list[dict]:
        """The newest ``n`` entries, newest first."""
        if not self.path.exists():
            return []
        with _LOCK, open(self.path, encoding="utf-8") as handle:
            lines = deque(handle, maxlen=n)
        out = []
        for line in reversed(lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash: skip it, keep the rest
        return out
