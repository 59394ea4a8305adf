"""Turn the bytes of a file into text: encoding detection and per-format extraction."""

from __future__ import annotations

import logging
import os
import unicodedata
from pathlib import Path

from ..errors import QAError

log = logging.getLogger(__name__)

#: Extensions read as text; other formats are listed in ``EXTRACTORS``.
TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
#: Larger files are skipped with a reason: a 50 MB text is not a policy document, and its
#: millions of clauses would tie up the encoder for hours. QA_MAX_FILE_MB raises the limit.
MAX_FILE_BYTES = int(float(os.environ.get("QA_MAX_FILE_MB", "20")) * 1024 * 1024)
#: A PDF with more pages is refused before any text is extracted (a policy document has tens).
MAX_PDF_PAGES = int(os.environ.get("QA_MAX_PDF_PAGES", "2000"))
#: A DOCX is a zip: refused when its parts would unpack to more than this, or are too many
#: (a zip bomb packs gigabytes into kilobytes).
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_ZIP_PARTS = 10_000


class UnreadableFile(QAError):
    """A file that cannot be turned into text; the message names the file and the reason."""


def decode(data: bytes, name: str = "<bytes>") -> str:
    """Decode text of unknown encoding (UTF-8, GB18030/GBK, UTF-16/32 with BOM, ...).

    UTF-8 is tried strictly first because it is the common case and cannot be confused
    with anything; otherwise charset-normalizer decides.

    Raises:
        UnreadableFile: the bytes are binary or no encoding fits them.
    """
    if not data.strip():
        raise UnreadableFile(f"{name}: the file is empty")
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
                       (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return _check_text(data.decode(codec), name)
            except UnicodeDecodeError:
                break
    try:
        return _check_text(data.decode("utf-8"), name)
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason in ("unexpected end of data", "invalid continuation byte"):
            # a file cut inside its last character: keep everything before it
            log.warning("%s: truncated in the middle of a character; the last bytes are dropped", name)
            return _check_text(data[:exc.start].decode("utf-8"), name)
    if _looks_binary(data):
        raise UnreadableFile(f"{name}: not text (binary data)")
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise UnreadableFile(f"{name}: not text (binary data, or an encoding that cannot be detected)")
    log.info("%s: decoded as %s", name, best.encoding)
    return _check_text(str(best), name)


_CONTROL_BYTES = frozenset(range(0x00, 0x09)) | {0x0B} | frozenset(range(0x0E, 0x1B)) | frozenset(range(0x1C, 0x20))


def _looks_binary(data: bytes) -> bool:
    """Text in any 8-bit or multi-byte Chinese encoding has almost no control bytes."""
    sample = data[:65536]
    return sum(1 for b in sample if b in _CONTROL_BYTES) > len(sample) // 100


def _check_text(text: str, name: str) -> str:
    """Reject decoded 'text' that is mostly control characters (a binary file that happens to decode)."""
    sample = text[:20000]
    bad = sum(1 for ch in sample if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in "\n\r\t\f")
    if bad > max(8, len(sample) // 50):
        raise UnreadableFile(f"{name}: not text ({bad} control or unassigned characters in the first {len(sample)})")
    return text


def read_file(path: Path) -> str:
    """Read a document file of a supported format as text.

    Raises:
        UnreadableFile: unsupported format, too large, binary, or broken.
    """
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UnreadableFile(f"{path.name}: {size / 2**20:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit")
    if suffix in TEXT_SUFFIXES:
        return decode(path.read_bytes(), path.name)
    extractor = EXTRACTORS.get(suffix)
    if extractor is None:
        raise UnreadableFile(f"{path.name}: unsupported file type {suffix or '(none)'}; "
                             f"supported: {', '.join(sorted(supported_suffixes()))}")
    try:
        text = extractor(path)
    except UnreadableFile:
        raise
    except Exception as exc:  # a broken file of a known format: name it, keep going
        raise UnreadableFile(f"{path.name}: cannot read this {suffix} file ({type(exc).__name__}: {exc})") from exc
    if not text.strip():
        raise UnreadableFile(f"{path.name}: no text found (a scanned PDF without a text layer?)")
    return text


def _html(path: Path) -> str:
    import trafilatura

    raw = decode(path.read_bytes(), path.name)
    text = trafilatura.extract(raw, include_comments=False, include_tables=True, favor_recall=True)
    return text or ""


def _pdf(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = len(reader.pages)
    if pages > MAX_PDF_PAGES:
        raise UnreadableFile(f"{path.name}: {pages} pages is over the {MAX_PDF_PAGES}-page limit")
    return "\n\n".join((page.extract_text() or "") for page in reader.pages)


def _docx(path: Path) -> str:
    import zipfile

    import docx

    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(f"{path.name}: cannot read this .docx file (not a zip archive: {exc})") from exc
    unpacked = sum(p.file_size for p in parts)
    if len(parts) > MAX_ZIP_PARTS or unpacked > MAX_UNPACKED_BYTES:
        raise UnreadableFile(f"{path.name}: unpacks to {unpacked / 2**20:.0f} MB in {len(parts)} parts, over the "
                             f"limit of {MAX_UNPACKED_BYTES // 2**20} MB and {MAX_ZIP_PARTS} parts (a zip bomb?)")
    document = docx.Document(str(path))
    return "\n\n".join(p.text for p in document.paragraphs)


EXTRACTORS = {".html": _html, ".htm": _html, ".pdf": _pdf, ".docx": _docx}


def supported_suffixes() -> set[str]:
    return TEXT_SUFFIXES | set(EXTRACTORS)
