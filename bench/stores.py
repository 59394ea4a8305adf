"""The same evaluation through both stores and through a query server that has only Milvus.

    .venv/bin/python bench/stores.py [--questions docs/eval/questions.jsonl] [--split test]

Starts ``milvus_lite.server`` on 127.0.0.1 (the real Milvus core, served as a standalone server
would be), then runs ``qa eval`` three times on the labelled questions of ``docs/``: on a local
index, on a Milvus-backed index folder (the building machine), and in another process, in an
empty folder, with only ``--milvus-uri`` and ``--collection`` (a query server; ``--docs`` is
given to it only to find the gold quotes in). Writes bench/results/stores.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from measure import machine  # noqa: E402
from milvus_server import serve  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def evaluate(args: list[str], cwd: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "qa.cli", "eval", *args, "--out", str(out)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {"metrics": {m: report["modes"][m]["metrics"] for m in report["modes"]},
            "ms_per_question": {m: report["modes"][m]["ms_per_question"] for m in report["modes"]},
            "split": report["split"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=ROOT / "docs" / "eval" / "questions.jsonl")
    parser.add_argument("--split", default="test", choices=["test", "dev", "all"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qa-stores-"))
    server, uri = serve(work)
    docs = work / "docs"
    shutil.copytree(ROOT / "docs", docs, ignore=shutil.ignore_patterns("eval"))
    common = ["--docs", str(docs), "--questions", str(args.questions.resolve()), "--split", args.split]
    results = {"command": "python bench/stores.py " + " ".join(sys.argv[1:]), "machine": machine(),
               "milvus": "milvus-lite 2.5.1 served by milvus_lite.server on 127.0.0.1", "stores": {}}
    try:
        local, remote = work / "local" / "main", work / "milvus" / "main"
        results["stores"]["local"] = evaluate([*common, "--index", str(local)], ROOT, work / "r-local")
        built = subprocess.run([sys.executable, "-m", "qa.cli", "index", "--docs", str(docs), "--index", str(remote),
                                "--backend", "milvus", "--milvus-uri", uri, "--collection", "stores"], cwd=ROOT,
                               env=ENV, capture_output=True, text=True, timeout=3600)
        if built.returncode:
            raise RuntimeError(built.stderr[-3000:])
        results["stores"]["milvus (builder's folder)"] = evaluate([*common, "--index", str(remote)], ROOT,
                                                                  work / "r-milvus")
        empty = work / "query-server"
        empty.mkdir()
        results["stores"]["milvus (query server: URI and collection only)"] = evaluate(
            [*common, "--milvus-uri", uri, "--collection", "stores"], empty, work / "r-reader")
    finally:
        os.killpg(server.pid, 15)
        server.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    reference = results["stores"]["local"]["metrics"]
    results["largest_difference"] = max(abs(s["metrics"][m][k] - reference[m][k]) for s in results["stores"].values()
                                        for m in reference for k in reference[m])
    out = ROOT / "bench" / "results" / "stores.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    for name, store in results["stores"].items():
        h = store["metrics"]["hybrid"]
        print(f"{name:50s} hybrid R@1 {h['recall@1']:.3f} R@5 {h['recall@5']:.3f} MRR@10 {h['mrr@10']:.3f}")
    print(f"largest difference from local: {results['largest_difference']:.4f} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
