"""Adding a user's file to the documents folder: validated, safely named, never clobbering."""

from __future__ import annotations

import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

from ..errors import QAError
from .read import UnreadableFile, read_file, supported_suffixes

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


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


def add_document(source: Path, docs_dir: Path, name: str | None = None, overwrite: bool = False,
                 max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check that ``source`` can be read as a document, then copy it into ``docs_dir``.

    Args:
        name: the name the user gave the file (default: the source's).
        overwrite: replace a document of the same name; refused otherwise.

    Returns:
        The path of the new file under ``docs_dir``.

    Raises:
        UploadRefused: unsupported type, too large, unreadable, or the name is taken.
    """
    target_name = safe_name(name or source.name)
    suffix = Path(target_name).suffix
    if suffix not in supported_suffixes():
        raise UploadRefused(f"{target_name}: unsupported file type {suffix or '(none)'}; "
                            f"supported: {', '.join(sorted(supported_suffixes()))}")
    size = source.stat().st_size
    if size > max_bytes:
        raise UploadRefused(f"{target_name}: {size / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB upload limit")
    with tempfile.TemporaryDirectory() as tmp_dir:
        probe = Path(tmp_dir) / target_name  # the reader picks the format by the name's suffix
        shutil.copyfile(source, probe)
        try:
            read_file(probe)  # the same reader indexing uses: a broken file is refused now, not later
        except UnreadableFile as exc:
            raise UploadRefused(str(exc)) from exc
    docs_dir.mkdir(parents=True, exist_ok=True)
    target = docs_dir / target_name
    if target.resolve().parent != docs_dir.resolve():
        raise UploadRefused(f"{target_name}: not a valid file name")
    if target.exists() and not overwrite:
        raise UploadRefused(f"{target_name} already exists in the documents; tick 'replace' to overwrite it")
    tmp = docs_dir / f".{target_name}.part"
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target
