"""Milvus Lite's own server (``milvus_lite.server``) on a free port of 127.0.0.1: the real Milvus
core, reached over the network as a standalone server would be, that several processes may use
at once (a Lite file belongs to one process). Used by the benchmarks and the tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def serve(folder: Path) -> tuple[subprocess.Popen, str]:
    """milvus_lite.server on a free port of 127.0.0.1, in its own process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, warnings; warnings.simplefilter('ignore');"
        "from milvus_lite.server import Server;"
        f"s = Server({str(folder / 'served.db')!r}, address='127.0.0.1:{port}');"
        "s.init() and s.start() or sys.exit(3);"
        "time.sleep(86400)")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(150):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.2)
    raise RuntimeError("milvus_lite.server did not start")
