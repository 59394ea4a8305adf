"""Read an untrusted file in a child process with limits on time and memory.

An uploaded PDF or DOCX is parsed by libraries that can be made to loop for hours or unpack
gigabytes. Parsing it in a child (``python -m qa.ingest.sandbox``) that limits its own address
space, and is killed at a wall-clock deadline, keeps the server's memory and threads safe; the
refusal names the limit. The structural limits (pages, unpacked size) are in ``read``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .read import UnreadableFile

#: wall-clock seconds and megabytes of address space a file may take to be read
PARSE_SECONDS = float(os.environ.get("QA_PARSE_SECONDS", "60"))
PARSE_MEMORY_MB = int(os.environ.get("QA_PARSE_MEMORY_MB", "1536"))


def check_readable(path: Path, seconds: float = PARSE_SECONDS, memory_mb: int = PARSE_MEMORY_MB) -> int:
    """Read ``path`` as indexing would, in a child process; returns the number of characters.

    Raises:
        UnreadableFile: unreadable, over a limit, or the reading ran out of time or memory.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "qa.ingest.sandbox", str(path), str(memory_mb)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=seconds, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise UnreadableFile(f"{path.name}: reading it took longer than {seconds:.0f} s; refused") from exc
    try:
        outcome = json.loads(done.stdout.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise UnreadableFile(f"{path.name}: the reader stopped (exit code {done.returncode}); "
                             f"the file may need more than {memory_mb} MB of memory") from exc
    if "error" in outcome:
        raise UnreadableFile(outcome["error"])
    return int(outcome["chars"])


def _child(path: Path, memory_mb: int) -> dict:
    import resource

    from .read import read_file

    for module in ("pypdf", "docx", "trafilatura", "charset_normalizer"):
        __import__(module)  # imported before the limit: only parsing is bounded
    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        return {"chars": len(read_file(path))}
    except UnreadableFile as exc:
        # never show the server's folders: the message names the file only
        return {"error": str(exc).replace(str(path.parent) + os.sep, "")}
    except MemoryError:
        return {"error": f"{path.name}: reading it needs more than {memory_mb} MB of memory; refused"}


if __name__ == "__main__":
    print(json.dumps(_child(Path(sys.argv[1]), int(sys.argv[2])), ensure_ascii=False))
