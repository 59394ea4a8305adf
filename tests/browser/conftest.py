"""The real server in a subprocess and Debian Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]

XSS = "<img src=x onerror=alert(1)>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(root: Path, extra: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`qa serve` on a copy of docs/ plus a document carrying an HTML payload, in ``root``."""
    docs = root / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "xss-test.txt").write_text(f"安全测试文件\n\n本文件包含一段网页代码{XSS}，应当原样显示为文字。\n", encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--docs", str(docs), "--index",
                             str(root / "index" / "main"), "--port", str(port), *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(root / 'server.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start in 180 s")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server without sign-in (loopback, --no-auth): everyone is an editor."""
    root = tmp_path_factory.mktemp("served")
    proc, url = _start(root, ["--no-auth"])
    yield {"url": url, "docs": root / "docs", "root": root, "port": int(url.rsplit(":", 1)[1].strip("/")),
           "pid": proc.pid}
    _stop(proc)


USERS = {"ed": ("editor", "editor-pass-1"), "rita": ("reader", "reader-pass-1")}


@pytest.fixture(scope="session")
def signed_server(tmp_path_factory):
    """A server with users (an editor, a reader) and a 10 s limit on reading a file."""
    from qa.users import Users

    root = tmp_path_factory.mktemp("signed")
    users = Users(root / "users.json")
    for name, (role, password) in USERS.items():
        users.add(name, role, password)
    proc, url = _start(root, ["--users", str(root / "users.json")], {"QA_PARSE_SECONDS": "10"})
    yield {"url": url, "docs": root / "docs", "root": root, "pid": proc.pid}
    _stop(proc)


def sign_in(page, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.wait_for_selector("input[type=password]", timeout=60000)
    page.locator("input[type=text]").first.fill(name)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="登录").click()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/browser-deps.sh` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, locale="zh-CN")
    page = context.new_page()
    page.dialogs = []  # any alert() the page tries to show
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.external = []
    page.on("request", lambda r: page.external.append(r.url) if not r.url.startswith(server["url"][:-1]) and
            not r.url.startswith("data:") and not r.url.startswith("blob:") else None)
    page.goto(server["url"])
    page.wait_for_selector("#qa-question textarea", timeout=60000)
    yield page
    context.close()


def ask(page, question: str) -> None:
    before = page.locator(".qa-summary").count()
    page.fill("#qa-question textarea", question)
    page.click("#qa-send")
    page.wait_for_function(f"document.querySelectorAll('.qa-summary').length > {before}", timeout=60000)
    page.wait_for_timeout(300)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
