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


def test_signed_in_clients_are_answered_while_an_upload_indexes(signed_server, tmp_path):
    from load import big_document, sign_in, upload

    from .conftest import USERS

    url = signed_server["url"]
    readers = [sign_in(url, "rita", USERS["rita"][1]) for _ in range(4)]
    document = big_document(tmp_path / "load-test.txt", 0.2)
    upload(url, sign_in(url, "ed", USERS["ed"][1]), document)  # queued: returns before indexing ends
    figures = run_load(url, clients=4, total=60, server_pid=signed_server["pid"], headers=readers)
    assert figures["errors"] == 0, figures["error_samples"]
    import json
    import time

    manifest = signed_server["root"] / "index" / "main" / "manifest.json"
    deadline = time.time() + 600  # then the upload's job has finished: later tests do not queue behind it
    while "load-test.txt" not in json.loads(manifest.read_text(encoding="utf-8"))["corpus"]["sources"]:
        assert time.time() < deadline, "the uploaded document was not indexed in 10 minutes"
        time.sleep(1)
