"""The Documents tab: the list, uploads and deletions as background jobs, the audit trail.

A request only stages the file (quick checks, the name claimed) and queues a job; the job
reads it under limits, puts it in place and re-indexes, while questions go on being answered
from the index as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..audit import AuditLog
from ..ingest.upload import Library, UploadRefused
from ..jobs import Job, JobRefused, Jobs, Report
from ..pipeline import Pipeline
from ..users import User

AUDIT_COLUMNS = ["时间 time", "用户 user", "操作 action", "文件 file", "sha256"]
COLUMNS = ["标题", "发布机构", "日期", "文号/索引号", "类型", "条款数", "文件", "doc_id"]


def rows(pipeline: Pipeline) -> list[list[Any]]:
    counts = pipeline.index.clause_counts()
    return [[d.title, d.meta.get("agency", ""), d.meta.get("published") or d.meta.get("written")
             or d.meta.get("date", ""), d.meta.get("number") or d.meta.get("index_no", ""),
             d.meta.get("kind", ""), counts.get(d.doc_id, 0), d.source, d.doc_id]
            for d in pipeline.index.documents.values()]


def choices(pipeline: Pipeline) -> list[tuple[str, str]]:
    """(label, doc_id) for the document filter."""
    return [(f"{d.title} ({d.doc_id})", d.doc_id) for d in pipeline.index.documents.values()]


def files(pipeline: Pipeline) -> list[str]:
    """The document files, for deletion (a newspaper page file holds several documents)."""
    return sorted({d.source for d in pipeline.index.documents.values()})


def audit_rows(audit: AuditLog, n: int = 50) -> list[list[str]]:
    return [[e.get("time", ""), e.get("user", ""), e.get("action", ""), e.get("file", ""), e.get("sha256", "")[:16]]
            for e in audit.last(n)]


def reindex(pipeline: Pipeline, report: Report, start: float = 0.3) -> str:
    """Bring the index up to date with the folder, moving the job's bar; returns a summary."""
    def embedded(done: int, total: int) -> None:
        report(start + (0.98 - start) * done / max(1, total), f"向量化 embedding {done}/{total} 条款 clauses")

    report(start, "切分与索引 (chunking and indexing)")
    pipeline.refresh(progress=embedded)
    m = pipeline.index.manifest["counts"]
    return f"{m['documents']} 篇文档 · {m['clauses']} 条条款 (documents, clauses now indexed)"


def start_upload(library: Library, jobs: Jobs, pipeline: Pipeline, user: User, file: Any,
                 overwrite: bool) -> Job:
    """Stage ``file`` (a path from the upload widget) and queue its indexing. Raises QAError."""
    if file is None:
        raise UploadRefused("请选择文件 (choose a file first)")
    source = Path(file if isinstance(file, str) else file.name)
    try:
        staged = library.stage(source, source.name, bool(overwrite), user.name)
    finally:
        source.unlink(missing_ok=True)  # Gradio's copy of the upload: ours is staged now

    def work(report: Report) -> str:
        report(0.05, "检查文件 (reading the file under limits)")
        target = library.commit(staged)
        added = reindex(pipeline, report)
        clauses = sum(n for doc_id, n in pipeline.index.clause_counts().items()
                      if pipeline.index.documents[doc_id].source == target.name)
        message = f"已添加 {target.name}：{clauses} 条条款 (added and indexed) · {added}"
        report(1.0, message)
        return message

    try:
        return jobs.submit("upload", user.name, f"上传 {staged.name}", work)
    except JobRefused:
        library.discard(staged)
        raise


def start_delete(library: Library, jobs: Jobs, pipeline: Pipeline, user: User, name: Any) -> Job:
    if not name or not isinstance(name, str):
        raise UploadRefused("请选择要删除的文件 (choose a document file)")

    def work(report: Report) -> str:
        kept = library.delete(name, user.name)
        summary = reindex(pipeline, report)
        message = f"已删除 {name}（旧版本保存在 {kept.relative_to(library.docs_dir)}）· {summary}"
        report(1.0, message)
        return message

    return jobs.submit("delete", user.name, f"删除 {name}", work)

