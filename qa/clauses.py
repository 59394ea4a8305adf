"""Cut a cleaned document into clauses, each with its heading path and character span.

Clauses end at Chinese sentence and clause ends (。！？；) and their ASCII forms (; ! ?),
keeping closing quotes and brackets. Policy texts number their structure with a ladder,
outermost first::

    第一章  第一节  一、  （一）  1.  （1）  一是/二是  第一条

A numbered paragraph's first sentence, when short, is a heading: it is not a clause of its
own but becomes part of the heading path of the clauses that follow it. "一是…。" sentences
inside a paragraph head the sentences after them in the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .types import Clause, Document, Heading

_CN_NUM = "一二三四五六七八九十百零〇两"

#: (rank, pattern) of the numbering ladder; a lower rank is an outer level.
LADDER: list[tuple[int, re.Pattern[str]]] = [
    (10, re.compile(rf"^第[{_CN_NUM}\d]+章\s*")),
    (11, re.compile(rf"^第[{_CN_NUM}\d]+节\s*")),
    (12, re.compile(rf"^[{_CN_NUM}]+\s*[、.．]\s*")),
    (13, re.compile(rf"^[（(]\s*[{_CN_NUM}]+\s*[）)]\s*")),
    (14, re.compile(r"^\d{1,2}\s*[.．、](?!\d)\s*")),
    (15, re.compile(r"^[（(]\s*\d{1,2}\s*[）)]\s*")),
    (16, re.compile(rf"^(其)?[{_CN_NUM}]{{1,3}}是(?=[^，,。是])")),
    (17, re.compile(rf"^第[{_CN_NUM}\d]+条\s*")),
]
INLINE_RANK = 16  # 一是/二是 heads sentences inside a paragraph
_INLINE = dict(LADDER)[INLINE_RANK]
ARTICLE_RANK = 17  # 第X条 is content: its label heads the article's clauses

_SPLIT_AFTER = "。！？；!?;"
_CLOSERS = "”’」』）)】》\"'"
_OPEN, _CLOSE = "（(《【", "）)》】"
_COMMAS = "，,：:"


#: Words by which a clause points back at something named before it ("该区", "其中", "上述").
_REFERS_BACK = re.compile(r"该(区|市|县|省|镇|局|委|部|厅|单位|公司|企业|项目|平台|园区|基地|中心|机构|政策|措施|办法|方案)|"
                          r"^(其中|此外|同时|另外|对此|为此|据此|上述|这些|这一|此举|此项|该项)|上述")


def refers_back(text: str) -> bool:
    """Whether a clause opens by referring to something named before it."""
    return bool(_REFERS_BACK.search(text[:16]))


@dataclass(frozen=True)
class ChunkConfig:
    """How clauses are cut.

    Attributes:
        min_chars: a clause with fewer non-space characters is merged into a neighbour.
        max_chars: a longer clause is split at commas.
        max_heading_chars: a numbered first sentence up to this length is a heading.
    """

    min_chars: int = 10
    max_chars: int = 160
    max_heading_chars: int = 40


def chunk(doc: Document, config: ChunkConfig = ChunkConfig()) -> tuple[list[Clause], list[Heading]]:
    """Split ``doc`` into clauses; also return every heading found (for coverage checks)."""
    known = {h.start: h for h in doc.headings}
    headings: list[Heading] = list(doc.headings)
    stack: list[tuple[float, str]] = []  # (rank, heading text) from outermost in
    pieces: list[tuple[int, int, tuple[str, ...]]] = []
    inline_done = False  # the current 一是 heading already has clauses under it

    paras = _paragraphs(doc.text)
    for n, (p_start, p_end) in enumerate(paras):
        if p_start in known:
            head = known[p_start]
            if head.level > 0:  # Markdown headings; level 0 are the title and kicker
                _push(stack, float(head.level), head.text)
            continue
        if inline_done:
            _pop_from(stack, INLINE_RANK)
            inline_done = False
        pos = p_start
        rank, label = _marker(doc.text[p_start:p_end])
        if rank is not None:
            first_end = _sentence_end(doc.text, p_start, p_end)
            first = doc.text[p_start:first_end].strip()
            alone = first_end >= p_end  # the paragraph is one sentence
            nxt = _marker(doc.text[slice(*paras[n + 1])])[0] if n + 1 < len(paras) else None
            is_item = alone and (nxt is None and n + 1 >= len(paras) or nxt is not None and nxt <= rank)
            if rank == ARTICLE_RANK or len(first) > config.max_heading_chars or is_item:
                # content, not a heading: the marker alone labels it
                _push(stack, rank, label.strip())
            else:
                _push(stack, rank, first)
                headings.append(Heading(level=int(rank), label=label.strip(), text=first,
                                        start=p_start, end=p_start + len(first)))
                pos = first_end
        for s_start, s_end in _sentences(doc.text, pos, p_end):
            sentence = doc.text[s_start:s_end]
            inline = _INLINE.match(sentence)
            if inline and len(sentence.strip()) <= config.max_heading_chars:
                _pop_from(stack, INLINE_RANK)
                _push(stack, INLINE_RANK, sentence.strip())
                headings.append(Heading(level=INLINE_RANK, label=inline.group(0), text=sentence.strip(),
                                        start=s_start, end=s_end))
                inline_done = False
                continue
            pieces.append((s_start, s_end, tuple(text for _, text in stack)))
            inline_done = any(r == INLINE_RANK for r, _ in stack)

    pieces = _split_long(doc.text, pieces, config.max_chars)
    pieces = _merge_short(doc.text, pieces, config.min_chars)
    return _number(doc, pieces), sorted(headings, key=lambda h: h.start)


def _paragraphs(text: str) -> list[tuple[int, int]]:
    out, start = [], 0
    for line in text.split("\n"):
        end = start + len(line)
        if line.strip():
            out.append((start, end))
        start = end + 1
    return out


def _marker(paragraph: str) -> tuple[float | None, str]:
    for rank, pattern in LADDER:
        match = pattern.match(paragraph)
        if match:
            return float(rank), match.group(0)
    return None, ""


def _push(stack: list[tuple[float, str]], rank: float, text: str) -> None:
    _pop_from(stack, rank)
    stack.append((rank, text))


def _pop_from(stack: list[tuple[float, str]], rank: float) -> None:
    while stack and stack[-1][0] >= rank:
        stack.pop()


def _sentence_end(text: str, start: int, end: int) -> int:
    spans = _sentences(text, start, end)
    return spans[0][1] if spans else end


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of sentences and clauses in text[start:end], whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    depth = 0
    i = cut = start
    while i < end:
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
        if ch in _SPLIT_AFTER and (depth == 0 or ch not in ";；") and _is_clause_end(text, i, end):
            j = i + 1
            while j < end and (text[j] in _CLOSERS or text[j] in _SPLIT_AFTER):
                j += 1
            spans.append((cut, j))
            cut = i = j
            depth = 0
            continue
        i += 1
    spans.append((cut, end))
    return [s for s in (_trim(text, a, b) for a, b in spans) if s[0] < s[1]]


def _is_clause_end(text: str, i: int, end: int) -> bool:
    """ASCII ; ! ? end a clause only inside Chinese text, not in "a; b" or a URL."""
    ch = text[i]
    if ch not in ";!?":
        return True
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < end else ""
    return _cjk(before) or _cjk(after) or after == ""


def _cjk(ch: str) -> bool:
    return bool(ch) and ("\u3400" <= ch <= "\u9fff" or ch in "”」』）》")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, pieces: list, max_chars: int) -> list:
    """Cut clauses over ``max_chars`` at commas outside brackets, greedily."""
    out = []
    for start, end, path in pieces:
        if end - start <= max_chars:
            out.append((start, end, path))
            continue
        cuts, depth = [], 0
        for i in range(start, end):
            ch = text[i]
            depth += ch in _OPEN
            depth -= ch in _CLOSE and depth > 0
            if ch in _COMMAS and depth == 0:
                cuts.append(i + 1)
        seg_start = start
        last_ok = None
        for c in cuts + [end]:
            if c - seg_start > max_chars and last_ok is not None:
                out.append((*_trim(text, seg_start, last_ok), path))
                seg_start = last_ok
            last_ok = c
        out.append((*_trim(text, seg_start, end), path))
    return out


def _merge_short(text: str, pieces: list, min_chars: int) -> list:
    """Merge a fragment too short to stand alone into a neighbour under the same heading.

    A short piece is prefixed to the next piece; the last short piece of a section is
    appended to the previous one instead.
    """
    out: list = []
    carry = None
    for start, end, path in pieces:
        if carry is not None:
            if carry[2] == path:
                start = carry[0]
            else:
                _append_to_last(out, carry)
            carry = None
        if _size(text, start, end) < min_chars:
            carry = (start, end, path)
        else:
            out.append((start, end, path))
    if carry is not None:
        _append_to_last(out, carry)
    return out


def _append_to_last(out: list, piece: tuple) -> None:
    if out and out[-1][2] == piece[2]:
        prev = out.pop()
        out.append((prev[0], piece[1], prev[2]))
    else:
        out.append(piece)


def _size(text: str, start: int, end: int) -> int:
    return sum(1 for ch in text[start:end] if not ch.isspace())


def _number(doc: Document, pieces: list) -> list[Clause]:
    clauses = []
    positions: dict[tuple[str, ...], int] = {}
    for n, (start, end, path) in enumerate(pieces, 1):
        full = (doc.title, *path)
        positions[full] = positions.get(full, 0) + 1
        clauses.append(Clause(clause_id=f"{doc.doc_id}#{n:04d}", doc_id=doc.doc_id, text=doc.text[start:end],
                              start=start, end=end, heading=full, position=positions[full],
                              source_id=doc.meta.get("source_id", "")))
    return clauses
