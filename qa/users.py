"""Who may do what: a users file of argon2 password hashes and three roles.

    reader   ask questions, vote on answers
    editor   + upload, replace and delete documents, run evaluations, review votes
    admin    + manage users

The file (JSON, mode 0600) is read again whenever it changes on disk, so ``qa users add``
takes effect on a running server, and a removed user's open sessions stop working at their
next request: rights are looked up on every call, never stored in a session.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import QAError

ROLES = ("reader", "editor", "admin")
_READER = frozenset({"ask", "vote"})
_EDITOR = _READER | {"upload", "delete", "evaluate", "review", "audit"}
RIGHTS = {"reader": _READER, "editor": _EDITOR, "admin": _EDITOR | {"users"}}
DEFAULT_FILE = Path("index/users.json")
MIN_PASSWORD = 8
#: after this many wrong passwords for one name within LOCK_SECONDS, that name is locked for
#: the rest of the window: argon2 makes each guess cost ~50 ms, this caps guesses per hour
MAX_FAILURES, LOCK_SECONDS = 5, 300
_NAME = re.compile(r"^[\w.@-]{1,64}$")


class UsersError(QAError):
    """A users-file operation was refused; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, right: str) -> bool:
        return right in RIGHTS.get(self.role, frozenset())


class Users:
    """The users file at ``path`` (it need not exist yet)."""

    def __init__(self, path: Path = DEFAULT_FILE) -> None:
        from argon2 import PasswordHasher

        self.path = Path(path)
        self._hasher = PasswordHasher()
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._records: dict[str, dict] = {}
        self._failures: dict[str, list[float]] = {}

    # -- reading ----------------------------------------------------------------------

    def _load(self) -> dict[str, dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._records = None, {}
            return self._records
        if (st.st_mtime_ns, st.st_size) != self._seen:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                records = data["users"]
                if not isinstance(records, dict):
                    raise TypeError("'users' is not an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UsersError(f"{self.path}: not a users file ({exc})") from exc
            self._records, self._seen = records, (st.st_mtime_ns, st.st_size)
        return self._records

    def list(self) -> list[User]:
        with self._lock:
            return [User(name, r["role"]) for name, r in sorted(self._load().items())]

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._load())

    def get(self, name: str | None) -> User | None:
        """The user called ``name`` as the file says now, or None."""
        if not name:
            return None
        with self._lock:
            record = self._load().get(name)
        return User(name, record["role"]) if record and record.get("role") in ROLES else None

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s; wrong guesses lock the name for a while."""
        from argon2.exceptions import InvalidHashError, VerificationError

        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(name, []) if now - t < LOCK_SECONDS]
            self._failures[name] = recent
            if len(recent) >= MAX_FAILURES:
                return False
            record = self._load().get(name)
        try:
            ok = record is not None and self._hasher.verify(record["hash"], password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            with self._lock:
                self._failures.setdefault(name, []).append(now)
        return ok

    # -- writing ----------------------------------------------------------------------

    def add(self, name: str, role: str, password: str, replace: bool = False) -> User:
        if not _NAME.match(name or ""):
            raise UsersError(f"{name!r}: a user name is 1-64 letters, digits or . _ - @")
        if role not in ROLES:
            raise UsersError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise UsersError(f"the password needs at least {MIN_PASSWORD} characters")
        with self._lock:
            records = dict(self._load())
            if name in records and not replace:
                raise UsersError(f"user {name!r} exists; remove it first, or use --replace to change "
                                 f"the password or role")
            records[name] = {"role": role, "hash": self._hasher.hash(password),
                             "changed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self._write(records)
        return User(name, role)

    def remove(self, name: str) -> None:
        with self._lock:
            records = dict(self._load())
            if name not in records:
                raise UsersError(f"no user {name!r} in {self.path}")
            del records[name]
            self._write(records)

    def _write(self, records: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)  # password hashes: readable by the server's account only
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": 1, "users": records}, handle, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._seen = None
