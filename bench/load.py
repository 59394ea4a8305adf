"""Load test: many concurrent clients asking through the real server's queue (HTTP on 127.0.0.1).

    .venv/bin/python bench/load.py                       # starts a server on a copy of docs/, 20 clients, 1000 questions
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860/ --clients 20 --questions 1000
    .venv/bin/python bench/load.py --sign-in --upload-mb 20 --questions 20000 --out bench/results/load-shared.json
                                  # 20 signed-in readers while an editor's 20 MB upload is indexed

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
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["江北区科技型企业总量有多少？", "重庆建成了多少家制造业创新中心？", "技术合同成交额突破了多少？",
             "How many technology brokers have been trained?", "下一步在技术转移人才队伍建设上有什么打算？",
             "“促进科技成果转化24条”主要从哪几个方面着力？", "沪渝科技合作坚持什么原则？", "共享大型科研仪器设备多少台套？"]


def ask(url: str, question: str, k: int = 5, timeout: float = 120, headers: dict | None = None) -> dict:
    body = json.dumps({"data": [question, k, "hybrid", None]}).encode()
    req = urllib.request.Request(url + "gradio_api/call/ask", data=body,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    event = json.loads(urllib.request.urlopen(req, timeout=timeout).read())["event_id"]
    stream = urllib.request.urlopen(urllib.request.Request(f"{url}gradio_api/call/ask/{event}", headers=headers or {}),
                                    timeout=timeout).read().decode()
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


def sign_in(url: str, name: str, password: str) -> dict:
    """POST /login as a browser does; returns the session cookie as a header."""
    body = urllib.parse.urlencode({"username": name, "password": password}).encode()
    response = urllib.request.urlopen(urllib.request.Request(url + "login", data=body), timeout=60)
    return {"Cookie": "; ".join(c.split(";", 1)[0] for c in response.headers.get_all("set-cookie"))}


def call_event(url: str, headers: dict, fn_name: str, data: list, timeout: float = 300) -> dict:
    """Run a page event by its function's name through /gradio_api/queue/join, as the page does;
    returns Gradio's last message (``success``, ``output``)."""
    import uuid

    config = json.loads(urllib.request.urlopen(urllib.request.Request(url + "config", headers=headers),
                                               timeout=60).read())
    fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == fn_name)
    session = uuid.uuid4().hex
    request = urllib.request.Request(url + "gradio_api/queue/join", data=json.dumps(
        {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}).encode(),
        headers={**headers, "Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=60)
    stream = urllib.request.urlopen(urllib.request.Request(f"{url}gradio_api/queue/data?session_hash={session}",
                                                           headers=headers), timeout=timeout)
    last: dict = {}
    for raw in stream:
        line = raw.decode("utf-8").strip()
        if line.startswith("data:"):
            last = json.loads(line[5:])
            if last.get("msg") == "process_completed":
                break
    return last


def upload(url: str, headers: dict, path: Path) -> None:
    """Upload ``path`` through the Documents tab's event, as the page does: the file to
    /gradio_api/upload, then the "Add to index" event through the queue."""
    import uuid

    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "gradio_api/upload", data=body, headers={
        **headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    server_path = json.loads(urllib.request.urlopen(request, timeout=300).read())[0]
    data = [{"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}, False, []]
    message = call_event(url, headers, "on_upload", data)
    if not message.get("success"):
        raise RuntimeError(f"upload refused: {message}")


def big_document(path: Path, megabytes: float) -> Path:
    """A policy-like text of ``megabytes`` MB whose clauses all differ (none is in the embedding cache)."""
    lines = [line.strip() for p in sorted((ROOT / "docs").glob("*.txt"))
             for line in p.read_text(encoding="utf-8").splitlines() if len(line.strip()) > 20]
    out, size, n = ["关于印发大规模测试文件的通知"], 0, 0
    while True:  # up to the size, never over it (the upload limit is 20 MB exactly)
        line = f"第{n + 1}条 （第{n // 50 + 1}批）{lines[n % len(lines)]}编号{n * 7919 % 100003}。"
        size += len(line.encode("utf-8")) + 1
        if size > megabytes * 2**20 - 4096:
            break
        out.append(line)
        n += 1
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def run_load(url: str, clients: int, total: int, server_pid: int | None = None,
             headers: list[dict] | None = None) -> dict:
    """Send ``total`` questions from ``clients`` threads (client i with ``headers[i]``); return figures."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    memory: list[float] = []
    done = threading.Event()

    def client(number: int) -> None:
        own = headers[number % len(headers)] if headers else None
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            try:
                result = ask(url, QUESTIONS[n % len(QUESTIONS)], headers=own)
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
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
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


def start_server(root: Path, users: Path | None = None) -> tuple[subprocess.Popen, str]:
    docs = root / "docs"
    shutil.copytree(ROOT / "docs", docs, dirs_exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index",
                             str(root / "index" / "main"), "--port", str(port),
                             *(["--users", str(users)] if users else ["--no-auth"])], cwd=ROOT,
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
    parser.add_argument("--sign-in", action="store_true", help="start the server with a users file; each client "
                                                                "signs in as its own reader")
    parser.add_argument("--upload-mb", type=float, default=0, help="an editor uploads a generated document of this "
                                                                   "size when the load starts (needs --sign-in)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args()
    proc = None
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        headers = None
        if args.url:
            url, pid = args.url.rstrip("/") + "/", args.pid
        else:
            users_file = None
            if args.sign_in:
                sys.path.insert(0, str(ROOT))
                from qa.users import Users

                users_file = Path(tmp) / "users.json"
                users = Users(users_file)
                users.add("editor", "editor", "editor-password")
                for i in range(args.clients):
                    users.add(f"reader{i}", "reader", f"reader-password-{i}")
            proc, url = start_server(Path(tmp), users_file)
            pid = proc.pid
            if args.sign_in:
                headers = [sign_in(url, f"reader{i}", f"reader-password-{i}") for i in range(args.clients)]
        try:
            ask(url, QUESTIONS[0], headers=headers[0] if headers else None)  # warm-up
            if args.upload_mb:
                document = big_document(Path(tmp) / "大规模测试文件.txt", args.upload_mb)
                started = time.perf_counter()
                upload(url, sign_in(url, "editor", "editor-password"), document)
                figures["upload"] = {"megabytes": round(document.stat().st_size / 2**20, 1),
                                     "request_s": round(time.perf_counter() - started, 2)}
                manifest = Path(tmp) / "index" / "main" / "manifest.json"
            figures.update(run_load(url, args.clients, args.questions, pid, headers))
            if args.upload_mb:
                indexed = document.name in json.loads(manifest.read_text(encoding="utf-8"))["corpus"]["sources"]
                figures["upload"]["indexed_before_the_load_ended"] = indexed
        finally:
            if proc:
                proc.terminate()
                proc.wait(10)
    import platform

    figures["signed_in"] = bool(args.sign_in or headers)
    figures["command"] = "python bench/load.py " + " ".join(sys.argv[1:])
    figures["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    figures["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    for key, value in figures.items():
        print(f"{key:18s} {value}")
    return 0 if figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
