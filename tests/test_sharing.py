"""A server a team can share, without a browser: users and roles, bounds, hostile files,
uploads that race, background jobs, votes and the audit trail."""

from __future__ import annotations

import io
import json
import threading
import time
import tomllib
from pathlib import Path

import pytest

from qa.audit import AuditLog
from qa.cli import main
from qa.feedback import Feedback
from qa.ingest.read import UnreadableFile
from qa.ingest.sandbox import check_readable
from qa.ingest.upload import Library, UploadRefused
from qa.jobs import JobRefused, Jobs
from qa.ui import ask, documents, render
from qa.ui.access import OPEN, Access, Refused
from qa.users import MAX_FAILURES, User, Users, UsersError

from .hostile import XSS, html_content_type_docx, many_pages_pdf, slow_pdf, zip_bomb_docx

ROOT = Path(__file__).resolve().parents[1]


# -- users and roles -------------------------------------------------------------------------

def test_users_file_holds_argon2_hashes_readable_by_the_owner_only(tmp_path):
    users = Users(tmp_path / "users.json")
    assert not users and users.get("ann") is None
    users.add("ann", "editor", "correct horse")
    users.add("bob", "reader", "battery staple")
    stored = json.loads((tmp_path / "users.json").read_text())
    assert stored["users"]["ann"]["hash"].startswith("$argon2id$") and "correct" not in json.dumps(stored)
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    assert users.verify("ann", "correct horse") and not users.verify("ann", "battery staple")
    assert not users.verify("nobody", "correct horse")
    assert [(u.name, u.role) for u in users.list()] == [("ann", "editor"), ("bob", "reader")]
    with pytest.raises(UsersError, match="exists"):
        users.add("ann", "admin", "another one")
    with pytest.raises(UsersError, match="role"):
        users.add("cy", "owner", "long enough")
    with pytest.raises(UsersError, match="at least 8"):
        users.add("cy", "reader", "short")
    with pytest.raises(UsersError, match="user name"):
        users.add("../x", "reader", "long enough")
    users.remove("bob")
    assert users.get("bob") is None and not users.verify("bob", "battery staple")


def test_wrong_passwords_lock_the_name_for_a_while(tmp_path):
    users = Users(tmp_path / "users.json")
    users.add("ann", "reader", "correct horse")
    for _ in range(MAX_FAILURES):
        assert not users.verify("ann", "guess")
    assert not users.verify("ann", "correct horse")  # locked, even with the right password
    assert Users(tmp_path / "users.json").verify("ann", "correct horse")  # the lock is per server process


def test_roles_are_checked_on_every_call_and_follow_the_file(tmp_path):
    class Request:
        def __init__(self, username):
            self.username = username

    users = Users(tmp_path / "users.json")
    users.add("rita", "reader", "reader pass")
    users.add("ed", "editor", "editor pass")
    access = Access(users)
    assert access.require(Request("rita"), "ask") == User("rita", "reader")
    with pytest.raises(Refused, match="rita \\(reader\\) may not add or replace documents"):
        access.require(Request("rita"), "upload")
    assert access.require(Request("ed"), "upload").role == "editor"
    with pytest.raises(Refused, match="may not manage users"):
        access.require(Request("ed"), "users")
    with pytest.raises(Refused, match="sign in"):
        access.require(Request(None), "ask")
    time.sleep(0.01)
    Users(tmp_path / "users.json").remove("ed")  # another process (qa users remove) edits the file
    with pytest.raises(Refused, match="sign in"):
        access.require(Request("ed"), "ask")  # an open session of a removed user stops working
    assert Access(None).require(Request(None), "upload") == OPEN


def test_users_command_reads_the_password_from_stdin(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    assert main(["users", "add", "ann", "--role", "admin", "--users", str(path)]) == 0
    assert main(["users", "list", "--users", str(path)]) == 0
    assert "ann\tadmin" in capsys.readouterr().out
    assert Users(path).verify("ann", "s3cret-pass")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "bob", "--users", str(path)]) == 2
    assert "at least 8" in capsys.readouterr().err
    assert main(["users", "remove", "ann", "--users", str(path)]) == 0 and not Users(path)


