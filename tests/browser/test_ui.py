"""End to end: the real server, Debian Chromium, real model and index."""

from __future__ import annotations

import pytest

from .conftest import XSS, ask, shot

pytestmark = pytest.mark.browser


def test_question_shows_the_card_with_its_citation(page):
    ask(page, "重庆建成了多少家制造业创新中心？")
    first = page.locator(".qa-card").first
    text = first.inner_text()
    assert "11家市级" in text
    assert "重庆市科学技术局 关于市六届人大二次会议第0219号建议办理情况的答复函" in text
    assert "市科技局" in text and "2024-09-14" in text and "第3句" in text
    assert first.locator("mark").count() >= 2  # the question's words are highlighted
    citation = page.locator("pre code").first.inner_text()
    assert citation.startswith("《重庆市科学技术局") and "第3句" in citation
    first.locator("summary").click()  # the neighbouring clauses
    assert "印发《市级产业创新中心建设工作指引》" in first.locator(".qa-ctx").inner_text()
    shot(page, "ui-chat")
    assert page.external == []  # nothing fetched from the internet


def test_follow_up_question_uses_the_previous_one(page):
    ask(page, "江北区科技型企业总量有多少？")
    ask(page, "那今年一季度新增了多少家呢？")
    summaries = page.locator(".qa-summary")
    assert "追问" in summaries.nth(1).inner_text()
    assert "51家" in page.locator(".qa-card").nth(5).inner_text() or \
        any("51家" in page.locator(".qa-card").nth(i).inner_text() for i in range(5, 8))


def test_controls_change_the_number_of_passages_and_the_mode(page):
    page.locator("#qa-k input[type=number]").fill("3")
    page.locator("#qa-k input[type=number]").press("Enter")
    page.get_by_label("关键词 BM25").check()
    ask(page, "技术合同成交额")
    assert page.locator(".qa-card").count() == 3
    assert "关键词 BM25" in page.locator(".qa-summary").first.inner_text()


def test_html_in_a_document_and_in_a_question_is_shown_as_text(page):
    ask(page, f"网页代码 {XSS} 安全测试")
    page.wait_for_timeout(500)
    cards = page.locator(".qa-card")
    assert any(XSS in cards.nth(i).inner_text() for i in range(cards.count()))
    assert XSS in page.locator("#qa-chat").inner_text()  # the question, shown literally
    assert page.locator("#qa-chat img[src=x]").count() == 0  # no element was created from it
    assert page.dialogs == []  # onerror never ran
    next(cards.nth(i) for i in range(cards.count()) if XSS in cards.nth(i).inner_text()).scroll_into_view_if_needed()
    shot(page, "ui-xss")


def test_votes_keep_one_current_vote_and_un_voting_removes_it(page, server):
    from qa.feedback import Feedback

    ask(page, "培育技术经纪人多少人次？")
    # the page runs in zh-CN, where Gradio labels the buttons 赞/踩; 0 is the summary message
    like = page.locator("#qa-chat button[aria-label='赞'], #qa-chat button[aria-label='Like']").nth(1)
    like.click()
    page.wait_for_timeout(1500)
    store = Feedback(server["root"] / "index" / "feedback.jsonl")
    votes = store.votes()
    assert len(votes) == 1 and votes[0]["vote"] == "up" and votes[0]["user"] == "anonymous"
    assert votes[0]["question"] == "培育技术经纪人多少人次？" and votes[0]["clause_id"] and votes[0]["text"]
    page.locator("#qa-chat button[aria-label='踩'], #qa-chat button[aria-label='Dislike']").nth(2).click()
    page.wait_for_timeout(1500)
    votes = Feedback(store.path).votes()
    assert sorted((v["rank"], v["vote"]) for v in votes) == [(1, "up"), (2, "down")]
    page.locator("#qa-chat button[aria-label='Liked']").first.click()  # un-like the first card
    page.wait_for_timeout(1500)
    assert [(v["rank"], v["vote"]) for v in Feedback(store.path).votes()] == [(2, "down")]


def test_upload_a_document_and_find_its_clause(page, server, tmp_path):
    doc = tmp_path / "新能源补贴通知.txt"
    doc.write_text("关于新能源汽车充电设施建设补贴的通知\n\n对新建公共充电桩按每千瓦300元给予一次性建设补贴。\n",
                   encoding="utf-8")
    page.get_by_role("tab", name="文档 Documents").click()
    page.locator("#qa-upload input[type=file]").set_input_files(str(doc))
    page.wait_for_timeout(1000)
    page.click("#qa-add")
    page.wait_for_function("document.querySelector('#qa-jobs') && "
                           "document.querySelector('#qa-jobs').innerText.includes('已添加')", timeout=120000)
    assert "100%" in page.locator("#qa-jobs").inner_text()  # the job's progress bar ran to the end
    assert (server["docs"] / "新能源补贴通知.txt").exists()
    assert "关于新能源汽车充电设施建设补贴的通知" in page.locator("#qa-doc-table").inner_text()
    page.wait_for_timeout(1000)
    shot(page, "ui-documents")
    page.get_by_role("tab", name="问答 Ask").click()
    ask(page, "公共充电桩每千瓦补贴多少钱？")
    assert "每千瓦300元" in page.locator(".qa-card").first.inner_text()


def test_upload_of_a_broken_file_is_refused_with_a_message(page, tmp_path):
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 this is not really a pdf")
    page.get_by_role("tab", name="文档 Documents").click()
    page.locator("#qa-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1000)
    page.click("#qa-add")
    page.wait_for_function("document.querySelector('#qa-jobs') && "
                           "document.querySelector('#qa-jobs').innerText.includes('cannot read this .pdf file')",
                           timeout=60000)
    assert "失败 failed" in page.locator("#qa-jobs").inner_text()


def test_evaluate_tab_shows_metrics(page):
    page.get_by_role("tab", name="评测 Evaluate").click()
    page.click("#qa-eval")
    page.wait_for_function("document.querySelector('#qa-eval-table') && "
                           "document.querySelector('#qa-eval-table').innerText.includes('hybrid')", timeout=180000)
    table = page.locator("#qa-eval-table").inner_text()
    assert "R@1" in table and "MRR" in table
    shot(page, "ui-evaluate")


def test_empty_and_odd_questions_in_the_chat(page):
    page.fill("#qa-question textarea", "   ")
    page.click("#qa-send")
    page.wait_for_selector("text=question is empty", timeout=30000)
    ask(page, "'; DROP TABLE clauses; -- $(reboot) 🚀 技术经纪人")
    assert page.locator(".qa-card").count() >= 1
    assert page.dialogs == []
