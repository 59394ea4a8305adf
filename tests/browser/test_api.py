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


def test_search_endpoint_and_errors_as_json(client):
    results = client.predict(["技术合同成交额", "   "], 2, "bm25", api_name="/search")
    assert len(results) == 2 and "2800亿元" in results[0]["hits"][0]["text"]
    assert results[1]["hits"] == [] and "empty" in results[1]["error"]
