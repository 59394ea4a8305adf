"""The index folder on disk: manifest, checksums, and atomic replacement.

An index is published as ``<name>`` -> a symbolic link to ``.<name>.v<timestamp>``. A new
build is written to a fresh versioned folder, its manifest last, and the link is then
swapped with one ``rename``: a reader sees either the old index or the new one, never a
half-written folder, and a build killed midway leaves the old index in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import IndexCorrupt, IndexMissing

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: Crash tests set this to a checkpoint name; the process then kills itself there (SIGKILL).
FAULT_ENV = "QA_FAULT_AT"


def checkpoint(name: str) -> None:
    """A named point of an index build where the crash tests kill the process."""
    if os.environ.get(FAULT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_card(card_path: Path, what: str, way_out: str, error: type[Exception]) -> dict:
    """A trained model's card (JSON with "files": {name: sha256}), after checking every file it names.

    Raises ``error`` naming the file and ``way_out`` when the card or a file is missing, unreadable,
    truncated or replaced: a trained part is never silently skipped.
    """
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        files = card["files"]
        names = list(files.items())
    except OSError:
        raise error(f"{what}'s card {card_path} is missing: {way_out}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise error(f"{what}'s card {card_path} is not readable JSON with 'files': {way_out}") from None
    for name, digest in names:
        path = card_path.parent / name
        if not path.is_file():
            raise error(f"{what}'s file {path} is missing: {way_out}")
        if file_sha256(path) != digest:
            raise error(f"{what}'s file {path} does not match the sha256 in {card_path} "
                        f"(truncated or replaced): {way_out}")
    return card


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def publish(target: Path, write: Callable[[Path], dict[str, Any]],
            unchanged: dict[str, dict[str, Any]] | None = None) -> Path:
    """Build an index folder with ``write`` and publish it at ``target`` atomically.

    Args:
        target: the path users give (``index/main``); becomes a symbolic link.
        write: fills the given empty folder and returns the manifest (without checksums).
        unchanged: checksums already known for files linked from the previous version
            (reused when the size still matches, so an update does not re-hash everything).

    Returns:
        The versioned folder now published.
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    version = target.parent / f".{target.name}.v{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    version.mkdir()
    try:
        manifest = write(version)
        checkpoint("files-written")
        known = unchanged or {}
        manifest["files"] = {}
        for p in _files(version):
            name, size = str(p.relative_to(version)), p.stat().st_size
            reuse = known.get(name)
            manifest["files"][name] = (reuse if reuse and reuse["bytes"] == size
                                       else {"bytes": size, "sha256": file_sha256(p)})
        _write_json_durably(version / MANIFEST, manifest)
        _fsync_dir(version)
        checkpoint("manifest-written")
        _swap_link(target, version)
        checkpoint("swapped")
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    _remove_old_versions(target, keep=version)
    return version


def replace_folder(work: Path, target: Path, is_current: Callable[[], bool]) -> None:
    """Rename the finished folder ``work`` to ``target`` (models, exported graphs).

    An existing ``target`` is moved aside first and deleted once the new folder is in place,
    or put back if the rename fails. ``is_current()`` tells whether a failed rename lost to
    another process that has just put the same folder there, which is success.
    """
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, aside / "folder")
    try:
        os.rename(work, target)
    except OSError:
        if is_current():
            return
        if aside is not None and not target.exists():
            os.rename(aside / "folder", target)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def _write_json_durably(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    for path in [*_files(folder), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_link(target: Path, version: Path) -> None:
    if target.exists() and not target.is_symlink():
        # an index folder from elsewhere (copied in by hand): keep it aside, do not delete it
        aside = target.parent / f".{target.name}.replaced-{int(time.time())}"
        target.rename(aside)
        log.warning("moved the existing folder %s to %s", target, aside)
    link = target.parent / f".{target.name}.link-{os.getpid()}"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(version.name)
    os.replace(link, target)
    _fsync_dir_entry(target.parent)


def _fsync_dir_entry(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_old_versions(target: Path, keep: Path) -> None:
    """Delete earlier versions and builds abandoned by killed processes."""
    for old in target.parent.glob(f".{target.name}.v*"):
        if old != keep and old.is_dir() and not _owned_by_live_build(old):
            shutil.rmtree(old, ignore_errors=True)


def _owned_by_live_build(folder: Path) -> bool:
    """A version folder without a manifest may belong to a build still running."""
    if (folder / MANIFEST).exists():
        return False
    try:
        pid = int(folder.name.split("-")[2])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return pid != os.getpid()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of an index folder.

    Raises:
        IndexMissing: no index there.
        IndexCorrupt: the manifest is unreadable.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise IndexMissing(f"no index at {folder} (build one with: qa index)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{path}: unreadable manifest ({exc})") from exc


def verify(folder: Path, manifest: dict[str, Any], hashes: bool = True) -> None:
    """Check every file the manifest lists: present, of the recorded size and checksum.

    Raises:
        IndexCorrupt: naming the first file that does not match.
    """
    for name, info in manifest.get("files", {}).items():
        path = Path(folder) / name
        if not path.is_file():
            raise IndexCorrupt(f"{path}: missing")
        if path.stat().st_size != info["bytes"]:
            raise IndexCorrupt(f"{path}: {path.stat().st_size} bytes, the manifest says {info['bytes']} (truncated?)")
        if hashes and file_sha256(path) != info["sha256"]:
            raise IndexCorrupt(f"{path}: checksum does not match the manifest (corrupted)")
