"""Files built to hurt a parser: a zip bomb DOCX, a PDF of thousands of pages, a PDF whose
one page takes minutes to read, a DOCX whose parser error carries HTML."""

from __future__ import annotations

import zipfile
from pathlib import Path

XSS = "<img src=x onerror=alert(1)>"


def zip_bomb_docx(path: Path, unpacked_mb: int = 300) -> Path:
    """A .docx of ~300 KB that unpacks to ``unpacked_mb`` MB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (unpacked_mb * 2**20))
    return path


def many_pages_pdf(path: Path, pages: int = 5000) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def slow_pdf(path: Path, operations: int = 3_000_000, per_page: int = 200_000) -> Path:
    """Pages that share one compressed content stream (~15 KB in all) of text-drawing operations:
    pypdf reads ~30,000 a second, so minutes in all. Each page stays under the work limit that
    pypdf 7.1 puts on one stream (2,000,000 tokens), so it is the reading time that must be cut
    short, not pypdf that refuses the file."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 12 Tf " + b"1 0 0 1 10 10 Tm (a) Tj " * per_page + b"ET")
    shared = writer._add_object(content.flate_encode())
    for _ in range(max(1, operations // per_page)):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
        page[NameObject("/Contents")] = shared
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def html_content_type_docx(path: Path) -> Path:
    """A .docx whose main part declares an HTML payload as its content type: python-docx's
    error message then carries the payload."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml",
                         '<?xml version="1.0" encoding="UTF-8"?>'
                         '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                         '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                         f'<Override PartName="/word/document.xml" ContentType="{XSS.replace("<", "&lt;").replace(">", "&gt;")}"/>'
                         '</Types>')
        archive.writestr("_rels/.rels",
                         '<?xml version="1.0" encoding="UTF-8"?>'
                         '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                         '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                         'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        archive.writestr("word/document.xml", "<w:document/>")
    return path
