"""Load test: many concurrent clients asking through the real server's queue (HTTP on 127.0.0.1).

    .venv/bin/python bench/load.py                       # starts a server on a copy of docs/, 20 clients, 1000 questions
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860/ --clients 20 --questions 1000

Each request goes the way any HTTP client's does: POST /gradio_api/call/ask, then read the
event stream for the result. Prints latency percentiles, throughput, errors and the server's
resident memory over the run; writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["江北区科技型企业总量有多少？", "重庆建成了多少家制造业创新中心？", "技术合同成交额突破了多少？",
             "How many technology brokers have been trained?", "下一步在技术转移人才队伍建设上有什么打算？",
             "“促进科技成果转化24条”主要从哪几个方面着力？", "沪渝科技合作坚持什么原则？", "共享大型科研仪器设备多少台套？"]


def ask(url: str, question: str, k: int = 5, timeout: float = 120) -> dict:
    body = json.dumps({"data": [question, k, "hybrid"]}).encode()
    req = urllib.request.Request(url + "gradio_api/call/ask", data=body, headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=timeout).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/ask/{event}", timeout=timeout).read().decode()
    kinds = [line[6:].strip() for line in stream.splitlines() if line.startswith("event:")]
    data = [line[5:] for line in stream.splitlines() if line.startswith("data:")]
    if "complete" not in kinds:
        raise RuntimeError(f"no result: {stream[:200]}")
    return json.loads(data[-1])[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_load(url: str, clients: int, total: int, server_pid: int | None = None) -> dict:
    """Send ``total`` questions from ``clients`` threads; return figures."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    memory: list[float] = []
    done = threading.Event()

    def client() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            try:
                result = ask(url, QUESTIONS[n % len(QUESTIONS)])
                if not result.get("hits"):
                    raise RuntimeError(f"no hits: {result}")
            except Exception as exc:  # counted, not raised: the run reports every failure
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    def sample() -> None:
        while not done.is_set() and server_pid:
            memory.append(rss_mb(server_pid))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    done.set()
    latencies.sort()

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else float("nan")

    return {"clients": clients, "questions": total, "errors": len(errors), "error_samples": errors[:5],
            "seconds": round(elapsed, 2), "throughput_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(50), 1), "p95_ms": round(pct(95), 1), "p99_ms": round(pct(99), 1),
            "mean_ms": round(1000 * statistics.mean(latencies), 1) if latencies else None,
            "rss_mb_start": round(memory[0], 1) if memory else None,
            "rss_mb_end": round(memory[-1], 1) if memory else None,
            "rss_mb_max": round(max(memory), 1) if memory else None}


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    docs = root / "docs"
    shutil.copytree(ROOT / "docs", docs, dirs_exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index",
                             str(root / "index" / "main"), "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(360):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: start one on a copy of docs/)")
    parser.add_argument("--pid", type=int, help="the running server's process id, for memory figures")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args()
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            url, pid = args.url.rstrip("/") + "/", args.pid
        else:
            proc, url = start_server(Path(tmp))
            pid = proc.pid
        try:
            ask(url, QUESTIONS[0])  # warm-up
            figures = run_load(url, args.clients, args.questions, pid)
        finally:
            if proc:
                proc.terminate()
                proc.wait(10)
    figures["machine"] = f"{os.cpu_count()} cores"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1))
    for key, value in figures.items():
        print(f"{key:18s} {value}")
    return 0 if figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
