"""Layout repair shared by every document kind: lines and blocks back into paragraphs.

Extracted text arrives in blocks (runs of lines between blank lines). Two kinds of damage:

* hard wraps: a newspaper column breaks every ~15 characters, mid-word;
* column breaks: a blank line falls in the middle of a sentence ("…创新平台布" / "局、国家…").

Both are repaired here without inserting spaces between CJK characters. Headlines, which
carry no final punctuation either, are told apart from broken sentences by standing alone
as a one-line block.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass

#: Characters that may end a paragraph (closing quotes and brackets follow a sentence end).
TERMINAL = "。！？!?；;：:…"
CLOSERS = "”’」』）)】》〉\"'"
#: Punctuation that a headline does not contain.
SENTENCE_PUNCT = re.compile(r"[，,。；;！!？?：:、]")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


@dataclass
class Para:
    """A repaired paragraph.

    Attributes:
        text: the paragraph, hard wraps removed.
        alone: it was a one-line block of its own (a headline, a caption credit, a heading).
        block_end: it was the last paragraph of its block (a blank line followed it).
    """

    text: str
    alone: bool = False
    block_end: bool = False

    @property
    def headline_like(self) -> bool:
        """A line standing alone with no sentence punctuation, short: a title or kicker."""
        return self.alone and len(self.text) <= 40 and not SENTENCE_PUNCT.search(self.text)


def normalize(text: str) -> str:
    """Unify newlines, drop control and zero-width characters, collapse runs of spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cs")  # lone surrogates
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))


def ends_sentence(line: str) -> bool:
    stripped = line.rstrip(CLOSERS)
    return bool(stripped) and stripped[-1] in TERMINAL


def join_lines(left: str, right: str) -> str:
    """Join a hard-wrapped line: a space only between two Latin letters or digits."""
    if left and right and _latin(left[-1]) and _latin(right[0]):
        return f"{left} {right}"
    return left + right


def _latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def blocks(text: str) -> list[list[str]]:
    """Split normalized text into blocks of non-empty lines."""
    out: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line:
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    return [b for b in out if b]


def column_width(all_blocks: list[list[str]]) -> int | None:
    """The width of hard-wrapped columns, or None when the text is not hard-wrapped.

    Lines of wrapped text mostly share one length; free text has one line per paragraph.
    """
    lengths = [len(line) for b in all_blocks if len(b) >= 3 for line in b[:-1]]
    if len(lengths) < 10:
        return None
    mode = statistics.median(lengths)
    near = sum(1 for n in lengths if abs(n - mode) <= 3)
    if near < 0.7 * len(lengths) or mode > 100:
        return None
    return int(mode)


def paragraphs(text: str) -> list[Para]:
    """Repair hard wraps and column breaks; return paragraphs in reading order."""
    all_blocks = blocks(normalize(text))
    width = column_width(all_blocks)
    if width is None:  # free text: every line is a paragraph
        return [Para(line, alone=len(b) == 1, block_end=i == len(b) - 1)
                for b in all_blocks for i, line in enumerate(b)]
    paras: list[Para] = []
    for block in all_blocks:
        current = ""
        for line in block:
            current = join_lines(current, line)
            # A sentence end on a short line: the paragraph ended there, the column did not.
            if ends_sentence(line) and len(line) < 0.75 * width:
                paras.append(Para(current, alone=len(block) == 1))
                current = ""
        if current:
            paras.append(Para(current, alone=len(block) == 1))
        paras[-1].block_end = True
    return _rejoin_column_breaks(paras)


def _rejoin_column_breaks(paras: list[Para]) -> list[Para]:
    """Join a paragraph cut by a column break to the one that continues it."""
    out: list[Para] = []
    for para in paras:
        prev = out[-1] if out else None
        if (prev is not None and prev.block_end and not ends_sentence(prev.text)
                and not prev.headline_like and not para.headline_like):
            out[-1] = Para(join_lines(prev.text, para.text), block_end=para.block_end)
        else:
            out.append(para)
    return out
