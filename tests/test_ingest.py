"""Cleaning and metadata of the two real documents, and decoding of unusual files."""

from __future__ import annotations

import pytest

from qa.ingest import load_file, load_folder
from qa.ingest.clean import paragraphs
from qa.ingest.read import UnreadableFile, decode

from .conftest import DOCS, NEWSPAPER, WEBPAGE


def _by_source(documents, source):
    return [d for d in documents if d.source == source]


def test_newspaper_column_breaks_are_rejoined_without_spaces(real_documents):
    text = "\n".join(d.text for d in _by_source(real_documents, NEWSPAPER))
    # "…创新平台布" / blank line / "局、国家重大…" in the source
    assert "国家重大战略创新平台布局、国家重大科技基础设施建设等方面加强合作" in text
    assert "在开展国际科技创新合作交流方面，共同推进" in text
    assert "科技成果转化便利化服务四个方面着力" in text
    assert "全区科技型企业总量目前已达1311家。" in text
    assert "（重庆日报记者 张亦筑）6月3日，重庆市科技局与上海市科委在2021浦江创新论坛上签署科技合作框架协议" in text
    # the only spaces left are the four of the two bylines: none was added by a rejoin
    assert text.count(" ") == 4 and text.count("本报讯 （重庆日报记者 张亦") == 2


def test_newspaper_real_paragraph_breaks_and_headlines_stay_apart(docs_dir):
    paras = [p.text for p in paragraphs((docs_dir / NEWSPAPER).read_text(encoding="utf-8"))]
    assert "沪渝携手推进科技创新中心建设" in paras
    assert "加快推动长江经济带高质量发展" in paras
    assert any(p.endswith("资源的共享共用。") for p in paras)
    assert any(p.startswith("在开展国际科技创新合作交流方面") for p in paras)


def test_newspaper_split_into_articles_with_their_headlines(real_documents):
    articles = _by_source(real_documents, NEWSPAPER)
    titles = [d.title for d in articles]
    assert titles[0] == "沪渝携手推进科技创新中心建设"
    assert titles[2] == "重庆出台促进科技成果转化“24条”"
    assert articles[0].meta["kicker"] == "加快推动长江经济带高质量发展"
    assert articles[0].meta["agency"] == "重庆日报" and articles[0].meta["author"] == "张亦筑"
    assert "24项措施" in articles[2].text and "24项措施" not in articles[0].text
    assert "沪渝" not in articles[2].text
    caption = articles[1]
    assert caption.meta["kind"] == "photo caption" and caption.meta["author"] == "崔力"
    assert "1311家" in caption.text
    # the teaser for another page is not indexed as an article
    assert all("超瞬态实验装置有多牛" not in d.text for d in articles)


def test_webpage_boilerplate_and_duplicate_metadata_removed(real_documents):
    (doc,) = _by_source(real_documents, WEBPAGE)
    assert "您当前的位置" not in doc.text
    assert "扫一扫" not in doc.text
    assert "[ " not in doc.text and "索引号" not in doc.text and "发布机构" not in doc.text
    assert doc.text.count("沈迎春代表") == 1
    assert doc.text.startswith("重庆市科学技术局 关于市六届人大二次会议第0219号建议办理情况的答复函")
    assert doc.text.rstrip().endswith("进行评价。")


def test_webpage_metadata_extracted(real_documents):
    (doc,) = _by_source(real_documents, WEBPAGE)
    assert doc.title == "重庆市科学技术局 关于市六届人大二次会议第0219号建议办理情况的答复函"
    assert doc.meta["agency"] == "市科技局"
    assert doc.meta["written"] == "2024-09-14"
    assert doc.meta["published"] == "2024-09-14"
    assert doc.meta["index_no"] == "11500000MB15895317/2024-00068"
    assert doc.meta["topic"] == "科技"
    assert "number" not in doc.meta  # 发文字号 is empty on this page
    assert doc.meta["signed_by"] == "重庆市科学技术局" and doc.meta["signed_date"] == "2024-07-24"


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-16", "utf-8-sig"])
def test_decode_detects_chinese_encodings(encoding):
    text = (DOCS / WEBPAGE).read_text(encoding="utf-8")[:600]
    assert decode(text.encode(encoding)) == text


def test_decode_refuses_binary():
    import random

    rng = random.Random(1)
    data = bytes(rng.randrange(256) for _ in range(4000))
    with pytest.raises(UnreadableFile, match="not text"):
        decode(data, "noise.bin")
    with pytest.raises(UnreadableFile, match="empty"):
        decode(b"  \n", "empty.txt")


def test_folder_skips_bad_files_and_indexes_the_rest(mini_docs):
    (mini_docs / "noise.txt").write_bytes(b"\x00\x01\x02\xff" * 500)
    (mini_docs / "empty.md").write_bytes(b"")
    (mini_docs / ".hidden.txt").write_text("不应被读取")
    documents, skipped = load_folder(mini_docs)
    assert {d.doc_id for d in documents} == {"policy", "notice-gbk", "utf16"}
    assert {s.path for s in skipped} == {"noise.txt", "empty.md"}
    assert all(s.path in s.reason for s in skipped)
    gbk = next(d for d in documents if d.doc_id == "notice-gbk")
    assert gbk.title == "关于开展2024年科技型企业认定工作的通知"
    assert "申报截止时间为2024年6月30日" in gbk.text


def test_html_in_a_document_is_kept_as_text(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("通知正文<img src=x onerror=alert(1)>内容。", encoding="utf-8")
    (doc,) = load_file(path)
    assert "<img src=x onerror=alert(1)>" in doc.text
