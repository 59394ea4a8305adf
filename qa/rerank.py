"""A learned second stage: LightGBM LambdaRank over the fused top candidates.

Convex fusion weighs two scores with one fixed weight. Which one to trust depends on the
question: a number or a name in it makes the clause that contains it right, an English or
colloquial question leans on the dense side, a question that names a topic on the section.
The ranker sees, for each of the top ``TOP_N`` fused candidates, the scores the retrievers
already computed and a few cheap facts about the clause's text against the question
(``FEATURES``), and orders them again. It is trained on the dev parts only
(``bench/train_ranker.py``, which writes ``qa/models/ranker.txt`` and ``ranker.json``); its
test-part figures are in ``bench/results/ranker.json``.

The model file is checked against the sha256 in ``ranker.json`` before it is loaded: a
missing, truncated or foreign file is an error that names the file, never a silent fallback
(``--rerank off`` answers without it).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import tokenize as tok
from .errors import QAError
from .types import Clause

MODEL_DIR = Path(__file__).resolve().parent / "models"
MODEL = MODEL_DIR / "ranker.txt"
CARD = MODEL_DIR / "ranker.json"
#: Candidates the ranker orders again; the rest keep their fused order after them.
TOP_N = 30
RERANKS = ("learned", "cross", "off")

FEATURES = (
    "fused", "fused_rank", "fused_gap",            # the convex fusion's score, rank, distance to the best
    "dense", "dense_norm", "dense_rank",           # the clause's cosine, min-max within the candidates, rank
    "bm25", "bm25_norm", "bm25_rank",
    "section_dense", "section_bm25_norm",          # the clause's section (0 without sections)
    "coverage",                                    # share of the question's words found in the clause
    "bigrams",                                     # share of the question's character bigrams in the clause
    "heading_bigrams",                             # ... in the clause's heading path
    "numbers", "has_numbers",                      # share of the question's numbers in the clause
    "length",                                      # log of the clause's length in characters
    "card",                                        # a document's metadata card
    "latin",                                       # share of Latin letters in the question (English questions)
    "doc_share", "doc_gap",                        # share of the candidates from the clause's passage; its best's gap
    "asked", "asked_gap",                          # share of the characters around the question word in the clause
)

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CJK = re.compile(r"[\u3400-\u9fff]+")
_LATIN = re.compile(r"[A-Za-z]")
# The words next to a Chinese question word say what is asked ("又被称作什么": 称; "在哪里出生": 出生):
# the clause that answers repeats them more often than a clause that only shares the topic's words.
_QUESTION_WORD = re.compile(r"什么|哪些|哪个|哪一|哪里|哪儿|哪|谁|几|多少|何|怎么|怎样|如何|为什么|为何")
_FUNCTION_CHARS = frozenset("的是了被在有和与及为把将也又都就还所之其这那个一些么吗呢")


def _bigrams(text: str) -> set[str]:
    return {run[i:i + 2] for run in _CJK.findall(text) for i in range(len(run) - 1)}


def _asked(question: str) -> set[str]:
    """The content characters just around each question word: three before it, two after."""
    def content(text: str) -> list[str]:
        return [c for c in text if c not in _FUNCTION_CHARS and _CJK.match(c)]

    chars: set[str] = set()
    for match in _QUESTION_WORD.finditer(question):
        before, after = question[max(0, match.start() - 4):match.start()], question[match.end():match.end() + 3]
        chars.update(content(before)[-3:] + content(after)[:2])
    return chars


def _share(needles, haystack: str) -> float:
    needles = list(needles)
    return sum(1 for n in needles if n in haystack) / len(needles) if needles else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    return ranks


def features(question: str, clauses: Sequence[Clause], fused: np.ndarray, dense: np.ndarray, bm25: np.ndarray,
             section_dense: np.ndarray | None, section_bm25: np.ndarray | None) -> np.ndarray:
    """(len(clauses), len(FEATURES)) float64: one row per candidate, in the order given.

    Args:
        question: the question as searched.
        clauses: the candidates, best fused first.
        fused, dense, bm25, section_dense, section_bm25: their scores, (n,) each; the section
            scores may be None (sections not used).
    """
    n = len(clauses)
    words = {t for t in tok.tokenize(question) if t not in tok.STOPWORDS and not t.isspace()}
    grams = _bigrams(question)
    numbers = set(_NUMBER.findall(question))
    latin = len(_LATIN.findall(question)) / max(1, len(question))
    spread = dense.max() - dense.min() if n else 0.0
    top_bm25 = bm25.max() if n else 0.0
    zeros = np.zeros(n)
    section_dense = zeros if section_dense is None else section_dense
    section_bm25 = zeros if section_bm25 is None or not section_bm25.max() > 0 else section_bm25 / section_bm25.max()
    rows = np.zeros((n, len(FEATURES)), dtype=np.float64)
    rows[:, 0] = fused
    rows[:, 1] = np.arange(n)
    rows[:, 2] = fused.max() - fused if n else 0.0
    rows[:, 3] = dense
    rows[:, 4] = (dense - dense.min()) / spread if spread > 0 else 1.0
    rows[:, 5] = _ranks(dense)
    rows[:, 6] = bm25
    rows[:, 7] = bm25 / top_bm25 if top_bm25 > 0 else 0.0
    rows[:, 8] = _ranks(bm25)
    rows[:, 9] = section_dense
    rows[:, 10] = section_bm25
    # the passage (a pool's paragraph, or a document) each candidate comes from: a passage with
    # several good candidates is more likely the one the question is about
    passages = [clause.source_id or clause.doc_id for clause in clauses]
    best_of: dict[str, float] = {}
    count: dict[str, int] = {}
    for passage, score in zip(passages, fused):
        best_of[passage] = max(best_of.get(passage, -math.inf), float(score))
        count[passage] = count.get(passage, 0) + 1
    top_fused = float(fused.max()) if n else 0.0
    asked = _asked(question)
    for i, clause in enumerate(clauses):
        heading = " ".join(clause.heading)
        rows[i, 11] = _share(words, clause.text)
        rows[i, 12] = _share(grams, clause.text)
        rows[i, 13] = _share(grams, heading)
        rows[i, 14] = _share(numbers, clause.text)
        rows[i, 15] = 1.0 if numbers else 0.0
        rows[i, 16] = math.log1p(len(clause.text))
        rows[i, 17] = 1.0 if clause.kind == "card" else 0.0
        rows[i, 18] = latin
        rows[i, 19] = count[passages[i]] / n
        rows[i, 20] = top_fused - best_of[passages[i]]
        rows[i, 21] = _share(asked, clause.text)
    rows[:, 22] = rows[:, 21] - rows[:, 21].max() if n else 0.0
    return rows


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Ranker:
    """The trained LightGBM model: ``scores(rows)`` orders candidates, higher first."""

    def __init__(self, model: Path = MODEL, card: Path = CARD) -> None:
        for path in (model, card):
            if not path.is_file():
                raise QAError(f"the learned ranker's file {path} is missing: retrain it with "
                              "`python bench/train_ranker.py`, or answer without it (--rerank off)")
        try:
            self.card = json.loads(card.read_text(encoding="utf-8"))
            expected = self.card["sha256"]
        except (ValueError, KeyError, TypeError) as exc:
            raise QAError(f"{card} is not the ranker's card ({type(exc).__name__}): retrain with "
                          "`python bench/train_ranker.py`") from exc
        if file_sha256(model) != expected:
            raise QAError(f"{model} does not match the checksum in {card.name} (truncated, or another model): "
                          "retrain with `python bench/train_ranker.py`, or answer without it (--rerank off)")
        if list(self.card.get("features", [])) != list(FEATURES):
            raise QAError(f"{model} was trained on other features than this version computes: retrain with "
                          "`python bench/train_ranker.py`")
        try:
            import lightgbm
        except ImportError as exc:
            raise QAError("the learned ranker needs lightgbm (pip install lightgbm), or use --rerank off") from exc
        self.booster = lightgbm.Booster(model_str=model.read_text(encoding="utf-8"))

    def scores(self, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros(0)
        return np.asarray(self.booster.predict(rows, num_threads=1), dtype=np.float64)


@lru_cache(maxsize=1)
def shipped() -> Ranker:
    """The ranker committed under ``qa/models``, loaded once per process."""
    return Ranker()
