"""Does retraining reproduce the shipped cross-encoder? A retrained adapter against qa/models/cross-policy.

    make reranker-style training, written elsewhere (hours on 2 CPU cores, checkpointed):
    .venv/bin/python bench/train_reranker.py train --groups bench/.cache/reranker-groups.json \
        --model bench/.cache/reranker-model --out /tmp/cross-retrained --layers 12 --epochs 3 --batch 16 \
        --checkpoint bench/.cache/reranker-checkpoint.pt
    .venv/bin/python bench/cross_retrain.py --adapter /tmp/cross-retrained --work /tmp/cross-check

The shipped adapter was trained on a GPU, whose dropout masks no CPU run draws again, so the
weights cannot match bit for bit; what must match is what a user gets. Compared, into
bench/results/cross-retrain.json: the files (configs as data, the largest weight difference),
the two cards' losses, and, on every test part bench/ranker_compare.py scores, ``qa eval
--rerank cross`` with each adapter (the retrained one through ``QA_CROSS_ADAPTER``): every
metric, its difference, and whether all stay within ``TOLERANCE``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from encoder_retrain import compare_files  # noqa: E402
from measure import figures, machine, qa_eval  # noqa: E402
from ranker_compare import METRICS, SETS  # noqa: E402

from qa import cross  # noqa: E402

TOLERANCE = 0.01  # the "reproduces the metrics within 0.01"


def scored(adapter: Path, work: Path, reuse: bool, names: list[str]) -> dict:
    """Each named set's test figures with the stage on, ``adapter`` named by the environment."""
    env = {cross.ADAPTER_ENV: str(adapter)}
    return {name: figures(qa_eval([*SETS[name], "--modes", "hybrid", "--split", "test", "--rerank", "cross"],
                                  work / name, reuse, env)["modes"]["hybrid"], METRICS)
            for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", type=Path, required=True, help="the retrained adapter folder (with its card)")
    parser.add_argument("--shipped", type=Path, default=cross.ADAPTER)
    parser.add_argument("--work", type=Path, required=True, help="where the qa eval reports go")
    parser.add_argument("--reuse", action="store_true", help="keep reports the same command wrote")
    parser.add_argument("--sets", default=",".join(SETS), help="which of bench/ranker_compare.py's sets")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/cross-retrain.json")
    args = parser.parse_args(argv)
    cards = [cross.check(folder) for folder in (args.shipped, args.adapter)]  # both sealed, or a clear error
    names = [n for n in args.sets.split(",") if n]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    figures_of = {side: scored(folder.resolve(), args.work / side, args.reuse, names)
                  for side, folder in (("shipped", args.shipped), ("retrained", args.adapter))}
    sets = {}
    for name in names:
        shipped, retrained = figures_of["shipped"][name], figures_of["retrained"][name]
        difference = {m: round(retrained[m] - shipped[m], 4) for m in shipped}
        sets[name] = {"shipped": shipped, "retrained": retrained, "difference": difference,
                      "within_tolerance": all(abs(d) <= TOLERANCE for d in difference.values())}
    result = {"command": "python bench/cross_retrain.py " + " ".join(argv or sys.argv[1:]),
              "machine": machine(), "tolerance": TOLERANCE,
              "retrain_command": cards[1].get("command"),
              "hardware": {"shipped": cards[0].get("hardware"), "retrained": cards[1].get("hardware")},
              "train_seconds": {"shipped": cards[0].get("train_seconds"), "retrained": cards[1].get("train_seconds")},
              "groups": [cards[0].get("groups"), cards[1].get("groups")],
              "loss_first_10": [cards[0].get("loss_first_10"), cards[1].get("loss_first_10")],
              "loss_last_10": [cards[0].get("loss_last_10"), cards[1].get("loss_last_10")],
              "files": compare_files(args.shipped, args.adapter, ("adapter_model.safetensors", cross.HEAD)),
              "test_parts": sets,
              "all_within_tolerance": all(row["within_tolerance"] for row in sets.values())}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, row in sets.items():
        print(name, row["difference"], "ok" if row["within_tolerance"] else "OUTSIDE the tolerance")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
