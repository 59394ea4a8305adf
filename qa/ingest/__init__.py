"""Ingestion: files in a folder -> cleaned ``Document`` records with metadata.

``load_folder`` never stops at a bad file: a file that cannot be read is reported in the
returned ``skipped`` list with its reason and the rest are indexed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..types import Document, Heading
from .clean import Para, paragraphs
from .newspaper import looks_like_newspaper, split_articles
from .read import UnreadableFile, read_file, supported_suffixes
from .webpage import looks_like_webpage, parse_webpage

log = logging.getLogger(__name__)

__all__ = ["load_folder", "load_file", "parse_text", "Skipped", "UnreadableFile", "supported_suffixes",
           "list_files", "folder_fingerprint"]

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*$")
_SAFE_ID = re.compile(r"[^0-9A-Za-z_\-\u3400-\u9fff]+")


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, and why."""

    path: str
    reason: str


def list_files(folder: Path) -> list[Path]:
    """Supported files under ``folder``, sorted, hidden files and folders left out."""
    suffixes = supported_suffixes()
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in suffixes:
            out.append(path)
    return out


def folder_fingerprint(folder: Path) -> str:
    """A hash of every indexable file's relative path and contents."""
    digest = hashlib.sha256()
    for path in list_files(folder):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def load_folder(folder: Path) -> tuple[list[Document], list[Skipped]]:
    """Read, clean and split every supported file under ``folder``."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for path in list_files(folder):
        rel = str(path.relative_to(folder))
        try:
            docs = load_file(path, rel)
        except UnreadableFile as exc:
            log.warning("skipped %s", exc)
            skipped.append(Skipped(rel, str(exc)))
            continue
        if not docs:
            skipped.append(Skipped(rel, f"{rel}: no text left after cleaning"))
        documents.extend(docs)
    return documents, skipped


def load_file(path: Path, rel: str | None = None) -> list[Document]:
    """Read and clean one file; a newspaper page gives one document per article."""
    rel = rel or path.name
    return parse_text(read_file(path), source=rel, doc_id=doc_id_for(rel), markdown=path.suffix.lower() != ".txt")


def doc_id_for(rel: str) -> str:
    """A readable, stable id from the file's path under the docs folder."""
    stem = str(Path(rel).with_suffix(""))
    return _SAFE_ID.sub("_", stem).strip("_") or hashlib.sha1(rel.encode()).hexdigest()[:12]


def parse_text(text: str, source: str, doc_id: str, markdown: bool = False) -> list[Document]:
    """Clean raw text and cut it into documents, picking the layout it looks like."""
    paras = paragraphs(text)
    if not paras:
        return []
    if looks_like_webpage(paras):
        title, body, meta = parse_webpage(paras)
        meta["kind"] = "web page"
        return [_assemble(doc_id, title or _stem(source), body, source, meta, title_in_body=bool(title))]
    if looks_like_newspaper(paras):
        articles, teaser = split_articles(paras)
        if teaser:
            log.info("%s: dropped a teaser for another page: %s", source, " / ".join(teaser))
        docs = []
        for n, art in enumerate(articles, 1):
            lines = [Para(art.kicker, alone=True)] if art.kicker else []
            if art.headline:
                lines.append(Para(art.headline, alone=True))
            lines += [Para(t) for t in art.body]
            meta = dict(art.meta)
            meta["page_part"] = f"{n}/{len(articles)}"
            docs.append(_assemble(f"{doc_id}-{n}", art.title, lines, source, meta,
                                  title_in_body=bool(art.headline), n_heads=len(lines) - len(art.body)))
        return docs
    return [_plain(paras, source, doc_id, markdown)]


def _plain(paras: list[Para], source: str, doc_id: str, markdown: bool) -> Document:
    levels: dict[int, int] = {}
    body: list[Para] = []
    for para in paras:
        match = _MD_HEADING.match(para.text) if markdown else None
        if match:
            levels[len(body)] = len(match.group(1)) - 1
            body.append(Para(match.group(2), alone=True))
        else:
            body.append(para)
    if 0 in levels or body[0].headline_like:
        title, in_body = body[0].text, True
        levels[0] = 0
    else:
        title, in_body = _stem(source), False
    return _assemble(doc_id, title, body, source, {"kind": "text"}, title_in_body=in_body, levels=levels)


def _assemble(doc_id: str, title: str, body: list[Para], source: str, meta: dict[str, str],
              title_in_body: bool, n_heads: int | None = None, levels: dict[int, int] | None = None) -> Document:
    """Join paragraphs with newlines and record the spans of the headings ingestion knows.

    Args:
        n_heads: how many leading paragraphs are title lines (kicker, headline); default 1
            if the title is in the body, else 0.
        levels: paragraph index -> heading level for other known headings (Markdown).
    """
    levels = dict(levels or {})
    for i in range(n_heads if n_heads is not None else int(title_in_body)):
        levels[i] = 0
    texts = [p.text for p in body]
    headings = []
    pos = 0
    for i, text in enumerate(texts):
        if i in levels:
            headings.append(Heading(level=levels[i], label="", text=text, start=pos, end=pos + len(text)))
        pos += len(text) + 1
    return Document(doc_id=doc_id, title=title, text="\n".join(texts), source=source,
                    meta={k: v for k, v in meta.items() if v}, headings=tuple(headings))


def _stem(source: str) -> str:
    return Path(source).stem
