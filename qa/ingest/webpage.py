"""Government web pages saved as text: navigation, a metadata table, the body, page chrome.

The metadata block (索引号, 发文字号, 主题分类, 发布机构, 成文日期, 发布日期) comes as
"[ 键 ] 值" cells, often printed twice (a table, then a list); it is read into the
document's metadata and dropped from the text, as are the breadcrumb line and the
trailing page chrome ("扫一扫在手机打开当前页").
"""

from __future__ import annotations

import re

from .clean import Para

#: "[ 发布机构 ] 市科技局" cells; several may share a line.
_CELL = re.compile(r"\[\s*([^\[\]]{1,12}?)\s*\]\s*([^\[\]]*)")
_NAV = re.compile(r"^(您当前的位置|当前位置|您的位置|所在位置)\s*[:：]|^首页\s*(>|&gt;)")
_CHROME = re.compile(
    r"^(扫一扫在手机(上)?打开当前页|【?\s*打印(本页|此页)?\s*】?|【?\s*关闭(窗口|本页)?\s*】?|"
    r"【?\s*字[体号]\s*[:：]?\s*大\s*中\s*小\s*】?|分享到[:：]?.*|上一篇[:：].*|下一篇[:：].*|"
    r"(相关|附件)下载[:：]?|浏览次数[:：]?\s*\d*|访问量[:：]?\s*\d*|网站地图|联系我们|返回顶部)$"
)
_DATE_LINE = re.compile(r"^(日期|发布时间|时间|发布日期)\s*[:：]\s*(\d{4}[-年/.]\d{1,2}[-月/.]\d{1,2}日?)\s*$")
_CN_DATE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日$")

#: Metadata keys as printed on the page -> keys of ``Document.meta``.
META_KEYS = {
    "索引号": "index_no",
    "发文字号": "number",
    "文号": "number",
    "主题分类": "topic",
    "体裁分类": "genre",
    "发布机构": "agency",
    "发文机关": "agency",
    "成文日期": "written",
    "发布日期": "published",
}


def looks_like_webpage(paras: list[Para]) -> bool:
    head = paras[:20]
    nav = any(_NAV.search(p.text) for p in head)
    cells = sum(1 for p in head if _CELL.match(p.text))
    chrome = any(_CHROME.match(p.text) for p in paras[-5:])
    return nav or cells >= 2 or chrome


def parse_webpage(paras: list[Para]) -> tuple[str, list[Para], dict[str, str]]:
    """Split a web page into (title, body paragraphs, metadata)."""
    meta: dict[str, str] = {}
    body: list[Para] = []
    for para in paras:
        text = para.text
        if _NAV.search(text) or _CHROME.match(text):
            continue
        cells = _CELL.findall(text)
        if cells and _CELL.sub("", text).strip() == "":
            for key, value in cells:
                name = META_KEYS.get(key.replace(" ", ""), key.replace(" ", ""))
                if value.strip() and name not in meta:
                    meta[name] = value.strip()
            continue
        date = _DATE_LINE.match(text)
        if date:
            meta.setdefault("date", _iso(date.group(2)))
            continue
        body.append(para)
    _strip_signature(body, meta)
    title = ""
    if body and body[0].headline_like:
        title = body[0].text
    return title, body, meta


def _strip_signature(body: list[Para], meta: dict[str, str]) -> None:
    """Move a letter's closing signature (agency line, then a date line) into the metadata."""
    if len(body) >= 2 and _CN_DATE.match(body[-1].text) and body[-2].headline_like and len(body[-2].text) <= 30:
        meta["signed_date"] = _iso(body[-1].text)
        meta["signed_by"] = body[-2].text
        del body[-2:]


def _iso(date: str) -> str:
    """'2024年7月24日' or '2024/7/24' -> '2024-07-24'."""
    parts = re.findall(r"\d+", date)
    if len(parts) == 3:
        return f"{int(parts[0]):04d}-{int(parts[1]):02d}-{int(parts[2]):02d}"
    return date
