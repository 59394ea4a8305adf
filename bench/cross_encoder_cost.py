"""What a cross-encoder second stage would cost per question on this machine, before training one.

    .venv/bin/python bench/cross_encoder_cost.py [--questions 40]

A cross-encoder made from the bundled multilingual-e5-small reads each (question, clause) pair
through the whole transformer; a one-layer head on top costs nothing beside it. So the bundled
encoder's own forward pass over the pairs' texts (ONNX Runtime, as the query encoder runs) is a
lower bound of that stage's time. The pairs are real: the labelled questions over docs/, each
with its hybrid top-N clauses from the index, "question + clause" cut to 96 tokens (the length
issue #15 proposes). Writes bench/results/cross-encoder-cost.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import latencies, machine, percentiles_ms  # noqa: E402

MAX_TOKENS = 96


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--depths", default="5,10,30")
    args = parser.parse_args()
    from qa.pipeline import Corpus, Pipeline

    pipe = Pipeline.open(ROOT / "index/main", Corpus(ROOT / "docs", "folder"))
    encoder = pipe.encoder
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(encoder.folder / "tokenizer.json"))
    questions = [json.loads(line)["question"] for line in
                 (ROOT / "docs/eval/questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = questions[:args.questions]
    depths = [int(d) for d in args.depths.split(",")]
    pairs = {}
    for q in questions:
        hits = pipe.ask(q, k=max(depths)).hits
        texts = []
        for h in hits:
            ids = tokenizer.encode(f"{q} {h.clause.text}").ids[:MAX_TOKENS]
            texts.append(tokenizer.decode(ids))
        pairs[q] = texts
    result = {"command": "python bench/cross_encoder_cost.py " + " ".join(sys.argv[1:]), "machine": machine(),
              "encoder": type(encoder).__name__, "questions": len(questions), "max_tokens": MAX_TOKENS, "depths": {}}
    for depth in depths:
        seconds = latencies(lambda q: encoder.encode_passages(pairs[q][:depth]), questions, warmup=questions[:5])
        result["depths"][depth] = percentiles_ms(seconds)
        print(depth, json.dumps(result["depths"][depth]), flush=True)
    started = time.perf_counter()
    for q in questions:
        pipe.ask(q, k=10)
    result["search_mean_ms_today"] = round((time.perf_counter() - started) / len(questions) * 1000, 1)
    pipe.close()
    out = ROOT / "bench/results/cross-encoder-cost.json"
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
