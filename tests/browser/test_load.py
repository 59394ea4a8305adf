"""A bounded load test against the real server (the full run: bench/load.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from load import run_load  # noqa: E402

pytestmark = pytest.mark.browser


def test_concurrent_clients_get_answers_without_errors(server):
    import urllib.request

    urllib.request.urlopen(server["url"], timeout=10)
    figures = run_load(server["url"], clients=8, total=120, server_pid=server["pid"])
    assert figures["errors"] == 0, figures["error_samples"]
    assert figures["p99_ms"] < 10_000
    assert figures["rss_mb_max"] - figures["rss_mb_start"] < 150  # no growth per request
