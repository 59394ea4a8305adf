"""Long documents with document-level gold: drcd_zhs's paragraphs merged back into their articles.

    .venv/bin/python bench/long_documents.py        # builds the pool, runs qa eval twice -> bench/results/long-documents.json

Why: sets of real questions whose gold is a whole long document (issue #14 measured one where
character-bigram BM25 over whole documents beat the clause ranking) cannot be had here, and the
public pools hold one short paragraph per passage, which is all the learned ranker was trained
on. DRCD's 2,000 paragraphs come from 506 Wikipedia articles; joined back in their order (a blank
line between paragraphs) they make 506 documents of up to about 20,000 characters, and each
question's gold becomes its article. The pool is written to ``bench/.cache/drcd_docs/`` in the
benchmarks' layout; every question keeps the part (dev or test) of its gold paragraph in drcd_zhs
(a ``"part"`` field), so the ranker's dev questions stay dev here and ``--split test`` scores the
others.

Then ``qa eval --split test --passages`` with the shipped ranker (the report goes to
``bench/results/accuracy/drcd_docs-test/``, so the README's accuracy block lists it with the
whole-document baselines) and again with ``--rerank off``; both are summed up in
``bench/results/long-documents.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import figures, machine, qa_eval  # noqa: E402

from qa import jsonl  # noqa: E402
from qa.evaluate.splits import split_of  # noqa: E402

METRICS = ("recall@1", "recall@5", "mrr@10", "answer@1")


def build(source: Path, target: Path) -> dict[str, int]:
    """Write ``target``/passages.jsonl (one document per article) and questions.jsonl."""
    articles: dict[str, dict] = {}
    article_of: dict[str, str] = {}
    for passage in jsonl.read(source / "passages.jsonl"):
        doc_id = "article-" + hashlib.sha256(passage["title"].encode("utf-8")).hexdigest()[:12]
        articles.setdefault(doc_id, {"id": doc_id, "title": passage["title"], "parts": []})["parts"].append(
            passage["text"])
        article_of[str(passage["id"])] = doc_id
    texts = {doc_id: "\n\n".join(a["parts"]) for doc_id, a in articles.items()}
    target.mkdir(parents=True, exist_ok=True)
    jsonl.write(target / "passages.jsonl",
                ({"id": doc_id, "title": a["title"], "text": texts[doc_id]} for doc_id, a in articles.items()))
    questions = jsonl.read(source / "questions.jsonl")
    jsonl.write(target / "questions.jsonl",
                ({**q, "gold_ids": sorted({article_of[str(g)] for g in q["gold_ids"]}),
                  "part": split_of(str(q["gold_ids"][0]))} for q in questions))
    lengths = sorted(len(text) for text in texts.values())
    return {"documents": len(articles), "questions": len(questions), "median_chars": lengths[len(lengths) // 2],
            "max_chars": lengths[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--pool", type=Path, default=ROOT / "bench/.cache/drcd_docs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/long-documents.json")
    args = parser.parse_args()
    pool = build(args.shared / "benchmarks/drcd_zhs", args.pool)
    where = args.pool.relative_to(ROOT) if args.pool.is_relative_to(ROOT) else args.pool
    common = ["--benchmark", str(where), "--split", "test"]
    learned = qa_eval([*common, "--passages"], ROOT / "bench/results/accuracy/drcd_docs-test")
    off = qa_eval([*common, "--modes", "hybrid", "--rerank", "off"], args.pool / "eval-off")
    level = learned["passage_level"]
    result = {"command": "python bench/long_documents.py " + " ".join(sys.argv[1:]), "machine": machine(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "pool": pool, "test_questions": learned["questions"],
              "hybrid": {"learned": figures(learned["modes"]["hybrid"], METRICS),
                         "off": figures(off["modes"]["hybrid"], METRICS)},
              "passage_level": level,
              "reports": ["bench/results/accuracy/drcd_docs-test/report.json", learned["command"], off["command"]]}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(result, indent=1, ensure_ascii=False)[:3000])
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
