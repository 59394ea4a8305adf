"""Peak resident memory and speed of building an index of N clauses (issue #16, "Building at scale").

    .venv/bin/python bench/build_memory.py                      # 100,000 clauses, all embedded by the encoder
    .venv/bin/python bench/build_memory.py --clauses 100000 --reuse-vectors --encode 2000
    .venv/bin/python bench/build_memory.py --clauses 2000 --processes 1,2 --repeat 2 --out FILE

Collection: the benchmark pools (cmrc2018 + drcd_zhs passages, 34,311 clauses) and, past that,
variants of them (``bench/synth.py``: the first numbers changed, a marker appended), written as
a passages.jsonl and read back by ``qa.ingest.pool`` as ``qa index --corpus`` does.

Each build runs in a fresh child process that loads the clause encoder (``qa.encoders.DEFAULT``)
and calls ``Index.build``: chunking, embedding through an embedding cache, BM25 tokens, FAISS,
writing the folder. Peak memory is the child's ``ru_maxrss`` as the kernel reports it to the
parent (``os.wait4``), so nothing the child does escapes it; with ``QA_ENCODE_PROCESSES`` > 1
that is the largest single process, and ``pss_with_workers`` (sampled) adds up the child and
its encoding workers (whose CPU time ``others_cpu`` then counts as another program's).
``QA_DEVICE`` and ``QA_ENCODE_PROCESSES`` reach the child from the environment (``--processes``
sets the latter).

Vectors: by default the child's cache starts empty and the real encoder embeds every clause
(about 40 clauses/s on 2 cores: 100k clauses take ~45 minutes). With ``--reuse-vectors`` the
cache is filled beforehand, in another process, with vectors for all but ``--encode`` clauses:
the pool clauses' real vectors from the shared cache (``index/cache/embeddings.sqlite``, made
earlier by the same encoder; random unit vectors for any it lacks) and, for variant clauses,
their original's vector with noise (cosine ~0.9, ``synth.noisy``). The child still loads the
real encoder and embeds the ``--encode`` clauses (spread evenly over the collection) with it;
the result file counts the texts the encoder embedded in each measured run.

Prints a table; writes bench/results/build-memory.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import measure  # noqa: E402
import synth  # noqa: E402

RESULTS = ROOT / "bench/results"
#: What the issue asks of a 100k-clause build: peak resident memory under 2 GB (10^9 bytes).
TARGET_BYTES = 2 * 10**9


# --------------------------------------------------------------------------- collection


def write_collection(n: int, path: Path) -> dict[str, Any]:
    """Documents of at least ``n`` clauses (whole documents) as a passages.jsonl at ``path``."""
    from qa.config import IndexConfig

    config = IndexConfig()
    base = synth.source_documents("pool")
    _, starts = synth.cut(base, config)
    blocks = synth.plan(starts, n)
    with open(path, "w", encoding="utf-8") as handle:
        for v, n_docs in blocks:
            for doc in base[:n_docs]:
                var = synth.variant(doc, v)
                handle.write(json.dumps({"id": var.doc_id, "title": var.title, "text": var.text},
                                        ensure_ascii=False) + "\n")
    return {"documents": sum(d for _, d in blocks), "variant_blocks": len(blocks) - 1,
            "base_clauses": int(starts[-1])}


def embed_texts(documents: list, config) -> tuple[list[str], list[str], list[int]]:
    """What ``Index.build`` embeds, in its order: (texts, each text's document id, its position there).

    Mirrors ``qa.index._prepare`` (a document's card, then its clauses; contexts across them).
    Should the two drift apart, the texts missed here are embedded by the encoder in the measured
    run, and ``encoded_by_model`` in the result says so.
    """
    from qa import cards
    from qa.clauses import chunk
    from qa.index import contexts, embed_text

    clauses, doc_of, position = [], [], []
    for doc in documents:
        mine = ([cards.make_card(doc)] if cards.has_card(doc) else []) + chunk(doc, config.chunk)[0]
        clauses += mine
        doc_of += [doc.doc_id] * len(mine)
        position += range(len(mine))
    texts = [embed_text(c, config, x) for c, x in zip(clauses, contexts(documents, clauses, config))]
    return texts, doc_of, position


def live_rows(n_texts: int, encode: int) -> np.ndarray:
    """Rows left for the encoder: ``encode`` of ``n_texts``, evenly spread (all when encode >= n_texts)."""
    if encode >= n_texts:
        return np.arange(n_texts)
    return np.linspace(0, n_texts - 1, encode).round().astype(np.int64)


def prefill(passages: Path, cache_path: Path, encode: int) -> dict[str, Any]:
    """Fill a fresh embedding cache with vectors for all but ``encode`` texts (see the module docstring)."""
    from qa.config import IndexConfig
    from qa.encoders import DEFAULT, load_encoder
    from qa.encoders.cache import EmbeddingCache, encoder_key
    from qa.ingest.pool import load_pool

    config = IndexConfig()
    encoder = load_encoder(DEFAULT)
    space = f"{encoder_key(encoder)}|passage"
    texts, doc_of, position = embed_texts(load_pool(passages), config)
    live = set(live_rows(len(texts), encode).tolist())
    shared = EmbeddingCache(synth.SHARED_CACHE)
    found = shared.get_many(space, texts, encoder.dim)
    shared.close()
    base: dict[str, list[np.ndarray]] = {}
    for doc, vec in zip(doc_of, found):
        if "~v" not in doc:
            base.setdefault(doc, []).append(vec if vec is not None else synth.random_unit(1, encoder.dim, len(base))[0])
    vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    counts = {"shared_cache": 0, "random": 0, "noisy_copy": 0}
    for i, (doc, pos) in enumerate(zip(doc_of, position)):
        origin, _, v = doc.partition("~v")
        rows = base.get(origin)
        vectors[i] = rows[min(pos, len(rows) - 1)] if rows else synth.random_unit(1, encoder.dim, i)[0]
        counts["noisy_copy" if v else ("shared_cache" if found[i] is not None else "random")] += int(i not in live)
    for v in {d.partition("~v")[2] for d in doc_of} - {""}:
        rows = np.asarray([i for i, d in enumerate(doc_of) if d.endswith(f"~v{v}")])
        vectors[rows] = synth.noisy(vectors[rows], seed=int(v))
    keep = [i for i in range(len(texts)) if i not in live]
    cache = EmbeddingCache(cache_path)
    for start in range(0, len(keep), 5000):
        part = keep[start:start + 5000]
        cache.put_many(space, [texts[i] for i in part], vectors[part])
    cache.close()
    return {"texts": len(texts), "left_for_the_encoder": len(live), "reused": counts}


# --------------------------------------------------------------------------- the measured child


def build_worker(passages: Path, cache_path: Path, target: Path) -> dict[str, Any]:
    """In a fresh process: load the clause encoder, ``Index.build`` the passages; figures as a dict."""
    started = time.perf_counter()
    from qa.config import IndexConfig
    from qa.encoders import DEFAULT, load_encoder
    from qa.encoders.cache import EmbeddingCache
    from qa.index import Index
    from qa.ingest.pool import load_pool

    documents = load_pool(passages)
    rss_documents = measure.rss_mb()
    loading = time.perf_counter()
    encoder = load_encoder(DEFAULT)
    load_s = time.perf_counter() - loading
    rss_loaded = measure.rss_mb()
    embedded = {"texts": 0, "seconds": 0.0}
    raw = encoder.encode_passages

    def counted(texts: list[str]) -> np.ndarray:  # counts what the model itself embeds (cache misses)
        began = time.perf_counter()
        out = raw(texts)
        embedded["texts"] += len(texts)
        embedded["seconds"] += time.perf_counter() - began
        return out

    encoder.encode_passages = counted
    after_embedding: dict[str, float] = {}

    def progress(done: int, total: int) -> None:
        # called after every batch; the last call is the end of embedding (``done`` is not
        # relied on: with a callable, qa.index._embed passes a disabled tqdm bar's count, 0)
        after_embedding.update(rss_mb=measure.rss_mb(), peak_mb=measure.rss_mb("VmHWM"),
                               s=time.perf_counter() - building)

    cache = EmbeddingCache(cache_path)
    before = measure.contention()
    building = time.perf_counter()
    config = IndexConfig()
    # as qa index does (qa.corpus.build_index): the clause encoder is freed once the clauses are embedded
    index = Index.build(documents, encoder, target, config,
                        {"kind": "pool", "path": str(passages), "hash": "bench"}, cache=cache, progress=progress,
                        release_encoder=config.query_encoder not in ("", config.encoder))
    build_s = time.perf_counter() - building
    after = measure.contention()
    cache.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"clauses": len(index.clauses), "documents": len(documents), "dense_kind": index.dense.kind,
            "device": encoder.describe().get("device", "cpu"),
            "encode_processes": os.environ.get("QA_ENCODE_PROCESSES", "1"),
            "build_s": round(build_s, 1), "clauses_per_s": round(len(index.clauses) / build_s, 1),
            "encoded_by_model": embedded["texts"], "encode_s": round(embedded["seconds"], 1),
            "encoder_clauses_per_s": (round(embedded["texts"] / embedded["seconds"], 1)
                                      if embedded["seconds"] else None),
            "encoder_load_s": round(load_s, 1), "rss_documents_mb": round(rss_documents),
            "rss_encoder_loaded_mb": round(rss_loaded),
            "rss_after_embedding_mb": round(after_embedding.get("rss_mb", 0)),
            "peak_until_embedded_mb": round(after_embedding.get("peak_mb", 0)),
            "embedding_s": round(after_embedding.get("s", 0), 1),
            "rss_end_mb": round(measure.rss_mb()), "peak_self_reported_mb": round(measure.rss_mb("VmHWM")),
            "encoder_workers_peak_mb": round(children) if children else None,
            "process_s": round(time.perf_counter() - started, 1),
            "others_cpu": measure.others_cpu(before, after), "load1_before_after": [before["load1"], after["load1"]]}


def sample_memory(pid: int, stop: threading.Event, seen: dict[str, int]) -> None:
    """Until ``stop``: every 0.2 s, the child's resident memory split into anonymous memory and
    file-backed pages (chiefly the model's weights, read through a memory map), keeping the
    sample with the most resident memory; and the most proportional memory (Pss) of the child
    and its own children together (encoding workers share the model's pages). KiB."""
    while not stop.wait(0.2):
        try:
            fields = _rollup(pid)
            total = sum(_rollup(p).get("Pss", 0) for p in _descendants(pid)) + fields.get("Pss", 0)
        except (OSError, ValueError, IndexError):
            continue
        seen["pss_with_workers"] = max(seen.get("pss_with_workers", 0), total)
        if fields.get("Rss", 0) > seen.get("rss", 0):
            seen.update(rss=fields["Rss"], anonymous=fields.get("Anonymous", 0), file=fields.get("Pss_File", 0))


def _rollup(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {line.split(":")[0]: int(line.split()[1]) for line in lines}


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def measured_build(passages: Path, cache_path: Path, target: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``build_worker`` in a child process; its figures plus the kernel's peak RSS of the child."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(passages), str(cache_path), str(target)]
    seen: dict[str, int] = {}
    stop = threading.Event()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, stdout=out, cwd=ROOT, env={**os.environ, **env})
        sampler = threading.Thread(target=sample_memory, args=(child.pid, stop, seen), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        stop.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it
        out.seek(0)
        lines = out.read().decode("utf-8", "replace").strip().splitlines()
    if child.returncode != 0 or not lines:
        raise SystemExit(f"the build child failed (exit {child.returncode}); its output: {lines[-5:]}")
    figures = json.loads(lines[-1])
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    figures.update(peak_rss_mb=round(peak / 2**20), peak_rss_gb=round(peak / 1e9, 3),
                   under_2_gb=peak < TARGET_BYTES,
                   sampled_at_peak_mb={k: round(v / 1024) for k, v in seen.items()})
    return figures


# --------------------------------------------------------------------------- main


def run(sizes: list[int], reuse: bool, encode: int, processes: list[str], repeat: int,
        work: Path) -> list[dict[str, Any]]:
    """Every size x every ``QA_ENCODE_PROCESSES`` value, ``repeat`` times; one row of figures per build."""
    rows = []
    for n in sizes:
        passages = work / f"passages-{n}.jsonl"
        collection = write_collection(n, passages)
        for _ in range(repeat):
            for procs in processes:
                cache_path = work / f"cache-{n}-{procs}.sqlite"
                for stale in work.glob(cache_path.name + "*"):
                    stale.unlink()
                filled = (_child_prefill(passages, cache_path, encode) if reuse else
                          {"texts": None, "left_for_the_encoder": "all", "reused": {}})
                target = work / f"index-{n}-{procs}"
                shutil.rmtree(target, ignore_errors=True)
                figures = measured_build(passages, cache_path, target, {"QA_ENCODE_PROCESSES": procs})
                rows.append({"clauses_requested": n, "collection": collection, "vectors": filled, **figures})
                print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
                shutil.rmtree(target, ignore_errors=True)
                for stale in work.glob(cache_path.name + "*"):
                    stale.unlink()
    return rows


def _child_prefill(passages: Path, cache_path: Path, encode: int) -> dict[str, Any]:
    """``prefill`` in its own process (the parent stays free of torch)."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--prefill", str(passages), str(cache_path),
                           str(encode)], capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"filling the cache failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def code_version() -> dict[str, Any]:
    """The commit measured and the files changed since (the working tree is what ran)."""
    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], capture_output=True, text=True, cwd=ROOT, check=False)
        return done.stdout.rstrip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None,
            "changed": [line[3:] for line in git("status", "--porcelain", "--", "qa", "bench").splitlines()]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clauses", default="100000", help="collection sizes, comma-separated (default 100000)")
    parser.add_argument("--reuse-vectors", action="store_true",
                        help="fill the cache with reused vectors for all but --encode clauses")
    parser.add_argument("--encode", type=int, default=2000,
                        help="with --reuse-vectors: clauses the real encoder embeds in the measured run")
    parser.add_argument("--processes", default="1", help="QA_ENCODE_PROCESSES values to measure, e.g. 1,2")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting (alternating)")
    parser.add_argument("--out", type=Path, default=RESULTS / "build-memory.json")
    parser.add_argument("--label", default="", help="what code was measured (recorded in the result)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--prefill", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.worker:
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(build_worker(*map(Path, args.worker))))
        return 0
    if args.prefill:
        print(json.dumps(prefill(Path(args.prefill[0]), Path(args.prefill[1]), int(args.prefill[2]))))
        return 0
    sizes = [int(x) for x in args.clauses.split(",")]
    processes = [x.strip() for x in args.processes.split(",")]
    info = measure.machine()
    work = Path(tempfile.mkdtemp(prefix="build-memory-"))
    try:
        rows = run(sizes, args.reuse_vectors, args.encode, processes, args.repeat, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": " ".join([".venv/bin/python", "bench/build_memory.py", *(sys.argv[1:] if argv is None else argv)]),
        "label": args.label, "code": code_version(), "machine": info, "date": info["date"],
        "environment": {k: os.environ[k] for k in ("QA_DEVICE", "QA_ENCODE_PROCESSES") if k in os.environ},
        "vectors": ("real encoder for every clause" if not args.reuse_vectors else
                    f"real encoder for {args.encode} clauses per run (encoded_by_model); the rest reused from "
                    "the shared cache (real vectors of pool clauses, computed earlier by the same encoder) "
                    "or noisy copies of them (variant clauses)"),
        "peak": "ru_maxrss of the build child (os.wait4), MiB (2**20 B); under_2_gb compares with 2e9 B. "
                "sampled_at_peak_mb: the sample (every 0.2 s, /proc/PID/smaps_rollup) with the most resident "
                "memory, split into anonymous memory and file-backed pages (Pss_File: mostly the model file, "
                "which transformers maps rather than copies; clean pages the kernel can drop and read again); "
                "pss_with_workers: the most proportional memory of the child and its encoding workers together",
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print(measure.table(
        "Building an index: peak resident memory and speed",
        ["clauses", "processes", "by encoder", "peak MiB", "< 2 GB", "build s", "clauses/s", "encoder /s"],
        [[r["clauses"], r["encode_processes"], r["encoded_by_model"], r["peak_rss_mb"], r["under_2_gb"], r["build_s"],
          r["clauses_per_s"], r["encoder_clauses_per_s"]] for r in rows],
        [f"written to {args.out}"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
