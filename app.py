"""The web UI: a chat that answers with cited clauses, a documents tab, an evaluation tab.

``build_app(pipeline, ...)`` builds the Gradio Blocks from a pipeline it is handed and only
wires events to the handlers in ``qa.ui`` (plain functions of the pipeline and the signed-in
user); nothing lives at module level. Every handler checks the caller's role itself: hiding a
button does not stop a call through Gradio's queue. Text that becomes HTML is escaped in
``qa.ui.render``; error messages are escaped here before they reach a toast.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import threading
from pathlib import Path

import gradio as gr

from qa.audit import AuditLog
from qa.errors import QAError
from qa.feedback import Feedback
from qa.ingest.upload import MAX_UPLOAD_BYTES, Library
from qa.jobs import Jobs
from qa.pipeline import MODES, Pipeline
from qa.ui import ask, documents, evaluate, render
from qa.ui.access import Access
from qa.ui.render import MODE_LABELS, esc
from qa.users import Users

log = logging.getLogger("qa.app")

EXAMPLES = [
    "江北区有多少家科技型企业？",
    "重庆建成了多少家制造业创新中心？",
    "“促进科技成果转化24条”主要从哪几个方面着力？",
    "How many technology brokers have been trained?",
    "下一步在技术转移人才队伍建设上有什么打算？",
]

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
.qa-job {font-size: 0.92em; margin: 4px 0;}
.qa-job progress {width: 180px; vertical-align: middle;}
footer {display: none !important;}
"""


def refuse(exc: QAError) -> gr.Error:
    """A toast for ``exc``: gr.Error renders HTML, so the message is escaped (file names,
    parser messages and questions are a user's text)."""
    return gr.Error(html.escape(str(exc), quote=False), print_exception=False)


def heading(pipeline: Pipeline) -> str:
    """The page's title line with the index as it is now (uploads change the counts)."""
    m = pipeline.index.manifest
    return (f"## 政策条款检索 · Policy clause search\n{m['counts']['documents']} 篇文档 · "
            f"{m['counts']['clauses']} 条条款 · 编码器 {esc(m['encoder']['backend'])}:{esc(m['encoder']['model'])}")


