"""A newspaper page extracted as text: several articles, headlines *after* their bodies.

In this extraction an article's body comes first (it opens with "本报讯"), then its
kicker and headline as one-line blocks without punctuation. A photo caption is body text
closed by a credit line ("重庆日报记者 崔力 摄") and has no headline. Lines at the very top
that end in a page reference ("详见 版03") tease an article printed on another page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .clean import Para

_LEAD = re.compile(r"^(本报讯|本报[^\s，,]{0,8}电|新华社[^\s，,]{0,8}电)")
_CREDIT = re.compile(r"(记者|通讯员|摄影)\s*\S{1,4}(\s+\S{1,4})*\s*摄$")
_TEASER_REF = re.compile(r"^详见.{0,8}版.{0,4}$")
_BYLINE = re.compile(r"[（(]\s*(\S{2,6}?)记者\s*(\S{2,4})\s*[）)]")
_DATE_IN_TEXT = re.compile(r"(\d{4}年)?\d{1,2}月\d{1,2}日")

PHOTO_TITLE = "图片新闻"


@dataclass
class Article:
    """One article of the page, in reading order: kicker, headline, body."""

    headline: str = ""
    kicker: str = ""
    body: list[str] = field(default_factory=list)
    credit: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.headline or (f"{PHOTO_TITLE}（{self.credit}）" if self.credit else PHOTO_TITLE)


def looks_like_newspaper(paras: list[Para]) -> bool:
    return any(_LEAD.match(p.text) for p in paras) or any(
        p.alone and len(p.text) <= 40 and _CREDIT.search(p.text) for p in paras)


def split_articles(paras: list[Para]) -> tuple[list[Article], list[str]]:
    """Group paragraphs into articles; return (articles, dropped teaser lines)."""
    articles: list[Article] = []
    teaser: list[str] = []
    body: list[str] = []
    heads: list[str] = []
    seen_body = False

    def close(credit: str = "") -> None:
        nonlocal body, heads
        if body:
            art = Article(headline=heads[-1] if heads else "", kicker=" ".join(heads[:-1]),
                          body=body, credit=credit)
            art.meta = _article_meta(art)
            articles.append(art)
        body, heads = [], []

    for para in paras:
        text = para.text
        if not seen_body and (para.headline_like or _TEASER_REF.match(text)):
            teaser.append(text)  # above the first article: a teaser, unless no page reference follows
            continue
        if para.alone and len(text) <= 40 and _CREDIT.search(text):
            close(credit=text)
            continue
        if para.headline_like:
            heads.append(text)
            continue
        # a body paragraph: headlines collected since the last body close the previous article
        if heads or (_LEAD.match(text) and body):
            close()
        seen_body = True
        body.append(text)
    close()
    if teaser and not any(_TEASER_REF.match(t) for t in teaser) and articles:
        # no page reference: the top lines headline the first article after all
        first = articles[0]
        first.kicker, first.headline = " ".join(teaser[:-1]), first.headline or teaser[-1]
        teaser = []
    return articles, teaser


def _article_meta(art: Article) -> dict[str, str]:
    meta: dict[str, str] = {"kind": "newspaper article" if art.headline else "photo caption"}
    first = art.body[0]
    byline = _BYLINE.search(first[:40])
    if byline:
        meta["agency"], meta["author"] = byline.group(1), byline.group(2)
    elif art.credit:
        credit = re.match(r"^(\S+?)记者\s*(\S+)", art.credit)
        if credit:
            meta["agency"], meta["author"] = credit.group(1), credit.group(2)
    if art.kicker:
        meta["kicker"] = art.kicker
    if art.credit:
        meta["credit"] = art.credit
    date = _DATE_IN_TEXT.search(" ".join(art.body)[:200])
    if date:
        meta["date"] = date.group(0)
    return meta
