"""Document cards: a document's metadata as one searchable row.

"答复函落款日期是哪天？" asks about the document, not about any sentence in it: the signature
date, the issuing agency, the index number live in the metadata the cleaner extracted, so no
clause can match. Each document with such metadata gets one extra row, its card, indexed like
a clause and cited as the whole document. The card's text is what the user sees; the indexed
text adds the usual other names of each field (发文机关 for 发布机构, 落款日期 for the signing
date), so a question that names a field differently still finds it.
"""

from __future__ import annotations

import re

from .types import Clause, Document

#: Metadata key -> (label shown, other names a question may use). Order = order on the card.
FIELDS: dict[str, tuple[str, str]] = {
    "agency": ("发布机构", "发文机关 发文单位 发布单位 部门 机构"),
    "number": ("发文字号", "文号 文件编号"),
    "index_no": ("索引号", "编号"),
    "written": ("成文日期", "日期 时间 成文"),
    "published": ("发布日期", "日期 时间 公布 发表"),
    "date": ("日期", "时间"),
    "signed_by": ("落款", "署名 签发单位 签署"),
    "signed_date": ("落款日期", "签发日期 签署日期 日期 时间"),
    "author": ("作者", "记者 撰稿 撰写"),
    "credit": ("署名", "摄影 拍摄"),
    "topic": ("主题分类", "主题 类别"),
    "genre": ("体裁分类", "文种 类型"),
    "kicker": ("引题", "副标题"),
}

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def card_id(doc_id: str) -> str:
    """A card's id: clause number 0000 of its document (clauses count from 0001)."""
    return f"{doc_id}#0000"


def has_card(doc: Document) -> bool:
    """Whether a document carries metadata worth a card (benchmark passages carry none)."""
    return any(doc.meta.get(key) for key in FIELDS)


def make_card(doc: Document) -> Clause:
    """The card of ``doc``: its title and metadata fields as one line, e.g.
    《…答复函》 发布机构：市科技局；成文日期：2024-09-14（2024年9月14日）；…"""
    fields = []
    for key, (label, _) in FIELDS.items():
        value = str(doc.meta.get(key, "")).strip()
        if value:
            fields.append(f"{label}：{_with_chinese_date(value)}")
    text = f"《{doc.title}》 " + "；".join(fields)
    return Clause(clause_id=card_id(doc.doc_id), doc_id=doc.doc_id, text=text, start=0, end=0,
                  heading=(doc.title,), position=0, source_id=doc.meta.get("source_id", ""), kind="card")


def index_text(card: Clause) -> str:
    """What is embedded and scored for a card: its text plus the other names of its fields."""
    extra = [names for label, names in FIELDS.values() if f"{label}：" in card.text]
    return card.text + "\n" + " ".join(extra)


def _with_chinese_date(value: str) -> str:
    """2024-07-24 -> "2024-07-24（2024年7月24日）", the form a question is written in."""
    m = _ISO.match(value)
    if not m:
        return value
    year, month, day = m.groups()
    return f"{value}（{year}年{int(month)}月{int(day)}日）"
