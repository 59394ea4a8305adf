"""Questions typed with a pinyin input method: a homophone slip is also searched as the word meant.

People type Chinese by its sound and pick a character from a list, and the wrong one of the
same sound slips in: "技术经济人" for 技术经纪人, "计化" for 计划, "喝作" for 合作. The slip's
bigrams occur nowhere in the collection, so BM25 loses the word. Here each stretch of one to
three of the question's jieba words (2 to 4 characters) that is not a dictionary word, and whose
character bigrams are not all in the collection, is tried with each of its characters changed to
another of the same sound (toneless pinyin, from pypinyin). Every change that makes a dictionary
word the collection contains is added to the BM25 query as a group of alternatives, scored like
the English translations of ``qa.crosslingual`` (the best alternative of a group counts). A
stretch with a question word (哪年, 多远) is left alone: a slip there changes no topic, and 那年 is
no better than 哪年; so is one made of stopwords alone (我是 is not a slip of 我市). Words the
collection already holds are never touched, so a rare name that
is in the documents (司马繇) is not turned into a commoner one (司马曜).

Chosen on dev data (``bench/typos.py`` → ``bench/results/homophones.json``): no change on the
clean dev parts, better on the same questions with a slip typed in; measured on the test parts.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from functools import lru_cache

from . import sparse
from . import tokenize as tok

#: Characters of question words: a stretch holding one is not corrected.
ASKING = frozenset("哪谁几多什么怎啥吗呢")
MAX_WORDS = 3            # words joined into one stretch
MAX_ALTERNATIVES = 3     # corrections kept per stretch
MAX_STRETCHES = 40       # stretches tried per question (a question is cut to 512 characters)
_HAN = re.compile(r"[\u4e00-\u9fff]+")

Slip = tuple[str, list[str]]  # (the stretch as typed, the words it may have meant)


def sound_table(words: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Toneless pinyin -> the Han characters of ``words`` with that sound, in code point order."""
    from pypinyin import lazy_pinyin

    chars = sorted({ch for word in words for ch in word if _HAN.fullmatch(ch)})
    by_sound: dict[str, list[str]] = {}
    for ch, reading in zip(chars, lazy_pinyin(chars)):
        by_sound.setdefault(reading, []).append(ch)
    return {reading: tuple(group) for reading, group in by_sound.items()}


@lru_cache(maxsize=1)
def _by_sound() -> dict[str, tuple[str, ...]]:
    """The sound table of jieba's dictionary words (built once a process, a fraction of a second;
    ``load`` pays it ahead)."""
    return sound_table(tok.dictionary_words())


def load() -> None:
    """Build the sound table now instead of at the first question that needs it."""
    _by_sound()


@lru_cache(maxsize=8192)
def sound(ch: str) -> str:
    """A character's toneless pinyin (kept: the stretches of a question overlap, and the same
    characters come back question after question)."""
    from pypinyin import lazy_pinyin

    return lazy_pinyin(ch)[0]


def _stretches(question: str) -> list[str]:
    """Stretches of one to three words, 2 to 4 Han characters, without a question word and not
    made of stopwords alone: "我是" (I am) is no dictionary word, but 我 and 是 are each what a
    question is built of, not a slip ("我是" was searched as 我市, "our city")."""
    words = tok.cut(question)
    out: list[str] = []
    for i in range(len(words)):
        text, content = "", False
        for word in words[i:i + MAX_WORDS]:
            text += word
            content = content or word not in tok.STOPWORDS
            if content and 2 <= len(text) <= 4 and _HAN.fullmatch(text) and not ASKING & set(text):
                out.append(text)
    return list(dict.fromkeys(out))


def slips(question: str, known: Container[str]) -> list[Slip]:
    """The stretches of ``question`` that look like homophone slips, each with the words of the
    collection (``known``: its BM25 vocabulary) it may have meant, best first."""
    found: list[Slip] = []
    tried = 0
    for text in _stretches(question):
        if tok.in_dictionary(text) or all(text[i:i + 2] in known for i in range(len(text) - 1)):
            continue
        tried += 1
        if tried > MAX_STRETCHES:
            break
        meant: list[str] = []
        for at, ch in enumerate(text):
            for other in _by_sound().get(sound(ch), ()):
                word = text[:at] + other + text[at + 1:]
                if other != ch and word not in meant and tok.in_dictionary(word) and word in known:
                    meant.append(word)
        if meant:
            found.append((text, meant[:MAX_ALTERNATIVES]))
    return found


def extend(query: list | None, tokens: list[str], known: Container[str], found: list[Slip]) -> list | None:
    """The structured BM25 query (``qa.crosslingual.query_groups``'s form) with a group of
    alternatives per slip; ``query`` None stands for the plain query of ``tokens``."""
    if not found:
        return query
    head = query if query is not None else sparse.plain_groups(tokens, known)
    return head + [[tok.tokenize(word) for word in meant] for _, meant in found]