def build_app(pipeline: Pipeline, *, users: Users | None = None, feedback_path: Path | None = None,
              questions_path: Path | None = None, audit_path: Path | None = None, jobs: Jobs | None = None):
    """The Gradio Blocks for ``pipeline``.

    Args:
        users: the users file; None serves everyone as an editor without signing in.
        feedback_path: the votes (default: beside the index, feedback.jsonl).
        questions_path: the labelled set for the Evaluate tab (default: <docs>/eval/questions.jsonl).
        audit_path: the audit trail of document changes (default: beside the index, audit.jsonl).
        jobs: the background job queue (default: a new one).
    """
    # a query server reading Milvus has no index folder: its votes and audit trail go to ./index
    home = Path(pipeline.index_dir).absolute().parent if pipeline.index_dir else Path("index").absolute()
    docs_dir = pipeline.corpus.path if pipeline.corpus and pipeline.corpus.kind == "folder" else None
    questions_path = questions_path or (docs_dir / "eval" / "questions.jsonl" if docs_dir else None)
    access = Access(users)
    feedback = Feedback(feedback_path or home / "feedback.jsonl")
    audit = AuditLog(audit_path or home / "audit.jsonl")
    library = Library(docs_dir, audit) if docs_dir else None
    jobs = jobs or Jobs()

    # -- wiring: each function checks the caller's right, then calls a plain handler ---------

    def on_respond(message, history, k, mode, doc_filter, state, agency, since, until, request: gr.Request):
        try:
            user = access.require(request, "ask")
        except QAError as exc:
            raise refuse(exc) from None
        return ask.respond(pipeline, user, message, history, k, mode, doc_filter, state, agency, since, until)

    def on_vote(data: gr.LikeData, state, request: gr.Request):
        try:
            stored = ask.vote(feedback, access.require(request, "vote"), state, data.index, data.liked)
        except QAError as exc:
            raise refuse(exc) from None
        gr.Info({"up": "已记录 👍 (saved)", "down": "已记录 👎 (saved)", None: "已撤销 (vote removed)"}[stored])

    def on_upload(file, overwrite, ids, request: gr.Request):
        try:
            user = access.require(request, "upload")
            if library is None:
                raise QAError("This index was built from a passage pool; uploads need a documents folder.")
            job = documents.start_upload(library, jobs, pipeline, user, file, overwrite)
        except QAError as exc:
            raise refuse(exc) from None
        return (*_started(ids, job), None)  # the widget is emptied: the file is staged

    def on_delete(name, ids, request: gr.Request):
        try:
            user = access.require(request, "delete")
            if library is None:
                raise QAError("This index was built from a passage pool; it has no documents folder.")
            job = documents.start_delete(library, jobs, pipeline, user, name)
        except QAError as exc:
            raise refuse(exc) from None
        return _started(ids, job)

    def on_evaluate(ids, request: gr.Request):
        try:
            job = evaluate.start_evaluation(jobs, pipeline, access.require(request, "evaluate"), questions_path)
        except QAError as exc:
            raise refuse(exc) from None
        return _started(ids, job)

    def _started(ids, job):
        ids = [*(ids or []), job.id][-20:]
        return render.job_status(job), ids, gr.Timer(active=True)

    def on_poll(ids, seen, request: gr.Request):
        """The session's jobs: status lines; fresh tables when one finished; stop when all did."""
        try:
            access.user(request)
        except QAError:  # signed out or removed meanwhile: stop polling instead of an error a second
            return (*[gr.skip()] * 10, gr.Timer(active=False))
        mine = [j for j in (jobs.get(i) for i in ids or []) if j is not None]
        finished = [j for j in mine if not j.active and j.id not in (seen or [])]
        changed_docs = any(j.kind in ("upload", "delete") for j in finished)
        result = next((j.result for j in reversed(finished) if j.kind == "evaluate" and j.state == "done"), None)
        status = "".join(render.job_status(j) for j in reversed(mine[-4:]))  # newest first
        keep = gr.skip()
        return (status, [*(seen or []), *(j.id for j in finished)][-40:],
                heading(pipeline) if changed_docs else keep,
                documents.rows(pipeline) if changed_docs else keep,
                gr.update(choices=documents.choices(pipeline)) if changed_docs else keep,
                gr.update(choices=documents.files(pipeline)) if changed_docs else keep,
                documents.audit_rows(audit) if changed_docs else keep,
                result["table"] if result else keep, result["chart"] if result else keep,
                result["failures"] if result else keep,
                gr.Timer(active=any(j.active for j in mine)))

    def on_load(request: gr.Request):
        try:
            user = access.user(request)
        except QAError:
            user = None
        editor = bool(user and user.can("upload"))
        who = (f"已登录 **{esc(user.name)}** ({user.role})" if user and access.signs_in else
               "未启用登录 (no sign-in: everyone may edit; start with --users to require one)")
        return (heading(pipeline), who, gr.update(visible=access.signs_in), gr.update(visible=editor), gr.update(visible=editor),
                gr.update(visible=editor), gr.update(visible=bool(user and user.can("evaluate"))),
                gr.update(visible=bool(user and user.can("review"))),
                documents.audit_rows(audit) if user and user.can("audit") else [],
                documents.rows(pipeline), gr.update(choices=documents.choices(pipeline)),
                gr.update(choices=documents.files(pipeline)), gr.update(choices=ask.agencies(pipeline)))

    def on_review_list(request: gr.Request):
        try:
            access.require(request, "review")
        except QAError as exc:
            raise refuse(exc) from None
        return evaluate.review_rows(feedback)

    def on_review(ids, verdict, request: gr.Request):
        try:
            message = evaluate.review(feedback, access.require(request, "review"), ids, verdict)
        except QAError as exc:
            raise refuse(exc) from None
        return message, evaluate.review_rows(feedback)

    def on_accept(ids, request: gr.Request):
        return on_review(ids, "accepted", request)

    def on_reject(ids, request: gr.Request):
        return on_review(ids, "rejected", request)

    def api_ask(question: str, k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None,
                request: gr.Request = None) -> dict:
        """Answer one question: ranked clauses with citations (JSON). k is 1-50."""
        try:
            return ask.api_ask(pipeline, access.require(request, "ask"), question, k, mode, doc_ids)
        except QAError as exc:
            raise refuse(exc) from None

    def api_ask_where(question: str, k: int = 5, mode: str = "hybrid", doc_ids: list[str] | None = None,
                      agency: list[str] | None = None, since: str = "", until: str = "",
                      request: gr.Request = None) -> dict:
        """``ask`` over the documents of these agencies and dates (YYYY-MM-DD, inclusive); a separate
        endpoint, so that raw HTTP callers of ``ask`` (which must send every value) keep working."""
        try:
            return ask.api_ask(pipeline, access.require(request, "ask"), question, k, mode, doc_ids,
                               agency, since, until)
        except QAError as exc:
            raise refuse(exc) from None

    def api_search(questions: list[str], k: int = 10, mode: str = "hybrid", request: gr.Request = None) -> list[dict]:
        """Answer up to 200 questions at once."""
        try:
            return ask.api_search(pipeline, access.require(request, "ask"), questions, k, mode)
        except QAError as exc:
            raise refuse(exc) from None

    # -- layout -------------------------------------------------------------------------------

    private = {"api_visibility": "private"}
    theme = gr.themes.Soft(font=["Noto Sans CJK SC", "WenQuanYi Micro Hei", "system-ui", "sans-serif"],
                           font_mono=["Noto Sans Mono CJK SC", "DejaVu Sans Mono", "monospace"])
    # files Gradio keeps from uploads (ours are moved out at once) are deleted after an hour
    with gr.Blocks(title="政策条款检索", delete_cache=(1800, 3600)) as demo:
        state = gr.State({"passages": {}, "last": None})
        job_ids, seen = gr.State([]), gr.State([])
        timer = gr.Timer(1.0, active=False)
        with gr.Row():
            title = gr.Markdown(heading(pipeline))
            with gr.Column(scale=0, min_width=260):
                who = gr.Markdown(elem_id="qa-who")
                sign_out = gr.Button("退出 Sign out", link="/logout", size="sm", visible=False, elem_id="qa-sign-out")
        with gr.Tab("问答 Ask", id="ask"):
            with gr.Row():
                with gr.Column(scale=4):
                    chat = gr.Chatbot(label="对话", height=560, sanitize_html=True, buttons=["copy"],
                                      feedback_options=("Like", "Dislike"), elem_id="qa-chat",
                                      group_consecutive_messages=False,
                                      placeholder="输入问题，例如：江北区有多少家科技型企业？")
                    with gr.Row():
                        box = gr.Textbox(placeholder="输入问题 (ask in Chinese or English) …", show_label=False,
                                         scale=5, elem_id="qa-question", max_length=ask.MAX_QUESTION_CHARS // 2)
                        send = gr.Button("提问 Ask", variant="primary", scale=1, elem_id="qa-send")
                    gr.Examples(EXAMPLES, inputs=box, label="示例问题 Examples")
                with gr.Column(scale=1, min_width=220):
                    k = gr.Slider(1, 20, value=5, step=1, label="条款数 Passages", elem_id="qa-k")
                    mode = gr.Radio([(MODE_LABELS[m_], m_) for m_ in MODES], value="hybrid", label="检索方式 Mode",
                                    elem_id="qa-mode")
                    doc_filter = gr.Dropdown([], multiselect=True, label="限定文档 Documents", elem_id="qa-docs")
                    agency = gr.Dropdown([], multiselect=True, label="发布机构 Agency", elem_id="qa-agency")
                    with gr.Row():
                        since = gr.Textbox(label="起 From", placeholder="YYYY-MM-DD", elem_id="qa-since", max_length=40)
                        until = gr.Textbox(label="止 To", placeholder="YYYY-MM-DD", elem_id="qa-until", max_length=40)
                    clear = gr.Button("清空对话 Clear")
            inputs = [box, chat, k, mode, doc_filter, state, agency, since, until]
            box.submit(on_respond, inputs, [chat, state, box], **private)
            send.click(on_respond, inputs, [chat, state, box], **private)
            chat.like(on_vote, [state], None, **private)
            clear.click(lambda: ([], {"passages": {}, "last": None}), None, [chat, state], **private)
        with gr.Tab("文档 Documents", id="docs"):
            table = gr.Dataframe([], headers=documents.COLUMNS, interactive=False, wrap=True, elem_id="qa-doc-table")
            jobs_box = gr.HTML(elem_id="qa-jobs")
            with gr.Row(visible=False) as upload_row:
                file = gr.File(label=f"上传文档 Upload (.txt .md .html .pdf .docx, ≤ {MAX_UPLOAD_BYTES // 2**20} MB)",
                               file_types=[".txt", ".md", ".html", ".htm", ".pdf", ".docx"], elem_id="qa-upload")
                with gr.Column():
                    overwrite = gr.Checkbox(label="替换同名文件 Replace a document of the same name (the old one is "
                                                  "kept in docs/.history)", value=False)
                    add = gr.Button("添加到索引 Add to index", variant="primary", elem_id="qa-add")
            with gr.Row(visible=False) as delete_row:
                doomed = gr.Dropdown([], label="删除文档 Delete a document file", elem_id="qa-doomed", scale=4)
                remove = gr.Button("删除 Delete", variant="stop", elem_id="qa-delete", scale=1)
            with gr.Accordion("审计记录 Audit trail (who changed what)", open=False, visible=False) as audit_box:
                audit_table = gr.Dataframe([], headers=documents.AUDIT_COLUMNS, interactive=False, wrap=True,
                                           elem_id="qa-audit")
            add.click(on_upload, [file, overwrite, job_ids], [jobs_box, job_ids, timer, file], **private)
            remove.click(on_delete, [doomed, job_ids], [jobs_box, job_ids, timer], **private)
        with gr.Tab("评测 Evaluate", id="eval", visible=False) as eval_tab:
            gr.Markdown(f"在标注问题集上评测检索效果 (labelled questions: `{esc(str(questions_path))}`)")
            go = gr.Button("运行评测 Run evaluation", variant="primary", elem_id="qa-eval")
            eval_status = gr.HTML()
            metrics = gr.Markdown(elem_id="qa-eval-table")
            chart = gr.Image(label="对比图 Chart", type="numpy", interactive=False)
            fails = gr.Markdown()
            go.click(on_evaluate, [job_ids], [eval_status, job_ids, timer], **private)
            with gr.Accordion("反馈审核 Review votes (only accepted votes become gold labels)", open=False,
                              visible=False) as review_box:
                votes = gr.Dataframe([], headers=evaluate.REVIEW_COLUMNS, interactive=False, wrap=True,
                                     elem_id="qa-votes")
                with gr.Row():
                    vote_ids = gr.Textbox(label="投票 id (vote ids, separated by spaces)", scale=4, elem_id="qa-vote-ids")
                    accept = gr.Button("接受 Accept", scale=1, elem_id="qa-accept")
                    reject = gr.Button("拒绝 Reject", scale=1)
                reviewed = gr.Markdown()
                list_votes = gr.Button("刷新 Refresh", size="sm")
                list_votes.click(on_review_list, None, votes, **private)
                accept.click(on_accept, [vote_ids], [reviewed, votes], **private)
                reject.click(on_reject, [vote_ids], [reviewed, votes], **private)
        timer.tick(on_poll, [job_ids, seen], [jobs_box, seen, title, table, doc_filter, doomed, audit_table, metrics,
                                               chart, fails, timer], **private)
        demo.load(on_load, None, [title, who, sign_out, upload_row, delete_row, audit_box, eval_tab, review_box,
                                  audit_table, table, doc_filter, doomed, agency], **private)
        eval_tab.select(on_review_list, None, votes, **private)  # the newest votes each time the tab opens

        gr.api(api_ask, api_name="ask")
        gr.api(api_ask_where, api_name="ask_where")
        gr.api(api_search, api_name="search")
    demo.qa_theme, demo.qa_css = theme, CSS
    demo.qa_access, demo.qa_jobs = access, jobs
    return demo


def launch(pipeline: Pipeline, host: str = "127.0.0.1", port: int = 7860, watch: bool = True,
           users: Users | None = None) -> None:
    """Serve the UI; rebuild the index in the background when the documents change.

    Args:
        users: require signing in as one of them; None serves everyone as an editor (the
            CLI allows that only on a loopback address or with --no-auth).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # The first question's one-off costs (jieba's dictionary, 0.5 s) are paid while Gradio
    # builds the page and starts its server, which spends part of that time waiting.
    warming = threading.Thread(target=pipeline.warm_up, name="qa-warm-up", daemon=True)
    warming.start()
    demo = build_app(pipeline, users=users)

    async def sign_in(name: str, password: str) -> bool:
        # argon2 takes ~50 ms of CPU on purpose: off the event loop, so questions go on
        return await asyncio.to_thread(users.verify, name, password)

    # Retrieval is ~10 ms of CPU per question on 2 cores: 4 at a time keeps both cores busy
    # without piling up; 256 waiting requests at most, beyond which clients are told to retry.
    # api_open=False: every call goes through the queue and its limits (/run would skip them).
    # Every API call is a Gradio session with its own state: 1,000 sessions are kept (the
    # oldest dropped), which bounds memory (measured: +40 MB over 3,000 calls instead of
    # growing ~70 KB per call).
    demo.queue(default_concurrency_limit=4, max_size=256, api_open=False)
    demo.launch(server_name=host, server_port=port, ssr_mode=False, footer_links=[], show_error=False,
                theme=demo.qa_theme, css=demo.qa_css, max_file_size=MAX_UPLOAD_BYTES, quiet=False,
                auth=sign_in if users is not None else None,
                auth_message="政策条款检索 · 请登录 (sign in)",
                state_session_capacity=int(os.environ.get("QA_SESSIONS", "1000")), prevent_thread_lock=True)
    warming.join()
    # The watcher loads the clause encoder (torch, 5-8 s of CPU) once the server is up, so that
    # importing it does not hold back starting the server and answering the first question.
    if watch and pipeline.corpus is not None:
        pipeline.watch()
    demo.block_thread()
