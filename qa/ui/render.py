"""HTML for the chat: cards, summaries, progress bars. Pure functions, tested without a browser.

Every piece of document text, title, question and error message is HTML-escaped before it is
put into a message (and Gradio's sanitizer stays on), so a document or a file name that
contains ``<img src=x onerror=alert(1)>`` shows that text and runs nothing.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .. import tokenize as tok
from ..jobs import Job
from ..pipeline import Pipeline
from ..types import NOT_CONFIDENT, Answer, Hit

MODE_LABELS = {"hybrid": "混合 hybrid", "dense": "语义 dense", "bm25": "关键词 BM25"}


def esc(text: str) -> str:
    """Escape for HTML, then for Markdown, so document text is shown exactly as written."""
    text = html.escape(text, quote=True)
    return re.sub(r"([\\`*_{}\[\]#+|~!])", r"\\\1", text)


def highlight(text: str, terms: list[str]) -> str:
    """Escaped ``text`` with every occurrence of ``terms`` wrapped in <mark> (longest first)."""
    # single characters ("家", "年") would light up half the text: words of two or more, or numbers
    terms = sorted({t for t in terms if len(t) > 1 or t.isdigit()}, key=len, reverse=True)
    if not terms:
        return esc(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.I)
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append(esc(text[pos:m.start()]))
        out.append(f"<mark>{esc(m.group(0))}</mark>")
        pos = m.end()
    out.append(esc(text[pos:]))
    return "".join(out)


def query_terms(pipeline: Pipeline, question: str) -> list[str]:
    """The words to highlight: the question's words, and the Chinese words its English words translate to."""
    from .. import crosslingual

    terms = tok.words(question)
    for group in crosslingual.translate(question, pipeline.index.lexicon, tok.STOPWORDS):
        for alternative in group:
            terms.append("".join(t for t in alternative if len(t) > 1 and not any(t in o for o in alternative if o != t)))
    return [t for t in terms if t]


def card(pipeline: Pipeline, hit: Hit, terms: list[str]) -> str:
    """One passage as a card: rank, score, highlighted clause, citation, context, copyable citation."""
    c, cite = hit.clause, hit.citation
    path = " › ".join(esc(h) for h in cite.heading)
    position = f"第{cite.position}句" if c.kind == "clause" else "文档信息 (document card)"
    where = " · ".join(x for x in (path, position, esc(cite.agency), esc(cite.date)) if x)
    around = pipeline.neighbours(c.clause_id, 1, 1)
    parts = [f"相似度 {hit.dense:.3f}" if hit.dense is not None else "", f"BM25 {hit.bm25:.2f}" if hit.bm25 else ""]
    scores = f'<span class="qa-sub"> ({" · ".join(p for p in parts if p)})</span>' if any(parts) else ""
    context = "<br>".join(f"<b>{esc(n.text)}</b>" if n.clause_id == c.clause_id else esc(n.text) for n in around) \
        or esc(c.text)
    return (
        f'<div class="qa-card" data-clause="{html.escape(c.clause_id)}">'
        f'<div class="qa-meta"><span class="qa-rank">#{hit.rank}</span> · 得分 {hit.score:.3f}{scores} · '
        f'<span class="qa-doc">《{esc(cite.title)}》</span></div>'
        f'<div class="qa-text">{highlight(c.text, terms)}</div>'
        f'<div class="qa-cite">{where}</div>'
        f'<details><summary>上下文 (context)</summary><div class="qa-ctx">{context}</div></details>'
        f"</div>\n\n"
        f"```text\n{str(cite).replace('`', 'ˋ')}\n```"
    )


def summary(answer: Answer) -> str:
    mode = MODE_LABELS.get(answer.mode, answer.mode)
    notes = "".join(f"<br>注意 · {esc(n)}" for n in answer.notes)
    if not answer.hits:
        return f'<div class="qa-summary">没有找到相关条款。(No matching clause.){notes}</div>'
    if not answer.confident:
        return f'<div class="qa-summary">{esc(NOT_CONFIDENT)}{notes}</div>'
    return (f'<div class="qa-summary">找到 {len(answer.hits)} 条相关条款 · {mode} · '
            f"{answer.seconds * 1000:.0f} ms{notes}</div>")


def failures(report: dict[str, Any], limit: int = 30) -> str:
    rows = [r for r in report["per_question"]["hybrid"] if r["rank"] != 1][:limit]
    lines = [f"**不在第一位的问题 (not at rank 1): {sum(1 for r in report['per_question']['hybrid'] if r['rank'] != 1)}**"]
    for r in rows:
        first = (r.get("first") or {}).get("text", "")
        lines.append(f"- {esc(r['question'])} — 名次 {r['rank'] or '—'}；首位：{esc(first[:60])}")
    return "\n".join(lines)


def job_status(job: Job | None) -> str:
    """A job as a line with a progress bar, escaped."""
    if job is None:
        return ""
    state = {"queued": "等待中 queued", "running": "进行中 running", "done": "完成 done", "failed": "失败 failed"}
    percent = round(job.progress * 100)
    return (f'<div class="qa-job" data-state="{job.state}"><b>{esc(job.title)}</b> · {state[job.state]} · '
            f'<progress max="100" value="{percent}"></progress> {percent}%<br>{esc(job.message)}</div>')
