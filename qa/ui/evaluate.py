"""The Evaluate tab: an evaluation run as a background job, and the review of votes.

Votes become gold labels only after an editor accepts them here (``qa eval --feedback`` uses
accepted votes only).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..errors import QAError
from ..feedback import Feedback
from ..jobs import Job, Jobs, Report
from ..pipeline import Pipeline
from ..users import User
from . import render

REVIEW_COLUMNS = ["id", "时间 time", "用户 user", "投票 vote", "问题 question", "条款 clause", "审核 review"]


def start_evaluation(jobs: Jobs, pipeline: Pipeline, user: User, questions_path: Path | None) -> Job:
    """Queue an evaluation of the labelled set's test split; the job's result is
    ``{"table", "chart", "failures"}`` (the chart as an image array: no file is left behind)."""
    from .. import evaluate as ev

    if questions_path is None or not questions_path.exists():
        raise QAError("没有标注问题集 (no labelled questions for this index)")

    def work(report: Report) -> dict[str, Any]:
        import matplotlib.image

        report(0.05, "载入问题 (loading the questions)")
        questions = ev.load_labelled(questions_path, list(pipeline.index.documents.values()))
        report(0.2, "运行评测 (evaluating the test split)")
        # the test part, as the README reports it (tuned numbers were chosen on the dev part)
        result = ev.run_eval(pipeline, ev.select(questions, "test"), "labelled (test split)")
        with tempfile.TemporaryDirectory(prefix="qa-eval-") as folder:
            paths = ev.write(result, Path(folder))
            chart = matplotlib.image.imread(paths["chart"])
        report(1.0, f"完成：{result['questions']} 个问题 (done)")
        return {"table": ev.table(result, markdown=True), "chart": chart, "failures": render.failures(result)}

    return jobs.submit("evaluate", user.name, "评测 evaluation", work)


def review_rows(feedback: Feedback, pending_only: bool = True, n: int = 200) -> list[list[str]]:
    out = []
    for v in feedback.votes(pending_only)[:n]:
        review = v.get("review") or {}
        out.append([v["id"], v.get("time", ""), v.get("user", ""), "👍" if v["vote"] == "up" else "👎",
                    str(v.get("question", ""))[:200], str(v.get("text", ""))[:200],
                    f"{review.get('verdict')} by {review.get('by')}" if review else "待审 pending"])
    return out


def review(feedback: Feedback, user: User, ids: Any, verdict: str) -> str:
    """Accept or reject the votes whose ids are listed (separated by spaces or commas)."""
    wanted = [i for i in str(ids or "").replace(",", " ").split() if i][:500]
    if not wanted:
        raise QAError("请填写投票 id (list the vote ids, separated by spaces)")
    found = feedback.review(wanted, verdict, by=user.name)
    return f"{found} 条投票已标记为 {verdict} ({len(wanted) - found} 个 id 未找到 not found)"
