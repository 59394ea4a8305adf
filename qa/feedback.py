"""Votes on answers: one current vote per user, question and clause; reviewed before they count.

The file is JSON lines; each line is the whole current state of one vote (its id is a hash of
user, question and clause), and the last line for an id wins. Voting again replaces the vote,
un-voting writes it with ``vote: null`` (removed, not inverted), a review writes it with
``review: {verdict, by, time}``. Appending keeps a click cheap; when superseded lines
outnumber live ones the file is rewritten with live votes only, and beyond ``max_votes`` the
oldest votes are rotated out to ``<file>.1`` (replacing the previous one), so the disk holds
at most about twice the cap.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from .errors import QAError

VERDICTS = ("accepted", "rejected")
MAX_VOTES = 10_000
#: what a vote keeps of the passage it is about (the text is the gold quote if accepted)
PASSAGE_FIELDS = ("question", "clause_id", "doc_id", "text", "rank", "mode", "citation")


class FeedbackError(QAError):
    pass


def vote_id(user: str, question: str, clause_id: str) -> str:
    return hashlib.sha256(json.dumps([user, question, clause_id], ensure_ascii=False).encode()).hexdigest()[:12]


class Feedback:
    def __init__(self, path: Path, max_votes: int = MAX_VOTES) -> None:
        self.path = Path(path)
        self.max_votes = max_votes
        self._lock = threading.Lock()
        self._votes: dict[str, dict] | None = None
        self._lines = 0

    def _state(self) -> dict[str, dict]:
        if self._votes is None:
            self._votes, self._lines = {}, 0
            for row in _read(self.path):
                row.setdefault("user", "")
                row.setdefault("review", None)
                row["id"] = row.get("id") or vote_id(row["user"], row.get("question", ""), row.get("clause_id", ""))
                self._lines += 1
                if row.get("vote") in ("up", "down"):
                    self._votes[row["id"]] = row
                else:
                    self._votes.pop(row["id"], None)
        return self._votes

    def votes(self, pending_only: bool = False) -> list[dict]:
        """Live votes, newest first."""
        with self._lock:
            rows = list(self._state().values())
        rows = [r for r in rows if not (pending_only and r["review"])]
        return sorted(rows, key=lambda r: r.get("time", ""), reverse=True)

    def vote(self, user: str, passage: dict[str, Any], vote: str | None) -> dict:
        """Set ``user``'s vote on ``passage`` ("up", "down", or None to remove it)."""
        if vote not in ("up", "down", None):
            raise FeedbackError(f"a vote is up, down or none, not {vote!r}")
        row = {k: passage.get(k) for k in PASSAGE_FIELDS}
        row.update(id=vote_id(user, str(row["question"]), str(row["clause_id"])), user=user, vote=vote,
                   time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), review=None)
        with self._lock:
            self._apply([row])
        return row

    def review(self, ids: Iterable[str], verdict: str, by: str) -> int:
        """Mark votes accepted or rejected; returns how many were found."""
        if verdict not in VERDICTS:
            raise FeedbackError(f"a review is {' or '.join(VERDICTS)}, not {verdict!r}")
        stamp = {"verdict": verdict, "by": by, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with self._lock:
            state = self._state()
            rows = [{**state[i], "review": stamp} for i in dict.fromkeys(ids) if i in state]
            self._apply(rows)
        return len(rows)

    def accepted(self) -> list[dict]:
        """Votes an editor accepted: the only ones evaluation may turn into labels."""
        return [r for r in self.votes() if (r["review"] or {}).get("verdict") == "accepted"]

    def _apply(self, rows: list[dict]) -> None:
        if not rows:
            return
        state = self._state()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                self._lines += 1
                if row["vote"] is None:
                    state.pop(row["id"], None)
                else:
                    state[row["id"]] = row
        if self._lines > 2 * len(state) + 100 or len(state) > self.max_votes:
            self._compact(state)

    def _compact(self, state: dict[str, dict]) -> None:
        live = sorted(state.values(), key=lambda r: r.get("time", ""))
        old, keep = live[:max(0, len(live) - self.max_votes)], live[-self.max_votes:]
        if old:
            _write(self.path.with_name(self.path.name + ".1"), old)
            for row in old:
                state.pop(row["id"], None)
        _write(self.path, keep)
        self._lines = len(keep)


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
