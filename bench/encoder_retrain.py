"""Does retraining reproduce the shipped encoder adapter? A retrained adapter against qa/models/e5-policy.

    .venv/bin/python bench/train_encoder.py --xquad DIR --out /tmp/e5-retrained     # make encoder's command
    .venv/bin/python bench/encoder_retrain.py --adapter /tmp/e5-retrained --work /tmp/e5-check

Three comparisons, written to bench/results/encoder-retrain.json:
- the files: the adapter configs as data, and every weight tensor (its largest absolute difference);
- the training: the losses the two cards recorded;
- what a user gets: each adapter merged into the base (``qa.encoders.adapted.build``), docs/
  indexed with the merged folder (the same code path for both), and our two labelled sets' test
  parts scored with ``qa eval`` as the accuracy block scores them: every metric of every mode,
  and how many questions changed rank.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import machine, qa_eval  # noqa: E402

SETS = {"labelled": "docs/eval/questions.jsonl", "reading": "docs/eval/reading.jsonl"}
MODES = "hybrid,dense,bm25"


def compare_files(shipped: Path, retrained: Path, weights: tuple[str, ...] = ("adapter_model.safetensors",)) -> dict:
    """The configs (target modules as a set: peft writes them in hash order) and the weights in
    the ``weights`` files of both folders."""
    import numpy as np
    from safetensors.numpy import load_file

    configs = [json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")) for folder in (shipped, retrained)]
    for config in configs:
        config["target_modules"] = sorted(config.get("target_modules") or [])
    first, second = ({f"{name}:{k}": v for name in weights for k, v in load_file(str(folder / name)).items()}
                     for folder in (shipped, retrained))
    same_names = sorted(first) == sorted(second)
    return {"configs_equal_as_data": configs[0] == configs[1],
            "config_keys_that_differ": sorted(k for k in set(configs[0]) | set(configs[1])
                                              if configs[0].get(k) != configs[1].get(k)),
            "tensors": len(first), "same_tensor_names": same_names,
            "max_abs_weight_difference": max(float(np.abs(first[k] - second[k]).max()) for k in first) if same_names
            else None,
            "max_abs_weight": max(float(np.abs(v).max()) for v in first.values()),
            "byte_identical": all((shipped / name).read_bytes() == (retrained / name).read_bytes() for name in weights)}


def scored(adapter: Path, work: Path, reuse: bool) -> dict:
    """Our sets' test reports with ``adapter`` merged into the base and docs/ indexed with it."""
    from qa.encoders import adapted

    merged = adapted.build(work / "merged", adapter)
    index = work / "index"
    if not (reuse and (index / "manifest.json").exists()):
        subprocess.run([str(ROOT / ".venv/bin/qa"), "index", "--docs", "docs", "--index", str(index),
                        "--encoder", f"sentence-transformers:{merged}", "--force"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return {name: qa_eval(["--questions", path, "--docs", "docs", "--index", str(index), "--modes", MODES,
                           "--split", "test"], work / name, reuse) for name, path in SETS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", type=Path, required=True, help="the retrained adapter folder (with its card)")
    parser.add_argument("--shipped", type=Path, default=ROOT / "qa/models/e5-policy")
    parser.add_argument("--work", type=Path, required=True, help="where the merged models, indexes and reports go")
    parser.add_argument("--reuse", action="store_true", help="keep indexes and reports the same command wrote")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/encoder-retrain.json")
    args = parser.parse_args(argv)
    cards = [json.loads((folder / "card.json").read_text(encoding="utf-8")) for folder in (args.shipped, args.adapter)]
    reports = {side: scored(folder, args.work / side, args.reuse)
               for side, folder in (("shipped", args.shipped), ("retrained", args.adapter))}
    sets = {}
    for name in SETS:
        shipped, retrained = reports["shipped"][name], reports["retrained"][name]
        rows = {}
        for mode in shipped["modes"]:
            metrics = {m: [round(shipped["modes"][mode]["metrics"][m], 4), round(v, 4)]
                       for m, v in retrained["modes"][mode]["metrics"].items()}
            ranks = {q["qid"]: q["rank"] for q in shipped["per_question"][mode]}
            moved = sum(ranks[q["qid"]] != q["rank"] for q in retrained["per_question"][mode])
            rows[mode] = {"metrics_shipped_retrained": metrics,
                          "max_abs_metric_difference": round(max(abs(a - b) for a, b in metrics.values()), 4),
                          "questions_whose_rank_changed": moved}
        sets[name] = {"questions": shipped["questions"], "modes": rows}
    result = {"command": "python bench/encoder_retrain.py " + " ".join(argv or sys.argv[1:]),
              "machine": machine(),
              "retrain_command": cards[1].get("command"),
              "hardware": {"shipped": cards[0].get("hardware"), "retrained": cards[1].get("hardware")},
              "train_seconds": {"shipped": cards[0].get("train_seconds"), "retrained": cards[1].get("train_seconds")},
              "loss_first_10": [cards[0].get("loss_first_10"), cards[1].get("loss_first_10")],
              "loss_last_10": [cards[0].get("loss_last_10"), cards[1].get("loss_last_10")],
              "files": compare_files(args.shipped, args.adapter),
              "test_parts": sets}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("loss_first_10", "loss_last_10", "files")}, indent=1))
    for name, row in sets.items():
        print(name, {mode: (r["max_abs_metric_difference"], r["questions_whose_rank_changed"])
                     for mode, r in row["modes"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
