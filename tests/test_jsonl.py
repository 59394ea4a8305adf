"""qa.jsonl: the one JSON-lines reader and writer."""

from __future__ import annotations

import pytest

from qa import jsonl
from qa.errors import QAError


def test_round_trip_keeps_chinese_readable(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"qid": "q1", "question": "江北区有多少家科技型企业？"}, {"qid": "q2", "n": [1, 2]}]
    jsonl.write(path, iter(rows))
    assert "江北区" in path.read_text(encoding="utf-8")
    assert jsonl.read(path) == rows


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")
    assert jsonl.read(path) == [{"a": 1}, {"a": 2}]


def test_a_bad_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(QAError, match=r"rows\.jsonl:2: not JSON") as caught:
        jsonl.read(path)
    assert isinstance(caught.value, ValueError)  # what the index's corruption check catches


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(QAError, match="no such file") as caught:
        jsonl.read(tmp_path / "absent.jsonl")
    assert isinstance(caught.value, OSError)
