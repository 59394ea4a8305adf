"""Evaluation output: a terminal table, JSON, Markdown with failures, a PNG chart, and diffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Above this many questions report.json keeps only each question's rank (report.md has the rest).
PER_QUESTION_DETAIL = 500
COLUMNS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def _columns(report: dict[str, Any]) -> list[str]:
    first = next(iter(report["modes"].values()))
    cols = [c for c in first["metrics"]]
    return cols + list(first.get("answer_in", {}))


def table(report: dict[str, Any], markdown: bool = False) -> str:
    """Mode × metric table."""
    cols = _columns(report)
    header = ["mode", *[c.replace("recall@", "R@").replace("answer@", "A@").replace("mrr", "MRR").replace(
        "ndcg", "nDCG") for c in cols], "ms/q"]
    rows = []
    for mode, entry in report["modes"].items():
        values = {**entry["metrics"], **entry.get("answer_in", {})}
        rows.append([mode, *[f"{values[c]:.3f}" for c in cols], f"{entry['ms_per_question']:.1f}"])
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header)] + [fmt.format(*r) for r in rows])


def markdown(report: dict[str, Any], max_failures: int = 60) -> str:
    m = report["index"]
    enc = m.get("encoder") or {}
    lines = [
        f"# Retrieval evaluation: {report['name']}",
        "",
        f"{report['questions']} questions; index of {m['counts']['clauses']} clauses from "
        f"{m['counts']['documents']} documents; encoder {enc.get('backend')}:{enc.get('model')}; "
        f"created {report['created']}.",
        "",
        table(report, markdown=True),
        "",
        "R@k: the gold appears in the top k (our set: a clause overlapping a gold span; benchmarks: a clause "
        "from a gold passage, passages counted once). A@k: a top-k clause contains an answer string.",
    ]
    if report.get("by_type") and len(report["by_type"]) > 1:
        lines += ["", "## Recall@1 / Recall@5 by question type", "",
                  "| type | n | " + " | ".join(report["modes"]) + " |", "|---|---|" + "---|" * len(report["modes"])]
        for kind, per_mode in report["by_type"].items():
            n = next(iter(per_mode.values()))["n"]
            cells = [f"{v.get('recall@1', 0):.2f} / {v.get('recall@5', 0):.2f}" for v in per_mode.values()]
            lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    cal = report.get("calibration")
    if cal:
        pct = ", ".join(f"p{k} {v:.3f}" for k, v in cal["top1_cosine_percentiles"].items())
        lines += ["", "## When nothing matches", "",
                  f"Top-1 cosine of answerable questions: {pct}.  ",
                  f"Answerable questions refused as no match: {cal['answerable_refused']:.1%}."
                  + (f" Off-topic questions refused: {cal['offtopic_refused']:.1%} of {cal['offtopic_questions']}."
                     if "offtopic_refused" in cal else "")]
    for mode in list(report["per_question"])[:1]:
        failures = [r for r in report["per_question"][mode] if r["rank"] != 1]
        lines += ["", f"## Questions not answered at rank 1 ({mode}): {len(failures)}", ""]
        for r in failures[:max_failures]:
            first = r["first"] or {}
            gold = " / ".join(r["gold"])
            lines += [f"- **{r['qid']}** ({r['type']}) {r['question']}  ",
                      f"  gold: {gold[:160]} — rank: {r['rank'] or 'not in top 10'}  ",
                      f"  first instead: {first.get('text', '')[:160]} ({first.get('clause_id', '')})"]
        if len(failures) > max_failures:
            lines.append(f"- … and {len(failures) - max_failures} more (see report.json)")
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    """Grouped bars: metrics on the x axis, one bar per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = _columns(report)
    modes = list(report["modes"])
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(cols), 3.6), dpi=120)
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        entry = report["modes"][mode]
        values = {**entry["metrics"], **entry.get("answer_in", {})}
        xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(cols))]
        bars = ax.bar(xs, [values[c] for c in cols], width, label=mode)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_title(f"{report['name']}: {report['questions']} questions", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "markdown": folder / "report.md", "chart": folder / "chart.png"}
    stored = report
    if report["questions"] > PER_QUESTION_DETAIL:  # keep committed result files small: ranks only
        stored = {**report, "per_question": {mode: [{"qid": r["qid"], "rank": r["rank"]} for r in rows]
                                             for mode, rows in report["per_question"].items()}}
    paths["json"].write_text(json.dumps(stored, ensure_ascii=False, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    chart(report, paths["chart"])
    return paths


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Per-question diff of first-relevant ranks: what a change fixed and what it broke."""
    out = []
    for mode in new["per_question"]:
        if mode not in old.get("per_question", {}):
            continue
        before = {r["qid"]: r for r in old["per_question"][mode]}
        fixed, broken, better, worse = [], [], [], []
        for row in new["per_question"][mode]:
            prev = before.get(row["qid"])
            if prev is None:
                continue
            a, b = prev["rank"] or 99, row["rank"] or 99
            if a == b:
                continue
            item = f"  {row['qid']}: {_rank(prev['rank'])} -> {_rank(row['rank'])}  {row['question']}"
            if b == 1:
                fixed.append(item)
            elif a == 1:
                broken.append(item)
            elif b < a:
                better.append(item)
            else:
                worse.append(item)
        delta = {k: new["modes"][mode]["metrics"][k] - old["modes"][mode]["metrics"].get(k, 0)
                 for k in new["modes"][mode]["metrics"]}
        out.append(f"{mode}: " + ", ".join(f"{k} {v:+.3f}" for k, v in delta.items()))
        for title, items in (("fixed (now rank 1)", fixed), ("broken (was rank 1)", broken),
                             ("better", better), ("worse", worse)):
            if items:
                out.append(f" {title}: {len(items)}")
                out.extend(items)
    return "\n".join(out) if out else "no mode in common between the two reports"


def _rank(rank: int | None) -> str:
    return str(rank) if rank else "—"
