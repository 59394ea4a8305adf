"""Questions with a homophone slip typed in, with and without qa.homophones (dev: the choice; test: the figures).

    .venv/bin/python bench/typos.py --work /tmp/typos       # ~15 min; writes bench/results/homophones.json

People type Chinese by pinyin and sometimes pick the wrong character of the same sound. Each
question of a set gets one such slip (seeded): one of its dictionary words has one character
replaced by a common character of the same toneless pinyin, so that it is no longer a word
("合作" -> "喝作", "出台" -> "出态"). A question without such a word is left out. Every set is
then scored with ``qa eval``, with ``--no-homophones`` and without, on its dev part (where the
choice was made) and its test part; the clean questions too, to show what the change costs
where nothing was mistyped, and in how many of them a slip is found at all (a false alarm: the
answer says it searched a word the person did not mean). Our two labelled sets, and cmrc2018
and drcd_zhs over their pools.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import figures, machine, qa_eval  # noqa: E402

from qa import homophones, jsonl  # noqa: E402
from qa.index import Index  # noqa: E402
from qa import tokenize as tok  # noqa: E402
from qa.evaluate.datasets import benchmark_part, labelled_part  # noqa: E402

SHARED = ROOT.parent / "shared/benchmarks"
SEED = 7
COMMON = 2000  # a slip is a character of a word at least this frequent in jieba's dictionary
METRICS = ("recall@1", "recall@5", "mrr@10", "answer@1")
_HAN = re.compile(r"[\u4e00-\u9fff]+")


def sounds() -> dict[str, tuple[str, ...]]:
    """Toneless pinyin -> the characters of common dictionary words with that sound."""
    return homophones.sound_table(w for w in tok.dictionary_words() if len(w) <= 3 and tok.frequency(w) > COMMON)


def with_slip(question: str, by_sound: dict[str, tuple[str, ...]], rng: random.Random) -> tuple[str, str] | None:
    """``question`` with one homophone slip, and the slip as "word->typed"; None if no word allows one."""
    words = [w for w in tok.cut(question) if len(w) >= 2 and _HAN.fullmatch(w) and w not in tok.STOPWORDS
             and tok.in_dictionary(w)]
    rng.shuffle(words)
    for word in words:
        at = rng.randrange(len(word))
        options = [c for c in by_sound.get(homophones.sound(word[at]), ()) if c != word[at]]
        rng.shuffle(options)
        for other in options:
            typed = word[:at] + other + word[at + 1:]
            if not tok.in_dictionary(typed):
                return question.replace(word, typed, 1), f"{word}->{typed}"
    return None


def typed_set(rows: list[dict], by_sound: dict[str, tuple[str, ...]], part_of) -> list[dict]:
    rng = random.Random(SEED)
    out = []
    for row in rows:
        slipped = with_slip(row["question"], by_sound, rng)
        if slipped:
            out.append({**row, "question": slipped[0], "slip": slipped[1], "part": part_of(row)})
    return out


def flagged(index_dir: Path, rows: list[dict], part_of) -> dict:
    """How many questions typed right a slip is found in (each such answer says so in a note)."""
    known = Index.load(index_dir, verify=False).sparse
    out = {}
    for part in ("dev", "test"):
        questions = [row["question"] for row in rows if part_of(row) == part]
        hits = [q for q in questions if homophones.slips(q, known)]
        out[part] = {"questions": len(questions), "flagged": len(hits), "share": round(len(hits) / len(questions), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="where the typed sets and reports go")
    parser.add_argument("--reuse", action="store_true", help="keep reports the same command wrote")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/homophones.json")
    args = parser.parse_args(argv)
    by_sound = sounds()
    args.work.mkdir(parents=True, exist_ok=True)
    sets: dict[str, tuple[list[str], list[str]]] = {}  # name -> (clean args, typed args)
    alarms: dict[str, tuple] = {}  # name -> (index, questions, part of a question): read once qa eval built it
    for name, path in (("labelled", "docs/eval/questions.jsonl"), ("reading", "docs/eval/reading.jsonl")):
        typed = args.work / f"{name}.jsonl"
        rows = list(jsonl.read(ROOT / path))
        part_of = lambda row, path=path: labelled_part(row, f"{path}: {row['qid']}")  # noqa: E731
        jsonl.write(typed, typed_set(rows, by_sound, part_of))
        sets[name] = (["--questions", path], ["--questions", str(typed)])
        alarms[name] = (ROOT / "index/main", rows, part_of)
    for name in ("cmrc2018", "drcd_zhs"):
        folder = args.work / name
        folder.mkdir(exist_ok=True)
        shutil.copyfile(SHARED / name / "passages.jsonl", folder / "passages.jsonl")
        rows = list(jsonl.read(SHARED / name / "questions.jsonl"))
        jsonl.write(folder / "questions.jsonl", typed_set(rows, by_sound, benchmark_part))
        index = ["--index", str(ROOT / "index" / f"bench-{name}")]
        sets[name] = (["--benchmark", str(SHARED / name), *index], ["--benchmark", str(folder), *index])
        alarms[name] = (ROOT / "index" / f"bench-{name}", rows, benchmark_part)
    result: dict = {"command": "python bench/typos.py " + " ".join(argv or sys.argv[1:]), "machine": machine(),
                    "seed": SEED, "sets": {}}
    for name, (clean, typed) in sets.items():
        row: dict = {}
        for kind, source in (("typed", typed), ("clean", clean)):
            for part in ("dev", "test"):
                cell: dict = {}
                for label, extra in (("without", ["--no-homophones"]), ("with", [])):
                    report = qa_eval([*source, "--modes", "hybrid,bm25", "--split", part, *extra],
                                     args.work / "reports" / f"{name}-{kind}-{part}-{label}", args.reuse)
                    cell[label] = {mode: figures(entry, METRICS) for mode, entry in report["modes"].items()}
                    cell["questions"] = report["questions"]
                cell["change"] = {mode: {m: round(cell["with"][mode][m] - cell["without"][mode][m], 4)
                                         for m in cell["with"][mode]} for mode in cell["with"]}
                row[f"{kind}_{part}"] = cell
        row["clean_flagged"] = flagged(*alarms[name])  # after qa eval: the index exists
        result["sets"][name] = row
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, row in result["sets"].items():
        for key, cell in row.items():
            if key != "clean_flagged":
                print(f"{name:9} {key:11} n={cell['questions']:5} hybrid {cell['change']['hybrid']}")
        print(f"{name:9} a slip found in questions typed right: {row['clean_flagged']}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
