"""The named API endpoints through gradio_client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False, analytics_enabled=False)


def test_ask_endpoint_returns_structured_hits(client):
    result = client.predict("江北区科技型企业总量有多少？", 3, "hybrid", api_name="/ask")
    assert result["hits"][0]["rank"] == 1 and "1311家" in result["hits"][0]["text"]
    assert {"clause_id", "citation", "title", "score", "heading"} <= set(result["hits"][0])


def test_ask_where_filters_by_agency_and_date(client):
    everything = client.predict("科技", 20, "bm25", api_name="/ask")["hits"]
    assert {h["agency"] for h in everything} >= {"市科技局", "重庆日报"}
    agency = client.predict("科技", 20, "bm25", None, ["重庆日报"], "", "", api_name="/ask_where")["hits"]
    assert agency and {h["agency"] for h in agency} == {"重庆日报"}
    dated = client.predict("科技", 20, "bm25", None, None, "2024-09-01", "2024-09-30", api_name="/ask_where")["hits"]
    assert dated and {h["date"] for h in dated} == {"2024-09-14"}

    with pytest.raises(Exception, match="not a date"):
        client.predict("科技", 5, "bm25", None, None, "next week", "", api_name="/ask_where")


def test_search_endpoint_and_errors_as_json(client):
    results = client.predict(["技术合同成交额", "   "], 2, "bm25", api_name="/search")
    assert len(results) == 2 and "2800亿元" in results[0]["hits"][0]["text"]
    assert results[1]["hits"] == [] and "empty" in results[1]["error"]


def test_odd_questions_through_the_api(client):
    from tests.test_robustness import QUESTIONS

    for name, question in QUESTIONS.items():
        if name == "lone-surrogate":  # UTF-8 cannot carry it: sent below as a JSON escape instead
            continue
        result = client.predict(question, 2, "hybrid", api_name="/ask")
        assert result["hits"] and "error" not in result, name
    empty = client.predict("\x00 ", 2, "hybrid", api_name="/ask")
    assert empty["hits"] == [] and "empty" in empty["error"]


def _call_raw(url: str, data: list) -> dict:
    """POST through the queue as any HTTP client would, then read the result event."""
    import json
    import urllib.request

    body = json.dumps({"data": data}).encode("ascii")  # ensure_ascii: a lone surrogate becomes \\ud800
    req = urllib.request.Request(url + "gradio_api/call/ask", data=body, headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/ask/{event}", timeout=60).read().decode("utf-8")
    lines = [line for line in stream.splitlines() if line.startswith("data:")]
    return json.loads(lines[-1][5:])[0]


def test_lone_surrogates_over_raw_http(server):
    result = _call_raw(server["url"], ["科技\ud800企业\udfff总量", 2, "hybrid", None])
    assert result["hits"] and "error" not in result
