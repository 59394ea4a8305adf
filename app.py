"""The web UI: a chat that answers with cited clauses, a documents tab, an evaluation tab.

``build_app(pipeline)`` builds the Gradio Blocks from a pipeline it is handed; nothing
lives at module level. Every piece of document text, title and question is HTML-escaped
before it is put into a message (and Gradio's sanitizer stays on), so a document that
contains ``<img src=x onerror=alert(1)>`` shows that text and runs nothing.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr

from qa import tokenize as tok
from qa.errors import QAError
from qa.pipeline import MODES, Pipeline
from qa.types import Answer, Hit

log = logging.getLogger("qa.app")

EXAMPLES = [
    "江北区有多少家科技型企业？",
    "重庆建成了多少家制造业创新中心？",
    "“促进科技成果转化24条”主要从哪几个方面着力？",
    "How many technology brokers have been trained?",
    "下一步在技术转移人才队伍建设上有什么打算？",
]
MODE_LABELS = {"hybrid": "混合 hybrid", "dense": "语义 dense", "bm25": "关键词 BM25"}

CSS = """
.qa-card {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 12px; margin: 2px 0;}
.qa-meta {font-size: 0.85em; color: var(--body-text-color-subdued); margin-bottom: 4px;}
.qa-rank {font-weight: 700; color: var(--color-accent);}
.qa-doc {font-weight: 600; color: var(--body-text-color);}
.qa-text {font-size: 1.02em; line-height: 1.65;}
.qa-text mark {background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px;}
.qa-cite {font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 6px;}
.qa-ctx {font-size: 0.9em; color: var(--body-text-color-subdued); line-height: 1.6;}
.qa-ctx b {color: var(--body-text-color);}
.qa-summary {font-size: 0.9em;}
.qa-sub {font-size: 0.9em; opacity: 0.8;}
footer {display: none !important;}
"""


# -- rendering (pure functions, tested without a browser) ---------------------------------

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
    from qa import crosslingual

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
        return (f'<div class="qa-summary">没有找到足够相关的条款：下面是最接近的结果，请谨慎参考。'
                f"(Nothing matches well; the closest clauses follow.){notes}</div>")
    return (f'<div class="qa-summary">找到 {len(answer.hits)} 条相关条款 · {mode} · '
            f"{answer.seconds * 1000:.0f} ms{notes}</div>")


# -- the app ----------------------------------------------------------------------------

def build_app(pipeline: Pipeline, *, feedback_path: Path | None = None, questions_path: Path | None = None):
    """The Gradio Blocks for ``pipeline``.

    Args:
        feedback_path: where 👍/👎 votes are appended (default: beside the index, feedback.jsonl).
        questions_path: the labelled set for the Evaluate tab (default: <docs>/eval/questions.jsonl).
    """
    docs_dir = pipeline.corpus.path if pipeline.corpus and pipeline.corpus.kind == "folder" else None
    feedback_path = feedback_path or Path(pipeline.index_dir).absolute().parent / "feedback.jsonl"
    questions_path = questions_path or (docs_dir / "eval" / "questions.jsonl" if docs_dir else None)

    def doc_choices() -> list[tuple[str, str]]:
        return [(f"{d.title} ({d.doc_id})", d.doc_id) for d in pipeline.index.documents.values()]

    def doc_rows() -> list[list[Any]]:
        counts = pipeline.index.clause_counts()
        return [[d.title, d.meta.get("agency", ""), d.meta.get("published") or d.meta.get("written")
                 or d.meta.get("date", ""), d.meta.get("number") or d.meta.get("index_no", ""),
                 d.meta.get("kind", ""), counts.get(d.doc_id, 0), d.source, d.doc_id]
                for d in pipeline.index.documents.values()]

    def respond(message, history, k, mode, doc_filter, state):
        question = message if isinstance(message, str) else str(message or "")
        history = list(history or [])
        state = dict(state or {"passages": {}, "last": None})
        history.append({"role": "user", "content": esc(question) if question.strip() else "（空）"})
        try:
            answer = pipeline.ask(question, k=int(k), mode=mode, doc_ids=doc_filter or None, previous=state.get("last"))
        except QAError as exc:
            history.append({"role": "assistant", "content": f"**无法检索** · {esc(str(exc))}"})
            return history, state, ""
        except Exception as exc:  # never a traceback in the chat
            log.exception("answering %r failed", question[:200])
            history.append({"role": "assistant", "content": f"**出错了，请重试** (internal error: {esc(type(exc).__name__)})"})
            return history, state, ""
        state["last"] = answer.question
        history.append({"role": "assistant", "content": summary(answer)})
        terms = query_terms(pipeline, answer.question)
        for hit in answer.hits:
            state["passages"][str(len(history))] = {
                "question": answer.question, "clause_id": hit.clause.clause_id, "doc_id": hit.clause.doc_id,
                "text": hit.clause.text, "rank": hit.rank, "mode": answer.mode, "citation": str(hit.citation)}
            history.append({"role": "assistant", "content": card(pipeline, hit, terms)})
        return history, state, ""

    def vote(data: gr.LikeData, state):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        passage = (state or {}).get("passages", {}).get(str(index))
        if passage is None:
            return
        liked = data.liked in (True, "Like") if not isinstance(data.liked, str) else data.liked == "Like"
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "vote": "up" if liked else "down", **passage}
        feedback_path.parent.mkdir(parents=True, exist_ok=True)
        with open(feedback_path, "a", encoding="utf-8") as handle:  # append-only: one line per vote
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        gr.Info("已记录反馈 (feedback saved)")

    def upload(file, overwrite, progress=gr.Progress()):
        from qa.ingest.upload import add_document

        if docs_dir is None:
            raise gr.Error("This index was built from a passage pool; uploads need a documents folder.")
        if file is None:
            raise gr.Error("请选择文件 (choose a file first)")
        source = Path(file if isinstance(file, str) else file.name)
        progress(0.1, desc="检查文件 (checking the file)")
        try:
            target = add_document(source, docs_dir, name=_original_name(source), overwrite=bool(overwrite))
        except QAError as exc:
            raise gr.Error(str(exc)) from exc
        progress(0.4, desc="切分与向量化 (indexing)")
        try:
            pipeline.refresh()
        except QAError as exc:
            raise gr.Error(f"{target.name} was saved but indexing failed: {exc}") from exc
        added = [d for d in pipeline.index.documents.values() if d.source == target.name]
        counts = pipeline.index.clause_counts()
        clauses = sum(counts.get(d.doc_id, 0) for d in added)
        progress(1.0)
        message = f"已添加 {target.name}：{len(added)} 篇文档，{clauses} 条条款 (added and indexed)"
        return message, doc_rows(), gr.update(choices=doc_choices())

    def run_evaluation(progress=gr.Progress()):
        from qa import evaluate as ev

        if questions_path is None or not questions_path.exists():
            raise gr.Error(f"no labelled questions at {questions_path}")
        progress(0.1, desc="运行评测 (evaluating)")
        try:
            questions = ev.load_labelled(questions_path, list(pipeline.index.documents.values()))
        except QAError as exc:
            raise gr.Error(str(exc)) from exc
        # the test part, as the README reports it (tuned numbers were chosen on the dev part)
        report = ev.run_eval(pipeline, ev.select(questions, "test"), "labelled (test split)")
        folder = Path(tempfile.mkdtemp(prefix="qa-eval-"))
        paths = ev.write(report, folder)
        failures = markdown_failures(report)
        return ev.table(report, markdown=True), str(paths["chart"]), failures

    theme = gr.themes.Soft(font=["Noto Sans CJK SC", "WenQuanYi Micro Hei", "system-ui", "sans-serif"],
                           font_mono=["Noto Sans Mono CJK SC", "DejaVu Sans Mono", "monospace"])
    with gr.Blocks(title="政策条款检索") as demo:
        state = gr.State({"passages": {}, "last": None})
        m = pipeline.index.manifest
        gr.Markdown(f"## 政策条款检索 · Policy clause search\n"
                    f"{m['counts']['documents']} 篇文档 · {m['counts']['clauses']} 条条款 · "
                    f"编码器 {esc(m['encoder']['backend'])}:{esc(m['encoder']['model'])}")
        with gr.Tab("问答 Ask", id="ask"):
            with gr.Row():
                with gr.Column(scale=4):
                    chat = gr.Chatbot(label="对话", height=560, sanitize_html=True, buttons=["copy"],
                                      feedback_options=("Like", "Dislike"), elem_id="qa-chat",
                                      group_consecutive_messages=False,
                                      placeholder="输入问题，例如：江北区有多少家科技型企业？")
                    with gr.Row():
                        box = gr.Textbox(placeholder="输入问题 (ask in Chinese or English) …", show_label=False,
                                         scale=5, elem_id="qa-question", max_length=100_000)
                        send = gr.Button("提问 Ask", variant="primary", scale=1, elem_id="qa-send")
                    gr.Examples(EXAMPLES, inputs=box, label="示例问题 Examples")
                with gr.Column(scale=1, min_width=220):
                    k = gr.Slider(1, 20, value=5, step=1, label="条款数 Passages", elem_id="qa-k")
                    mode = gr.Radio([(MODE_LABELS[m_], m_) for m_ in MODES], value="hybrid", label="检索方式 Mode",
                                    elem_id="qa-mode")
                    doc_filter = gr.Dropdown(doc_choices(), multiselect=True, label="限定文档 Documents",
                                             elem_id="qa-docs")
                    clear = gr.Button("清空对话 Clear")
            inputs = [box, chat, k, mode, doc_filter, state]
            box.submit(respond, inputs, [chat, state, box], api_visibility="private")
            send.click(respond, inputs, [chat, state, box], api_visibility="private")
            chat.like(vote, [state], None, api_visibility="private")
            clear.click(lambda: ([], {"passages": {}, "last": None}), None, [chat, state], api_visibility="private")
        with gr.Tab("文档 Documents", id="docs"):
            table = gr.Dataframe(doc_rows(), headers=["标题", "发布机构", "日期", "文号/索引号", "类型", "条款数", "文件",
                                                      "doc_id"], interactive=False, wrap=True, elem_id="qa-doc-table")
            with gr.Row():
                file = gr.File(label="上传文档 Upload (.txt .md .html .pdf .docx, ≤ 20 MB)",
                               file_types=[".txt", ".md", ".html", ".htm", ".pdf", ".docx"], elem_id="qa-upload")
                with gr.Column():
                    overwrite = gr.Checkbox(label="替换同名文件 Replace a document of the same name", value=False)
                    add = gr.Button("添加到索引 Add to index", variant="primary", elem_id="qa-add")
            status = gr.Markdown(elem_id="qa-upload-status")
            add.click(upload, [file, overwrite], [status, table, doc_filter], api_visibility="private")
        with gr.Tab("评测 Evaluate", id="eval"):
            gr.Markdown(f"在标注问题集上评测检索效果 (labelled questions: `{esc(str(questions_path))}`)")
            go = gr.Button("运行评测 Run evaluation", variant="primary", elem_id="qa-eval")
            metrics = gr.Markdown(elem_id="qa-eval-table")
            chart = gr.Image(label="对比图 Chart", type="filepath", interactive=False)
            fails = gr.Markdown()
            go.click(run_evaluation, None, [metrics, chart, fails], api_visibility="private")

        def api_ask(question: str, k: int = 5, mode: str = "hybrid") -> dict:
            """Answer one question: ranked clauses with citations (JSON)."""
            try:
                return pipeline.ask(question, k=int(k), mode=mode).to_json()
            except QAError as exc:
                return {"question": question, "error": str(exc), "hits": []}

        def api_search(questions: list[str], k: int = 10, mode: str = "hybrid") -> list[dict]:
            """Answer many questions at once."""
            return [api_ask(q, k, mode) for q in questions]

        gr.api(api_ask, api_name="ask")
        gr.api(api_search, api_name="search")
    demo.qa_theme, demo.qa_css = theme, CSS
    return demo


def markdown_failures(report: dict[str, Any], limit: int = 30) -> str:
    rows = [r for r in report["per_question"]["hybrid"] if r["rank"] != 1][:limit]
    lines = [f"**不在第一位的问题 (not at rank 1): {sum(1 for r in report['per_question']['hybrid'] if r['rank'] != 1)}**"]
    for r in rows:
        first = (r.get("first") or {}).get("text", "")
        lines.append(f"- {esc(r['question'])} — 名次 {r['rank'] or '—'}；首位：{esc(first[:60])}")
    return "\n".join(lines)


def _original_name(path: Path) -> str:
    return path.name


def launch(pipeline: Pipeline, host: str = "127.0.0.1", port: int = 7860, watch: bool = True) -> None:
    """Serve the UI; rebuild the index in the background when the documents change."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # The first question's one-off costs (jieba's dictionary, 0.5 s) are paid while Gradio
    # builds the page and starts its server, which spends part of that time waiting.
    warming = threading.Thread(target=pipeline.warm_up, name="qa-warm-up", daemon=True)
    warming.start()
    demo = build_app(pipeline)
    # Retrieval is ~10 ms of CPU per question on 2 cores: 4 at a time keeps both cores busy
    # without piling up; 256 waiting requests at most, beyond which clients are told to retry.
    # Every API call is a Gradio session with its own state: 1,000 sessions are kept (the
    # oldest dropped), which bounds memory (measured: +40 MB over 3,000 calls instead of
    # growing ~70 KB per call).
    demo.queue(default_concurrency_limit=4, max_size=256)
    demo.launch(server_name=host, server_port=port, ssr_mode=False, footer_links=[], show_error=False,
                theme=demo.qa_theme, css=demo.qa_css, max_file_size="20mb", quiet=False,
                state_session_capacity=int(os.environ.get("QA_SESSIONS", "1000")), prevent_thread_lock=True)
    warming.join()
    # The watcher loads the clause encoder (torch, 5-8 s of CPU) once the server is up, so that
    # importing it does not hold back starting the server and answering the first question.
    if watch and pipeline.corpus is not None:
        pipeline.watch()
    demo.block_thread()
