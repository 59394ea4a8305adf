"""The README's accuracy tables and chart, drawn from the committed evaluation results.

    .venv/bin/python bench/accuracy.py             # print the tables
    .venv/bin/python bench/accuracy.py --write     # also rewrite them in README.md and draw assets/eval-accuracy.png

Each results folder under bench/results/accuracy/ was written by the command recorded in its
report.json (``command``); the README block between the ``accuracy:start``/``accuracy:end``
markers is exactly what ``render`` makes of them (tests/test_generalise.py checks it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results/accuracy"
README = ROOT / "README.md"
CHART = ROOT / "assets/eval-accuracy.png"
START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"
METRICS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def load(folder: Path = RESULTS) -> list[dict[str, Any]]:
    """Every report, in name order."""
    return [json.loads(p.read_text(encoding="utf-8")) | {"folder": p.parent.name}
            for p in sorted(folder.glob("*/report.json"))]


def render(reports: list[dict[str, Any]]) -> str:
    """The Markdown block: metrics per set, split and mode; then passage level; then no-match."""
    lines = ["| set (results folder) | split: questions | mode | R@1 | R@3 | R@5 | R@10 | MRR@10 | nDCG@10 | A@1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        split = r.get("split", {})
        for i, (mode, entry) in enumerate(r["modes"].items()):
            m = entry["metrics"]
            name = f"{r['name']} (`{r['folder']}`)" if i == 0 else ""
            where = f"{split.get('name', 'all')}: {r['questions']}" if i == 0 else ""
            answer = entry.get("answer_in", {}).get("answer@1")
            cells = [f"{m[k]:.3f}" for k in METRICS] + ["—" if answer is None else f"{answer:.3f}"]
            if mode == "hybrid":
                mode, cells = f"**{mode}**", [c if c == "—" else f"**{c}**" for c in cells]
            lines.append(f"| {name} | {where} | {mode} | " + " | ".join(cells) + " |")
    typed = [r for r in reports if len(r.get("by_type", {})) > 1 and r["index"]["corpus"]["kind"] == "folder"]
    if typed:
        lines += ["", "Hybrid R@1 / R@5 by question type (test splits):", "",
                  "| set | type | questions | R@1 | R@5 |", "|---|---|---|---|---|"]
        for r in typed:
            for kind, per_mode in r["by_type"].items():
                h = per_mode.get("hybrid")
                if h:
                    lines.append(f"| {r['name']} | {kind} | {h['n']} | {h['recall@1']:.3f} | {h['recall@5']:.3f} |")
    levels = [r for r in reports if "passage_level" in r]
    if levels:
        lines += ["", "Passage level (a hit counts for its section or passage; qa/evaluate/passages.py):", "",
                  "| set | questions / passages | system | R@1 | R@5 | MRR@10 |", "|---|---|---|---|---|---|"]
        for r in levels:
            level = r["passage_level"]
            for i, (system, m) in enumerate(level["systems"].items()):
                head = (f"| {r['name']} ({r.get('split', {}).get('name', 'all')}) | {level['questions']} / "
                        f"{level['passages']} |") if i == 0 else "| | |"
                lines.append(f"{head} {system} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['mrr@10']:.3f} |")
    calibrated = [r for r in reports if r.get("calibration")]
    if calibrated:
        lines += ["", "When nothing matches (the line chosen on dev, see below):", "",
                  "| set | answerable refused | off-topic refused |", "|---|---|---|"]
        for r in calibrated:
            c = r["calibration"]
            off = f"{c['offtopic_refused']:.1%} of {c['offtopic_questions']}" if "offtopic_refused" in c else "—"
            lines.append(f"| {r['name']} ({r.get('split', {}).get('name', 'all')}) | "
                         f"{c['answerable_refused']:.1%} of {r['questions']} | {off} |")
    return "\n".join(lines)


def chart(reports: list[dict[str, Any]], path: Path) -> None:
    """Hybrid, dense and BM25 R@1 and MRR@10 per set, from the same reports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = ("hybrid", "dense", "bm25")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for ax, metric in zip(axes, ("recall@1", "mrr@10")):
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            values = [r["modes"].get(mode, {}).get("metrics", {}).get(metric, 0.0) for r in reports]
            xs = [j + (i - 1) * width for j in range(len(reports))]
            bars = ax.bar(xs, values, width, label=mode)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.set_xticks(range(len(reports)), [f"{r['name']}\n({r.get('split', {}).get('name', 'all')})"
                                            for r in reports], fontsize=7)
        ax.set_ylim(0, 1.1)
        ax.set_title(metric, fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def replace_block(readme: str, block: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def readme_block(readme: str) -> str:
    return readme.split(START, 1)[1].split(END, 1)[0].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the README block and the chart")
    args = parser.parse_args(argv)
    reports = load()
    block = render(reports)
    print(block)
    if args.write:
        README.write_text(replace_block(README.read_text(encoding="utf-8"), block), encoding="utf-8")
        chart(reports, CHART)
        print(f"-> {README}, {CHART}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
