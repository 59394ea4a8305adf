"""Changing the documents folder on a user's behalf: add, replace, delete, with history.

An upload goes in two steps. ``stage`` runs inside the request and is quick: it checks the
name, type and size, claims the name (a claim file created with ``O_EXCL``, so of two uploads
of one name exactly one proceeds) and copies the bytes to a private staging folder.
``commit`` runs as a background job: it reads the file in a child process with limits
(``sandbox``), keeps the old version of a replaced document under ``.history/`` with the
time, puts the new one in place atomically, and appends to the audit log. Staging files
and claims are removed whatever happens. Hidden folders (``.uploads``, ``.history``) are never
indexed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..audit import AuditLog
from ..errors import QAError
from ..store import file_sha256
from .read import UnreadableFile, supported_suffixes
from .sandbox import check_readable

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
STAGING, HISTORY = ".uploads", ".history"


class UploadRefused(QAError):
    """The file was not added; the message says why."""


def safe_name(name: str) -> str:
    """A file name that cannot leave the folder or confuse a shell: no path parts, no dot files.

    Chinese characters are kept ("关于…的通知.docx" stays readable).
    """
    name = unicodedata.normalize("NFKC", Path(name.replace("\\", "/")).name)
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    stem = re.sub(r"[^0-9A-Za-z_\-\u3400-\u9fff（）()·]+", "_", stem).strip("._-") or "document"
    return f"{stem[:80]}{suffix}"


@dataclass(frozen=True)
class Staged:
    """An upload that passed the quick checks and holds the claim on its name."""

    name: str
    path: Path       # the bytes, in a staging folder of their own
    claim: Path
    overwrite: bool
    user: str


class Library:
    """The documents folder as users change it.

    Args:
        docs_dir: the documents folder the index is built from.
        audit: where every change is recorded.
    """

    def __init__(self, docs_dir: Path, audit: AuditLog, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.docs_dir = Path(docs_dir)
        self.audit = audit
        self.max_bytes = max_bytes

    # -- claims: one change per file name at a time ----------------------------------------

    def _claim(self, name: str) -> Path:
        folder = self.docs_dir / STAGING
        folder.mkdir(parents=True, exist_ok=True)
        claim = folder / f"{name}.claim"
        for _ in range(2):
            try:
                fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                if _stale(claim):
                    claim.unlink(missing_ok=True)
                    continue
                raise UploadRefused(f"{name}: another change to this document is in progress; "
                                    f"try again when it has finished") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return claim
        raise UploadRefused(f"{name}: could not claim the name; try again")

    # -- adding -------------------------------------------------------------------------

    def stage(self, source: Path, name: str | None = None, overwrite: bool = False, user: str = "") -> Staged:
        """Quick checks, claim the name, copy the bytes aside. Raises UploadRefused."""
        target_name = safe_name(name or source.name)
        suffix = Path(target_name).suffix
        if suffix not in supported_suffixes():
            raise UploadRefused(f"{target_name}: unsupported file type {suffix or '(none)'}; "
                                f"supported: {', '.join(sorted(supported_suffixes()))}")
        size = source.stat().st_size
        if size > self.max_bytes:
            raise UploadRefused(f"{target_name}: {size / 2**20:.1f} MB is over the "
                                f"{self.max_bytes / 2**20:.0f} MB upload limit")
        if size == 0:
            raise UploadRefused(f"{target_name}: the file is empty")
        claim = self._claim(target_name)
        try:
            if (self.docs_dir / target_name).exists() and not overwrite:
                raise UploadRefused(f"{target_name} already exists in the documents; tick 'replace' to overwrite it")
            folder = Path(tempfile.mkdtemp(prefix="up-", dir=self.docs_dir / STAGING))
            shutil.copyfile(source, folder / target_name)  # the reader picks the format by the suffix
        except BaseException:
            claim.unlink(missing_ok=True)
            raise
        return Staged(target_name, folder / target_name, claim, overwrite, user)

    def commit(self, staged: Staged) -> Path:
        """Read the staged file under limits, then put it in place. Raises UploadRefused."""
        try:
            try:
                check_readable(staged.path)
            except UnreadableFile as exc:
                raise UploadRefused(str(exc)) from exc
            target = self.docs_dir / staged.name
            digest = file_sha256(staged.path)
            old = None
            if staged.overwrite and target.exists():
                old = self._keep(target)
                os.replace(staged.path, target)
            else:
                try:
                    os.link(staged.path, target)  # fails, atomically, if the name was taken meanwhile
                except FileExistsError:
                    raise UploadRefused(f"{staged.name} already exists in the documents; "
                                        f"tick 'replace' to overwrite it") from None
            self.audit.record(staged.user, "replace" if old else "add", staged.name, digest,
                              **({"previous": str(old.relative_to(self.docs_dir))} if old else {}))
            return target
        finally:
            self.discard(staged)

    def discard(self, staged: Staged) -> None:
        shutil.rmtree(staged.path.parent, ignore_errors=True)
        staged.claim.unlink(missing_ok=True)

    def add(self, source: Path, name: str | None = None, overwrite: bool = False, user: str = "") -> Path:
        """``stage`` then ``commit``, in the caller's thread."""
        return self.commit(self.stage(source, name, overwrite, user))

    # -- deleting -----------------------------------------------------------------------

    def delete(self, name: str, user: str = "") -> Path:
        """Move a document to ``.history/`` (with the time); returns where it went."""
        if safe_name(name) != name:
            raise UploadRefused(f"{name!r}: not a document name")
        claim = self._claim(name)
        try:
            target = self.docs_dir / name
            if not target.is_file():
                raise UploadRefused(f"{name}: no such document")
            digest = file_sha256(target)
            kept = self._keep(target)
            self.audit.record(user, "delete", name, digest, previous=str(kept.relative_to(self.docs_dir)))
            return kept
        finally:
            claim.unlink(missing_ok=True)

    def _keep(self, target: Path) -> Path:
        """Move ``target`` into the history folder under a name that starts with the time."""
        history = self.docs_dir / HISTORY
        history.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in range(1000):
            kept = history / f"{stamp}-{n:03d}-{target.name}"  # sorts by time, then order
            try:
                os.link(target, kept)
                break
            except FileExistsError:
                continue
        else:
            raise UploadRefused(f"{target.name}: too many versions this second; try again")
        target.unlink()
        return kept


def _stale(claim: Path) -> bool:
    """A claim left by a process that no longer runs (a crash or a restart)."""
    try:
        pid = int(claim.read_text() or 0)
        os.kill(pid, 0)
    except PermissionError:
        return False  # alive, under another account
    except (OSError, ValueError):
        return True
    return False

