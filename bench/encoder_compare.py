"""The tuned encoder (LoRA adapter merged in) against the untuned one, dev parts and test parts.

    .venv/bin/python bench/encoder_compare.py --base-index /work/base-idx --out-dir /tmp/encoders
    .venv/bin/python bench/encoder_compare.py ... --reuse        # read the reports the same commands already wrote

Both encoders are measured with the ranker off (``--rerank off``), so the comparison is of the
first stage alone: dense retrieval, and hybrid fusion with the dev-chosen weights. The base
indexes are those built with ``--encoder sentence-transformers:multilingual-e5-small`` (the
untuned model; questions through its ONNX graph), kept under ``--base-index`` as main/ and
bench-NAME/; the tuned ones are the defaults under index/. The dev parts decided whether the
adapter ships; the test parts are the figures. Writes bench/results/encoder-tuning.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from measure import figures, machine, qa_eval  # noqa: E402

SHARED = ROOT.parent / "shared/benchmarks"
SETS = {
    "labelled": (["--questions", "docs/eval/questions.jsonl", "--docs", "docs"], "main"),
    "reading": (["--questions", "docs/eval/reading.jsonl", "--docs", "docs"], "main"),
    "cmrc2018": (["--benchmark", str(SHARED / "cmrc2018")], "bench-cmrc2018"),
    "drcd_zhs": (["--benchmark", str(SHARED / "drcd_zhs")], "bench-drcd_zhs"),
}
METRICS = ("recall@1", "recall@5", "mrr@10", "answer@1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-index", type=Path, required=True, help="folder with the untuned main/, bench-NAME/")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the qa eval reports go")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/encoder-tuning.json")
    args = parser.parse_args(argv)
    indexes = {"base": args.base_index, "tuned": ROOT / "index"}
    result: dict = {"command": "python bench/encoder_compare.py " + " ".join(argv or sys.argv[1:]),
                    "machine": machine(), "rerank": "off", "sets": {}}
    for name, (source, folder) in SETS.items():
        for split in ("dev", "test"):
            row: dict = {}
            for encoder, root in indexes.items():
                out = args.out_dir / f"{name}-{split}-{encoder}"
                cmd = [*source, "--index", str(root / folder), "--modes", "hybrid,dense", "--split", split,
                       "--rerank", "off"]
                report = qa_eval(cmd, out, args.reuse)
                row[encoder] = {mode: figures(e, METRICS) for mode, e in report["modes"].items()}
                english = [q for q in report.get("per_question", {}).get("hybrid", []) if q.get("lang") == "en"]
                if english:  # our sets: the English questions alone (hybrid R@1)
                    row[encoder]["english_hybrid_recall@1"] = round(
                        sum(q["rank"] == 1 for q in english) / len(english), 4)
                    row["english_questions"] = len(english)
                row["questions"] = report["questions"]
                row.setdefault("commands", []).append(" ".join(["qa", "eval", *cmd, "--out", str(out)]))
            row["change"] = {mode: {m: round(row["tuned"][mode][m] - row["base"][mode][m], 4) for m in row["base"][mode]}
                             for mode in ("hybrid", "dense")}
            result["sets"].setdefault(name, {})[split] = row
            print(f"{name:9s} {split:4s} " + "  ".join(
                f"{mode} R@1 {row['base'][mode]['recall@1']:.3f}->{row['tuned'][mode]['recall@1']:.3f} "
                f"MRR {row['base'][mode]['mrr@10']:.3f}->{row['tuned'][mode]['mrr@10']:.3f}" for mode in ("hybrid", "dense")),
                flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
