"""The Ask tab and the JSON API: questions in, cited clauses out, votes on them.

Every input a client controls is bounded here (k, batch size, question length, document
filter); a value out of bounds is refused with a message that says what is allowed.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from ..errors import QAError
from ..feedback import Feedback
from ..pipeline import MODES, Pipeline
from ..retrieval import Selection
from ..users import User
from . import render
from .access import Refused

log = logging.getLogger(__name__)

MAX_K = 50
MAX_BATCH = 200
#: longer questions are refused outright (a multi-megabyte string costs the server time to read);
#: up to this, the pipeline searches the first ``max_query_chars`` characters and says so, as
#: before. The chat's text box stops at half of it.
MAX_QUESTION_CHARS = 200_000
MAX_DOC_FILTER = 100


def bounded_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, float, str)):
        raise Refused(f"k must be a whole number from 1 to {MAX_K}")
    try:
        value = float(k)
    except ValueError:
        raise Refused(f"k must be a whole number from 1 to {MAX_K}, not {str(k)[:20]}") from None
    if value != value or not value.is_integer() or not 1 <= value <= MAX_K:
        raise Refused(f"k must be a whole number from 1 to {MAX_K}, not {str(k)[:20]}")
    return int(value)


def checked_mode(mode: Any) -> str:
    if mode not in MODES:
        raise Refused(f"mode must be one of {', '.join(MODES)}")
    return mode


def checked_question(question: Any) -> str:
    if not isinstance(question, str):
        raise Refused("the question must be text")
    if len(question) > MAX_QUESTION_CHARS:
        raise Refused(f"the question has {len(question)} characters; at most {MAX_QUESTION_CHARS} are accepted")
    return question


def checked_documents(pipeline: Pipeline, doc_ids: Any) -> list[str] | None:
    if doc_ids in (None, "", []):
        return None
    if isinstance(doc_ids, str):
        doc_ids = [doc_ids]
    if not isinstance(doc_ids, (list, tuple)) or len(doc_ids) > MAX_DOC_FILTER or \
            not all(isinstance(d, str) for d in doc_ids):
        raise Refused(f"the document filter is a list of at most {MAX_DOC_FILTER} document ids")
    unknown = [d for d in doc_ids if d not in pipeline.index.documents]
    if unknown:
        raise Refused(f"no document {unknown[0][:80]!r}; the document ids are listed in the Documents tab")
    return list(doc_ids)


def checked_selection(agencies: Any = None, since: Any = "", until: Any = "") -> Selection:
    """Agencies and a date range as a ``Selection`` (bad dates refused with the format to use)."""
    if agencies in (None, ""):
        agencies = []
    if isinstance(agencies, str):
        agencies = [agencies]
    if not isinstance(agencies, (list, tuple)) or len(agencies) > MAX_DOC_FILTER or \
            not all(isinstance(a, str) for a in agencies):
        raise Refused(f"the agency filter is a list of at most {MAX_DOC_FILTER} names")
    if not all(isinstance(d, (str, type(None))) for d in (since, until)):
        raise Refused("dates are text: YYYY-MM-DD")
    try:
        return Selection(agencies=tuple(agencies), since=(since or "").strip()[:40], until=(until or "").strip()[:40])
    except QAError as exc:
        raise Refused(str(exc).replace("--", "")) from None


def agencies(pipeline: Pipeline) -> list[str]:
    """The issuing agencies of the documents, for the agency filter."""
    return sorted({d.meta["agency"] for d in pipeline.index.documents.values() if d.meta.get("agency")})


def api_ask(pipeline: Pipeline, user: User, question: Any, k: Any = 5, mode: Any = "hybrid",
            doc_ids: Any = None, agency: Any = None, since: Any = "", until: Any = "") -> dict:
    """One question as JSON. Bad parameters raise Refused; an empty question is an ``error`` field."""
    question, k, mode = checked_question(question), bounded_k(k), checked_mode(mode)
    documents = checked_documents(pipeline, doc_ids)
    selection = checked_selection(agency, since, until)
    try:
        return pipeline.ask(question, k=k, mode=mode, doc_ids=documents, selection=selection).to_json()
    except QAError as exc:
        return {"question": question, "error": str(exc), "hits": []}


def api_search(pipeline: Pipeline, user: User, questions: Any, k: Any = 10, mode: Any = "hybrid") -> list[dict]:
    """Many questions at once (at most ``MAX_BATCH``)."""
    if not isinstance(questions, (list, tuple)):
        raise Refused("questions must be a list of strings")
    if len(questions) > MAX_BATCH:
        raise Refused(f"{len(questions)} questions in one call; at most {MAX_BATCH}, split the batch")
    k, mode = bounded_k(k), checked_mode(mode)
    return [api_ask(pipeline, user, q, k, mode) for q in questions]


def respond(pipeline: Pipeline, user: User, message: Any, history: Sequence[dict] | None, k: Any, mode: Any,
            doc_filter: Any, state: dict | None, agency: Any = None, since: Any = "",
            until: Any = "") -> tuple[list[dict], dict, str]:
    """The chat: the question, a summary and one card per hit appended to ``history``."""
    question = message if isinstance(message, str) else str(message or "")
    history = list(history or [])
    state = dict(state or {"passages": {}, "last": None})
    history.append({"role": "user", "content": render.esc(question[:2000]) if question.strip() else "（空）"})
    try:
        answer = pipeline.ask(checked_question(question), k=bounded_k(k), mode=checked_mode(mode),
                              doc_ids=checked_documents(pipeline, doc_filter), previous=state.get("last"),
                              selection=checked_selection(agency, since, until))
    except QAError as exc:
        history.append({"role": "assistant", "content": f"**无法检索** · {render.esc(str(exc))}"})
        return history, state, ""
    except Exception as exc:  # never a traceback in the chat
        log.exception("answering %r failed", question[:200])
        history.append({"role": "assistant",
                        "content": f"**出错了，请重试** (internal error: {render.esc(type(exc).__name__)})"})
        return history, state, ""
    state["last"] = answer.question
    history.append({"role": "assistant", "content": render.summary(answer)})
    terms = render.query_terms(pipeline, answer.question)
    passages = dict(state.get("passages") or {})
    for hit in answer.hits:
        passages[str(len(history))] = {
            "question": answer.question, "clause_id": hit.clause.clause_id, "doc_id": hit.clause.doc_id,
            "text": hit.clause.text, "rank": hit.rank, "mode": answer.mode, "citation": str(hit.citation)}
        history.append({"role": "assistant", "content": render.card(pipeline, hit, terms)})
    state["passages"] = passages
    return history, state, ""


def vote(feedback: Feedback, user: User, state: dict | None, index: Any, liked: Any) -> str | None:
    """Record ``user``'s vote on the card at ``index``: True up, False down, "" (un-voted) removes it.

    Returns the vote stored ("up", "down", None), or raises Refused for a message with no card.
    """
    if isinstance(index, (list, tuple)):
        index = index[0] if index else None
    passage = (state or {}).get("passages", {}).get(str(index))
    if passage is None:
        raise Refused("只能对检索结果投票 (only answers can be voted on)")
    value = "up" if liked in (True, "Like") else "down" if liked in (False, "Dislike") else None
    return feedback.vote(user.name, passage, value)["vote"]