def test_serve_on_a_network_address_needs_users_or_no_auth(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no index/users.json here
    assert main(["serve", "--host", "0.0.0.0", "--index", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to serve on 0.0.0.0 without sign-in" in err and "--no-auth" in err
    (tmp_path / "empty.json").write_text('{"format": 1, "users": {}}')
    assert main(["serve", "--host", "0.0.0.0", "--users", str(tmp_path / "empty.json")]) == 2
    assert "has no users" in capsys.readouterr().err


def test_bundled_model_names_import_only_declared_packages():
    from qa.encoders.st import BUNDLED

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower().replace("-", "_")
                for group in [project["dependencies"], *project["optional-dependencies"].values()] for d in group}
    assert {module for module, _ in BUNDLED.values()} <= declared


# -- bounded inputs ----------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, -1, 51, 10_000, "abc", 2.5, None, True, [], float("nan")])
def test_k_outside_one_to_fifty_is_refused(k):
    with pytest.raises(Refused, match="k must be a whole number from 1 to 50"):
        ask.bounded_k(k)


def test_api_inputs_never_give_a_traceback_or_more_than_fifty_hits(pipeline):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ids = sorted(pipeline.index.documents)
    anything = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                         st.text(max_size=8), st.lists(st.integers(), max_size=3))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(question=st.one_of(st.text(max_size=300), st.sampled_from(["江北区科技型企业", "技术合同", " "]), anything),
           k=st.one_of(st.integers(-5, 80), anything),
           documents=st.one_of(st.none(), st.lists(st.sampled_from(ids + ["nope", "<b>x</b>"]), max_size=4), anything),
           batch=st.integers(0, 230))
    def check(question, k, documents, batch):
        try:
            result = ask.api_ask(pipeline, OPEN, question, k, "hybrid", documents)
        except Refused as exc:
            assert str(exc)
        else:
            assert len(result["hits"]) <= 50 and (result["hits"] or "error" in result or not str(question).strip())
            allowed = set(documents) if isinstance(documents, list) and documents else None
            assert allowed is None or all(h["doc_id"] in allowed for h in result["hits"])
        try:
            results = ask.api_search(pipeline, OPEN, ["技术合同"] * batch, k, "bm25")
        except Refused as exc:
            assert str(exc) and (batch > ask.MAX_BATCH or not isinstance(k, int) or isinstance(k, bool)
                                 or not 1 <= k <= 50)
        else:
            assert len(results) == batch <= ask.MAX_BATCH and all(len(r["hits"]) <= 50 for r in results)

    check()


def test_a_question_over_the_length_limit_is_refused_not_truncated(pipeline):
    with pytest.raises(Refused, match=f"at most {ask.MAX_QUESTION_CHARS}"):
        ask.api_ask(pipeline, OPEN, "技" * (ask.MAX_QUESTION_CHARS + 1))
    long = ask.api_ask(pipeline, OPEN, "技术合同成交额" * 200, 3)
    assert long["hits"] and any("first" in n for n in long["notes"])


@pytest.mark.parametrize("agency, since, until, message", [
    (["a"] * 101, "", "", "at most 100 names"),
    ([1, 2], "", "", "at most 100 names"),
    ({"x": 1}, "", "", "at most 100 names"),
    (None, "yesterday", "", "since 'yesterday' is not a date"),
    (None, "", "2024-13-45", "until '2024-13-45' is not a date"),
    (None, 20240101, "", "dates are text"),
])
def test_agency_and_date_filters_are_bounded_and_checked(pipeline, agency, since, until, message):
    with pytest.raises(Refused, match=message):
        ask.api_ask(pipeline, OPEN, "科技", 5, "bm25", None, agency, since, until)


def test_agency_and_date_filters_keep_only_matching_documents(pipeline):
    everything = ask.api_ask(pipeline, OPEN, "科技", 50, "bm25")["hits"]
    news = ask.api_ask(pipeline, OPEN, "科技", 50, "bm25", None, "重庆日报")["hits"]
    dated = ask.api_ask(pipeline, OPEN, "科技", 50, "bm25", None, None, "2024-01-01", "2024-12-31")["hits"]
    assert news and {h["agency"] for h in news} == {"重庆日报"} and any(h["agency"] != "重庆日报" for h in everything)
    assert dated and all("2024" in h["date"] for h in dated) and any("2024" not in h["date"] for h in everything)
    assert ask.agencies(pipeline) == sorted({h["agency"] for h in everything if h["agency"]})


# -- hostile files -------------------------------------------------------------------------------

@pytest.mark.parametrize("build, name, message", [
    (zip_bomb_docx, "bomb.docx", "unpacks to 300 MB"),
    (many_pages_pdf, "pages.pdf", "5000 pages is over the 2000-page limit"),
])
def test_structural_limits_refuse_bombs_quickly(tmp_path, build, name, message):
    path = build(tmp_path / name)
    started = time.perf_counter()
    with pytest.raises(UnreadableFile, match=message):
        check_readable(path)
    assert time.perf_counter() - started < 30


def test_a_pdf_that_takes_minutes_is_stopped_at_the_time_limit(tmp_path):
    path = slow_pdf(tmp_path / "slow.pdf")
    started = time.perf_counter()
    with pytest.raises(UnreadableFile, match="longer than 3 s"):
        check_readable(path, seconds=3)
    assert time.perf_counter() - started < 6


def test_reading_is_bounded_in_memory(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("第一条 申报截止时间为6月30日。\n" * 400_000, encoding="utf-8")
    with pytest.raises(UnreadableFile, match="64 MB"):
        check_readable(path, memory_mb=64)
    assert check_readable(path) > 1_000_000


def test_parser_messages_name_the_file_not_the_server_folders(tmp_path):
    path = html_content_type_docx(tmp_path / "payload.docx")
    with pytest.raises(UnreadableFile) as caught:
        check_readable(path)
    assert XSS in str(caught.value) and str(tmp_path) not in str(caught.value)
    shown = render.job_status(_job(message=str(caught.value)))
    assert XSS not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown


# -- the documents folder: claims, history, audit -------------------------------------------------

def test_two_uploads_of_one_name_exactly_one_wins(tmp_path):
    docs = tmp_path / "docs"
    library = Library(docs, AuditLog(tmp_path / "audit.jsonl"))
    for round_ in range(16):
        sources = []
        for who in ("ann", "bob"):
            source = tmp_path / f"{who}-{round_}.txt"
            source.write_text(f"通知（{who}）：第{round_}轮申报截止时间为6月30日。", encoding="utf-8")
            sources.append((who, source))
        outcomes: dict[str, str] = {}
        barrier = threading.Barrier(2)

        def upload(who, source):
            barrier.wait()
            try:
                library.add(source, f"同名-{round_}.txt", user=who)
                outcomes[who] = "added"
            except UploadRefused as exc:
                outcomes[who] = str(exc)

        threads = [threading.Thread(target=upload, args=pair) for pair in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [w for w, o in outcomes.items() if o == "added"]
        assert len(winners) == 1, outcomes
        loser = next(o for w, o in outcomes.items() if w not in winners)
        assert "in progress" in loser or "already exists" in loser
        assert f"（{winners[0]}）" in (docs / f"同名-{round_}.txt").read_text(encoding="utf-8")
    assert sorted(p.name for p in (docs / ".uploads").iterdir()) == []  # no claims or staging left
    entries = AuditLog(tmp_path / "audit.jsonl").last(100)
    assert len(entries) == 16 and {e["action"] for e in entries} == {"add"}


def test_replace_and_delete_keep_history_and_an_audit_trail(tmp_path):
    docs = tmp_path / "docs"
    audit = AuditLog(tmp_path / "audit.jsonl")
    library = Library(docs, audit)
    source = tmp_path / "notice.txt"
    source.write_text("通知：申报截止时间为6月30日。", encoding="utf-8")
    library.add(source, user="ann")
    with pytest.raises(UploadRefused, match="already exists"):
        library.add(source, user="bob")
    source.write_text("通知：申报截止时间延至7月31日。", encoding="utf-8")
    library.add(source, overwrite=True, user="bob")
    kept = library.delete("notice.txt", user="cy")
    assert not (docs / "notice.txt").exists()
    history = sorted((docs / ".history").iterdir())
    assert [p.read_text(encoding="utf-8")[-6:] for p in history] == ["6月30日。", "7月31日。"]
    assert kept in history
    trail = audit.last(10)
    assert [(e["user"], e["action"]) for e in trail] == [("cy", "delete"), ("bob", "replace"), ("ann", "add")]
    assert all(len(e["sha256"]) == 64 and e["file"] == "notice.txt" for e in trail)
    with pytest.raises(UploadRefused, match="no such document"):
        library.delete("notice.txt", user="cy")
    with pytest.raises(UploadRefused, match="not a document name"):
        library.delete("../audit.jsonl", user="cy")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(UploadRefused, match="empty"):
        library.add(empty)


# -- background jobs ----------------------------------------------------------------------------

def _job(**fields):
    from qa.jobs import Job

    return Job(id="x-1", kind="upload", user="ann", title="上传 x", **fields)


def test_jobs_run_one_at_a_time_report_progress_and_survive_failures():
    from qa.errors import QAError

    jobs = Jobs(max_waiting=2)
    running, overlap, gate = [], [], threading.Event()

    def work(report):
        running.append(1)
        overlap.append(len(running))
        report(0.5, "half way")
        gate.wait(10)
        running.pop()
        return "ok"

    def fails(report):
        raise QAError("bad file <b>x</b>")

    def crashes(report):
        raise RuntimeError("bug")

    first = jobs.submit("upload", "ann", "a", work)
    while jobs.get(first.id).state != "running":
        time.sleep(0.01)
    assert jobs.get(first.id).progress == 0.5 or jobs.get(first.id).message in ("half way", "开始 (started)")
    queued = [jobs.submit("upload", "ann", "b", work), jobs.submit("upload", "ann", "c", fails)]
    with pytest.raises(JobRefused, match="already waiting"):
        jobs.submit("upload", "ann", "d", work)
    gate.set()
    assert jobs.wait(queued[-1].id, 10).state == "failed"
    assert jobs.get(first.id).result == "ok" and jobs.get(first.id).progress == 1.0 and max(overlap) == 1
    assert jobs.get(queued[1].id).message == "bad file <b>x</b>"
    last = jobs.wait(jobs.submit("upload", "ann", "e", crashes).id, 10)
    assert last.state == "failed" and "internal error (RuntimeError)" in last.message


def test_upload_and_delete_as_jobs_reindex_while_questions_are_answered(tmp_path, mini_docs):
    from qa import Corpus, Pipeline

    pipeline = Pipeline.open(tmp_path / "index" / "main", Corpus(mini_docs, "folder"))
    library, jobs = Library(mini_docs, AuditLog(tmp_path / "audit.jsonl")), Jobs()
    upload = tmp_path / "gradio-cache-copy.txt"
    upload.write_text("关于新能源汽车充电设施建设补贴的通知\n\n对新建公共充电桩按每千瓦300元给予一次性建设补贴。\n",
                      encoding="utf-8")
    editor = User("ed", "editor")
    job = documents.start_upload(library, jobs, pipeline, editor, str(upload), False)
    assert not upload.exists()  # Gradio's temporary copy is removed once staged
    answered = 0
    while jobs.get(job.id).active:
        assert pipeline.ask("申报截止时间", k=1).hits  # the old index answers meanwhile
        answered += 1
    done = jobs.get(job.id)
    assert done.state == "done" and "已添加 gradio-cache-copy.txt" in done.message, done.message
    assert "每千瓦300元" in pipeline.ask("公共充电桩每千瓦补贴多少钱？", k=1).hits[0].clause.text
    assert "gradio-cache-copy.txt" in documents.files(pipeline)
    gone = jobs.wait(documents.start_delete(library, jobs, pipeline, editor, "gradio-cache-copy.txt").id, 120)
    assert gone.state == "done" and "gradio-cache-copy.txt" not in documents.files(pipeline)
    assert [row[2] for row in documents.audit_rows(library.audit)] == ["delete", "add"]


# -- votes ---------------------------------------------------------------------------------------

PASSAGE = {"question": "江北区科技型企业有多少？", "clause_id": "doc#0003", "doc_id": "doc", "text": "总量1311家",
           "rank": 1, "mode": "hybrid", "citation": "《x》"}


def test_one_current_vote_per_user_and_clause_and_un_voting_removes_it(tmp_path):
    store = Feedback(tmp_path / "feedback.jsonl")
    state = {"passages": {"2": PASSAGE}}
    for _ in range(10):  # twenty quick clicks: like, un-like, like, ...
        assert ask.vote(store, User("ann", "reader"), state, 2, True) == "up"
        assert ask.vote(store, User("ann", "reader"), state, [2, 0], "") is None
    assert store.votes() == []
    ask.vote(store, User("ann", "reader"), state, 2, False)
    ask.vote(store, User("bob", "reader"), state, 2, True)
    votes = store.votes()
    assert sorted((v["user"], v["vote"]) for v in votes) == [("ann", "down"), ("bob", "up")]
    assert all(v["time"] and v["review"] is None for v in votes)
    assert Feedback(tmp_path / "feedback.jsonl").votes() == votes  # the same after a restart
    with pytest.raises(Refused, match="only answers"):
        ask.vote(store, User("ann", "reader"), state, 0, True)


def test_the_votes_file_is_bounded_by_rotation(tmp_path):
    path = tmp_path / "feedback.jsonl"
    store = Feedback(path, max_votes=50)
    for n in range(400):
        store.vote(f"user{n % 7}", {**PASSAGE, "clause_id": f"doc#{n:04d}"}, "up" if n % 3 else "down")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(store.votes()) <= 50 and len(lines) <= 2 * 50 + 101
    rotated = path.with_name("feedback.jsonl.1").read_text(encoding="utf-8").splitlines()
    assert 0 < len(rotated) <= 50
    newest = {v["clause_id"] for v in Feedback(path, max_votes=50).votes()}
    assert "doc#0399" in newest and "doc#0000" not in newest


def test_reviews_are_recorded_with_the_editor(tmp_path, capsys):
    path = tmp_path / "feedback.jsonl"
    store = Feedback(path)
    vote = store.vote("ann", PASSAGE, "up")
    assert main(["feedback", "list", "--file", str(path)]) == 0
    assert vote["id"] in capsys.readouterr().out
    assert main(["feedback", "accept", vote["id"], "--by", "ed", "--file", str(path)]) == 0
    assert "1 of 1 votes marked accepted" in capsys.readouterr().out
    accepted = Feedback(path).accepted()
    assert len(accepted) == 1 and accepted[0]["review"]["by"] == "ed"
    assert main(["feedback", "list", "--file", str(path)]) == 0 and capsys.readouterr().out == ""
    assert main(["feedback", "reject", "nonexistent", "--file", str(path)]) == 2


def test_error_toasts_are_escaped():
    import app
    from qa.errors import QAError

    toast = app.refuse(QAError(f"payload.docx: content type is '{XSS}'"))
    assert XSS not in toast.message and "&lt;img src=x onerror=alert(1)&gt;" in toast.message


def test_evaluation_job_leaves_no_temporary_folder(pipeline, tmp_path, monkeypatch):
    import tempfile

    from qa.ui import evaluate

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    jobs = Jobs()
    job = jobs.wait(evaluate.start_evaluation(jobs, pipeline, User("ed", "editor"), ROOT / "docs/eval/questions.jsonl").id,
                    300)
    assert job.state == "done", job.message
    assert "R@1" in job.result["table"] and job.result["chart"].ndim == 3
    assert list(tmp_path.iterdir()) == []
