"""Signing in and roles against the real server with a users file, in Chromium and over HTTP."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import USERS, XSS, ask, shot, sign_in

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from load import call_event  # noqa: E402
from load import sign_in as sign_in_http  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture()
def context(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, locale="zh-CN")
    yield context
    context.close()


def _page(context):
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    return page


def test_wrong_password_is_refused(context, signed_server):
    page = _page(context)
    sign_in(page, signed_server["url"], "ed", "not-the-password")
    page.wait_for_selector("text=/凭据不正确|Incorrect Credentials/i", timeout=30000)
    assert page.locator("#qa-question").count() == 0


def test_a_reader_asks_but_sees_no_document_or_evaluation_controls(context, signed_server):
    page = _page(context)
    sign_in(page, signed_server["url"], "rita", USERS["rita"][1])
    page.wait_for_selector("#qa-question textarea", timeout=60000)
    page.wait_for_function("(document.querySelector('#qa-who')?.innerText || '').includes('rita')", timeout=30000)
    assert "reader" in page.locator("#qa-who").inner_text()
    ask(page, "江北区科技型企业总量有多少？")
    assert "1311家" in page.locator(".qa-card").first.inner_text()
    assert page.get_by_role("tab", name="评测 Evaluate").count() == 0
    page.get_by_role("tab", name="文档 Documents").click()
    page.wait_for_timeout(500)
    assert page.locator("#qa-doc-table").is_visible()
    assert page.locator("#qa-upload").count() == 0 or not page.locator("#qa-upload").is_visible()
    assert page.locator("#qa-delete").count() == 0 or not page.locator("#qa-delete").is_visible()
    shot(page, "ui-reader")


def _queue_call(url: str, headers: dict, fn_name: str, data: list) -> tuple[str, str]:
    """(ok or error, message) of an event called through the queue as the page calls it."""
    last = call_event(url, headers, fn_name, data, timeout=120)
    output = last.get("output") or {}
    return ("error" if not last.get("success") else "ok"), str(output.get("error") or output)


def test_a_reader_cannot_call_editor_events_through_the_api(signed_server):
    url = signed_server["url"]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url + "config", timeout=30)
    assert caught.value.code == 401  # nothing without signing in, also on 127.0.0.1
    reader = sign_in_http(url, "rita", USERS["rita"][1])
    before = sorted(p.name for p in signed_server["docs"].iterdir())
    kind, message = _queue_call(url, reader, "on_delete", [None, []])
    assert kind == "error" and "rita (reader) may not delete documents" in message
    kind, message = _queue_call(url, reader, "on_upload", [None, True, []])
    assert kind == "error" and "rita (reader) may not add or replace documents" in message
    kind, message = _queue_call(url, reader, "on_evaluate", [[]])
    assert kind == "error" and "may not run evaluations" in message
    kind, message = _queue_call(url, reader, "on_review_list", [])
    assert kind == "error" and "may not review feedback" in message
    assert sorted(p.name for p in signed_server["docs"].iterdir()) == before

    from gradio_client import Client

    client = Client(url, auth=("rita", USERS["rita"][1]), verbose=False, analytics_enabled=False)
    result = client.predict("江北区科技型企业总量有多少？", 3, "hybrid", api_name="/ask")
    assert "1311家" in result["hits"][0]["text"]
    with pytest.raises(Exception, match="k must be a whole number from 1 to 50"):
        client.predict("江北区", -1, "hybrid", api_name="/ask")


def test_an_editor_uploads_deletes_and_sees_the_audit_trail_then_signs_out(context, signed_server, tmp_path):
    page = _page(context)
    sign_in(page, signed_server["url"], "ed", USERS["ed"][1])
    page.wait_for_selector("#qa-question textarea", timeout=60000)
    page.get_by_role("tab", name="文档 Documents").click()
    doc = tmp_path / "充电补贴.txt"
    doc.write_text("关于新能源汽车充电设施建设补贴的通知\n\n对新建公共充电桩按每千瓦300元给予一次性建设补贴。\n",
                   encoding="utf-8")
    page.locator("#qa-upload input[type=file]").set_input_files(str(doc))
    page.wait_for_timeout(1000)
    page.click("#qa-add")
    page.wait_for_function("(document.querySelector('#qa-jobs')?.innerText || '').includes('已添加')", timeout=120000)
    page.get_by_role("tab", name="问答 Ask").click()
    ask(page, "公共充电桩每千瓦补贴多少钱？")
    assert "每千瓦300元" in page.locator(".qa-card").first.inner_text()
    page.get_by_role("tab", name="文档 Documents").click()
    page.locator("#qa-doomed input").click()
    page.get_by_role("option", name="充电补贴.txt").click()
    page.click("#qa-delete")
    page.wait_for_function("(document.querySelector('#qa-jobs')?.innerText || '').includes('已删除')", timeout=120000)
    assert not (signed_server["docs"] / "充电补贴.txt").exists()
    assert any(p.name.endswith("充电补贴.txt") for p in (signed_server["docs"] / ".history").iterdir())
    page.get_by_text("审计记录 Audit trail").click()
    trail = page.locator("#qa-audit").inner_text()
    assert "delete" in trail and "add" in trail and "ed" in trail
    shot(page, "ui-editor-documents")
    page.click("#qa-sign-out")
    page.wait_for_selector("input[type=password]", timeout=30000)
    page.goto(signed_server["url"])
    page.wait_for_selector("input[type=password]", timeout=30000)  # the session is gone


def _upload(page, path) -> str:
    page.locator("#qa-upload input[type=file]").set_input_files(str(path))
    page.wait_for_timeout(800)
    page.click("#qa-add")
    mine = f"[...document.querySelectorAll('#qa-jobs .qa-job')].find(e => e.innerText.includes('{path.name}'))"
    page.wait_for_function(f"{mine} && {mine}.dataset.state === 'failed'", timeout=60000)
    return page.locator("#qa-jobs .qa-job", has_text=path.name).first.inner_text()


def test_hostile_files_are_refused_within_their_limits_and_questions_go_on(context, signed_server, tmp_path):
    from tests.hostile import html_content_type_docx, many_pages_pdf, slow_pdf, zip_bomb_docx

    page = _page(context)
    sign_in(page, signed_server["url"], "ed", USERS["ed"][1])
    page.wait_for_selector("#qa-question textarea", timeout=60000)
    page.get_by_role("tab", name="文档 Documents").click()
    started = time.perf_counter()
    assert "unpacks to 300 MB" in _upload(page, zip_bomb_docx(tmp_path / "bomb.docx"))
    assert "5000 pages is over the 2000-page limit" in _upload(page, many_pages_pdf(tmp_path / "pages.pdf"))
    shown = _upload(page, slow_pdf(tmp_path / "slow.pdf"))
    assert "longer than 10 s" in shown
    assert time.perf_counter() - started < 60
    shown = _upload(page, html_content_type_docx(tmp_path / "payload.docx"))
    assert XSS in shown and str(signed_server["root"]) not in shown  # shown as text, no server path
    assert page.locator("#qa-jobs img").count() == 0 and page.dialogs == []
    shot(page, "ui-refused-upload")
    page.get_by_role("tab", name="问答 Ask").click()
    ask(page, "技术合同成交额")  # the server still answers
    assert page.locator(".qa-card").count() >= 1
    assert sorted(p.name for p in (signed_server["docs"] / ".uploads").iterdir()) == []


def test_votes_carry_the_user_and_an_editor_accepts_them(context, signed_server):
    from qa.feedback import Feedback

    store = Feedback(signed_server["root"] / "index" / "feedback.jsonl")
    page = _page(context)
    sign_in(page, signed_server["url"], "rita", USERS["rita"][1])
    page.wait_for_selector("#qa-question textarea", timeout=60000)
    ask(page, "培育技术经纪人多少人次？")
    page.locator("#qa-chat button[aria-label='赞'], #qa-chat button[aria-label='Like']").nth(1).click()
    page.wait_for_timeout(1500)
    vote = next(v for v in Feedback(store.path).votes() if v["user"] == "rita")
    assert vote["vote"] == "up" and vote["review"] is None
    page.close()

    editor = _page(context.browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1100}))
    sign_in(editor, signed_server["url"], "ed", USERS["ed"][1])
    editor.wait_for_selector("#qa-question textarea", timeout=60000)
    editor.get_by_role("tab", name="评测 Evaluate").click()
    editor.get_by_text("反馈审核 Review votes").click()
    # the accordion renders its table on opening: until then the element is absent, not empty
    editor.wait_for_function(f"(document.querySelector('#qa-votes')?.innerText || '').includes('{vote['id']}')",
                             timeout=30000)
    editor.locator("#qa-vote-ids textarea").fill(vote["id"])
    editor.click("#qa-accept")
    editor.wait_for_selector("text=1 条投票已标记为 accepted", timeout=30000)
    accepted = Feedback(store.path).accepted()
    assert [(v["id"], v["review"]["by"]) for v in accepted] == [(vote["id"], "ed")]
    editor.context.close()
