#!/bin/bash
# Which BM25 a Milvus store should use, measured: Milvus's own BM25 function over its `chinese`
# analyzer ("builtin", the option of commit c6b5771, removed after this measurement) against our
# BM25 as sparse vectors ("ours"), on the test parts of our labelled set and of cmrc2018.
#     bash bench/bm25_choice.sh        -> bench/results/milvus-bm25.json
set -euo pipefail
M=$(cd "$(dirname "$0")/.." && pwd)
B=$M/../shared/benchmarks/cmrc2018
W=$(mktemp -d)
git -C "$M" worktree add -f -q "$W/old" c6b5771
trap 'git -C "$M" worktree remove --force "$W/old"; rm -rf "$W" "$M"/index/bm25-*' EXIT
for v in builtin ours; do
  if [ $v = builtin ]; then cd "$W/old"; X="--milvus-bm25 builtin"; else cd "$M"; X=""; fi
  Q="env HF_HUB_OFFLINE=1 $M/.venv/bin/python -m qa.cli"
  $Q index --docs "$M/docs" --index "$M/index/bm25-$v-labelled/main" --backend milvus --milvus-uri "$W/$v-l.db" --collection l_$v $X --force
  $Q eval --index "$M/index/bm25-$v-labelled/main" --docs "$M/docs" --questions "$M/docs/eval/questions.jsonl" --split test --modes bm25,hybrid --out "$W/r-$v-labelled"
  # the cmrc2018 index sits beside index/bench-cmrc2018, so it shares its embedding cache
  $Q index --corpus "$B/passages.jsonl" --index "$M/index/bm25-$v-cmrc2018" --backend milvus --milvus-uri "$W/$v-c.db" --collection c_$v $X --force
  $Q eval --benchmark "$B" --index "$M/index/bm25-$v-cmrc2018" --split test --modes bm25,hybrid --out "$W/r-$v-cmrc2018"
done
cd "$M"
.venv/bin/python - "$W" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "bench")
from measure import machine
work = Path(sys.argv[1])
out = {"command": "bash bench/bm25_choice.sh", "machine": machine(),
       "note": "builtin = Milvus's BM25 function with its chinese analyzer (milvus-lite 2.5.1, qa at commit c6b5771); "
               "ours = our jieba words + bigrams, BM25 weights as sparse vectors (this version)",
       "results": {}}
for v in ("builtin", "ours"):
    for s in ("labelled", "cmrc2018"):
        r = json.loads((work / f"r-{v}-{s}" / "report.json").read_text())
        out["results"][f"{v}/{s}"] = {"split": r["split"], "metrics": {m: r["modes"][m]["metrics"] for m in r["modes"]}}
Path("bench/results/milvus-bm25.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
for k, v in out["results"].items():
    print(k, {m: round(x["mrr@10"], 3) for m, x in v["metrics"].items()})
PY
