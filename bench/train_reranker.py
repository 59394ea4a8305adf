"""Train the cross-encoder second stage (qa/cross.py): mine groups on the CPU, train anywhere.

    .venv/bin/python bench/train_reranker.py mine --xquad DIR --out bench/.cache/reranker-groups.json \
        [--feedback index/feedback.jsonl]    # a site's own reviewed votes as extra groups
    .venv/bin/python bench/train_reranker.py train --groups FILE --out qa/models/cross-policy [--device cuda] \
        [--checkpoint FILE]                  # hours on a CPU: stopped, the same command goes on from FILE
    .venv/bin/python bench/train_reranker.py pack --groups FILE --out .travel/model   # for a GPU machine

Data: XQuAD (google-deepmind/xquad, CC BY-SA 4.0), as for the encoder (bench/train_encoder.py):
1,190 questions, each asked in Chinese and in English, over 240 Chinese paragraphs. ``mine``
indexes the paragraphs as a pool with the product's own settings and asks every question of
it: the clauses our retriever ranks high that do not hold the answer are the hard negatives
(the reranker only ever sees what the first stage returns), the clause of the gold paragraph
that holds the answer string is the positive. The benchmark sets under ../shared stay
evaluation-only.

Model: the bundled multilingual-e5-small cut to its first ``--layers`` layers (the stage runs on
the CPU at query time, and a layer costs ~1/12 of the time), LoRA on every linear layer of the
attention and the feed-forward blocks, and a linear head over the mean of the token vectors
(the pooling e5 was trained with, so the start is its own similarity). Loss: softmax cross
entropy over each group (the positive against its mined negatives), listwise like the ranking
it serves. Deterministic for a seed on the CPU; the card records the hardware.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

NEGATIVES = 15  # per group: the positive and this many mined clauses
DEPTH = 30      # how deep in our ranking the negatives are mined


def xquad_pool(xquad: Path, folder: Path) -> list[dict]:
    """Write the Chinese paragraphs as a pool (``folder/passages.jsonl``); return the questions.

    Each question: {"qid", "question", "gold", "answers"}; the English twin has the same gold.
    """
    from qa import jsonl

    zh = json.loads((xquad / "xquad.zh.json").read_text(encoding="utf-8"))["data"]
    en = {qa["id"]: qa["question"] for article in json.loads((xquad / "xquad.en.json").read_text(encoding="utf-8"))["data"]
          for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    passages, questions = [], []
    for a, article in enumerate(zh):
        for p, paragraph in enumerate(article["paragraphs"]):
            pid = f"xquad-{a}-{p}"
            passages.append({"id": pid, "title": article.get("title") or pid, "text": paragraph["context"]})
            for qa in paragraph["qas"]:
                answers = sorted({x["text"].strip() for x in qa["answers"] if x["text"].strip()})
                for lang, text in (("zh", qa["question"]), ("en", en.get(qa["id"]))):
                    if text and answers:
                        questions.append({"qid": f"{qa['id']}-{lang}", "question": text.strip(), "gold": pid,
                                          "answers": answers})
    folder.mkdir(parents=True, exist_ok=True)
    jsonl.write(folder / "passages.jsonl", passages)
    return questions


def mine(xquad: Path, out: Path, work: Path) -> dict:
    """Groups (question, positive clause, hard negatives) mined by the product's retriever."""
    from qa.pipeline import Corpus, Pipeline

    questions = xquad_pool(xquad, work)
    pipe = Pipeline.open(work / "index", Corpus(work / "passages.jsonl", "pool"), progress=True)
    by_doc: dict[str, list] = {}
    for clause in pipe.index.clauses:
        by_doc.setdefault(clause.doc_id, []).append(clause)
    groups, no_positive, first = [], 0, 0
    for start in range(0, len(questions), 64):
        chunk = questions[start:start + 64]
        for q, answer in zip(chunk, pipe.ask_many([q["question"] for q in chunk], k=DEPTH)):
            def answers(clause) -> bool:
                return clause.doc_id == q["gold"] and any(a in clause.text for a in q["answers"])
            positive = next((c for c in by_doc.get(q["gold"], []) if answers(c)), None)
            if positive is None:  # the answer crosses a clause boundary: no single clause holds it
                no_positive += 1
                continue
            first += bool(answer.hits) and answers(answer.hits[0].clause)
            negatives = [h.clause.text for h in answer.hits if not answers(h.clause)][:NEGATIVES]
            groups.append({"qid": q["qid"], "question": q["question"], "positive": positive.text,
                           "negatives": negatives})
    pipe.close()
    facts = {"questions": len(questions), "groups": len(groups), "no_single_clause_answer": no_positive,
             "first_stage_answer_at_1": round(first / max(1, len(groups)), 3), "depth": DEPTH,
             "negatives": NEGATIVES, "clauses": len(pipe.index.clauses)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"facts": facts, "groups": groups}, ensure_ascii=False), encoding="utf-8")
    return facts


def feedback_groups(path: Path, pipe) -> tuple[list[dict], dict]:
    """Groups from the votes an editor accepted (``qa.feedback``), negatives mined by ``pipe``.

    A 👍 clause is a positive for its question; the question's 👎 clauses come first among its
    negatives, then the clauses ``pipe`` ranks high that nobody voted up. A 👎 vote on a question
    without any 👍 gives no group (nothing to prefer over it) and is counted as left out.
    """
    from qa.feedback import Feedback

    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for row in Feedback(path).accepted():
        if row.get("question") and row.get("text"):
            side = ups if row["vote"] == "up" else downs
            side.setdefault(row["question"], []).append(row["text"])
    groups = []
    for question, positives in sorted(ups.items()):
        voted_down = [t for t in dict.fromkeys(downs.get(question, [])) if t not in positives]
        mined = [h.clause.text for h in pipe.ask(question, k=DEPTH).hits]
        negatives = list(dict.fromkeys(voted_down + [t for t in mined if t not in positives]))[:NEGATIVES]
        for n, positive in enumerate(dict.fromkeys(positives)):
            groups.append({"qid": f"feedback-{len(groups)}-{n}", "question": question, "positive": positive,
                           "negatives": negatives})
    left_out = sum(len(v) for q, v in downs.items() if q not in ups)
    return groups, {"feedback_groups": len(groups), "feedback_down_votes_without_up": left_out}


def plan(n: int, epochs: int, batch: int, seed: int) -> list[list[int]]:
    """Every step's groups, in training order: each epoch shuffles the previous epoch's order again."""
    rng = random.Random(seed)
    order, steps = list(range(n)), []
    for _ in range(epochs):
        rng.shuffle(order)
        steps += [order[begin:begin + batch] for begin in range(0, n, batch)]
    return steps


def digest(groups: list[dict]) -> str:
    """What a checkpoint records of its training data, so that it is never resumed on other groups."""
    import hashlib

    return hashlib.sha256(json.dumps(groups, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def save_checkpoint(path: Path, state: dict) -> None:
    """Written whole or not at all: a stop while writing leaves the previous checkpoint."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_checkpoint(path: Path, settings: dict) -> dict:
    """The checkpoint at ``path``, refused unless it was written by a run with the same ``settings``."""
    import torch

    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # truncated or not a checkpoint: say which file, never train from scratch silently
        raise SystemExit(f"{path}: not a readable checkpoint ({type(error).__name__}); delete it to start over") from None
    if state.get("settings") != settings:
        theirs = state.get("settings") or {}
        differ = sorted(k for k in set(settings) | set(theirs) if settings.get(k) != theirs.get(k))
        raise SystemExit(f"{path}: a checkpoint of another run (it differs in {', '.join(differ)}); "
                         "run the same command as before, or delete it to start over")
    return state


def train(groups: list[dict], model_dir: Path, out: Path, layers: int, epochs: int, lr: float, rank: int,
          batch: int, seed: int, device: str, command: str, checkpoint: Path | None = None, every: int = 20,
          stop_after: int = 0, per_pass: int = 0) -> dict | None:
    """Fit the LoRA adapter and the head on ``groups``; write them and their card to ``out``.

    With ``checkpoint``, the run's whole state (trainable weights, optimiser, schedule, random
    state, losses) is saved there every ``every`` steps, and a run that finds it goes on from it,
    to the same weights as a run never stopped. ``stop_after`` (with ``checkpoint``): leave after
    that many steps of this run, the checkpoint saved (None is returned; the same command goes on).
    ``per_pass``: groups per forward and backward pass, their gradients summed into the step (0:
    the whole step at once, as the shipped model was trained on a GPU; a step of 16 groups of 16
    clauses through 12 layers needs more than 24 GiB on the CPU).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer
    from tqdm import tqdm

    from qa import cross
    from train_encoder import save_adapter, step

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    model = cross.build_model(model_dir, layers, seed=seed).to(device)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(cross.LORA_TARGETS))
    model.encoder = get_peft_model(model.encoder, lora)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(trainable.values(), lr=lr)
    batches = plan(len(groups), epochs, batch, seed)
    steps = len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                                 * max(0.0, (steps - s) / steps))
    per_pass = per_pass or batch
    settings = {"groups": digest(groups), "model": str(model_dir), "layers": layers, "epochs": epochs, "lr": lr,
                "rank": rank, "batch": batch, "seed": seed, "device": device, "per_pass": per_pass}
    done, losses, earlier = 0, [], 0.0
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, settings)
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])  # the dropout masks go on where they stopped
        if device.startswith("cuda"):
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        done, losses, earlier = state["step"], state["losses"], state["seconds"]
        print(f"{checkpoint}: going on from step {done} of {steps}", file=sys.stderr)

    def save(at: int) -> None:
        save_checkpoint(checkpoint, {
            "settings": settings, "step": at, "losses": losses, "seconds": earlier + time.perf_counter() - started,
            "trainable": {name: p.detach().cpu() for name, p in trainable.items()},
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.startswith("cuda") else []})

    width = 1 + NEGATIVES
    started = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, initial=done, desc="training", unit="step", disable=steps < 5)

    def group_loss(chosen: list[dict], share: float):
        """Softmax cross-entropy of each group's positive against its negatives, mean over the
        groups, times ``share`` (the groups' part of the step)."""
        questions, texts, valid = [], [], []
        for g in chosen:
            candidates = [g["positive"]] + g["negatives"][:NEGATIVES]
            valid.append([True] * len(candidates) + [False] * (width - len(candidates)))
            candidates += [""] * (width - len(candidates))
            questions += [g["question"]] * width
            texts += candidates
        ids, mask = cross.encode_pairs(tokenizer, questions, texts)
        scores = model(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)).view(len(chosen), width)
        scores = scores.masked_fill(~torch.tensor(valid, device=device), -1e4)
        loss = torch.nn.functional.cross_entropy(scores, torch.zeros(len(chosen), dtype=torch.long, device=device))
        return loss if share == 1 else loss * share

    for at in range(done, steps):
        chosen = [groups[i] for i in batches[at]]
        parts = [chosen[begin:begin + per_pass] for begin in range(0, len(chosen), per_pass)]
        step(optimizer, schedule, losses, bar,
             *(lambda part=part: group_loss(part, len(part) / len(chosen)) for part in parts))
        stopping = bool(stop_after) and at + 1 - done == stop_after and at + 1 < steps
        if checkpoint is not None and at + 1 < steps and ((at + 1) % every == 0 or stopping):
            save(at + 1)
        if stopping:
            bar.close()
            print(f"stopped after step {at + 1} of {steps}; the same command goes on from {checkpoint}",
                  file=sys.stderr)
            return None
    bar.close()
    seconds = earlier + time.perf_counter() - started
    save_adapter(model.encoder, out)  # adapter_config.json, adapter_model.safetensors
    from safetensors.torch import save_file

    save_file({k: v.detach().float().cpu().contiguous() for k, v in model.head.state_dict().items()},
              str(out / cross.HEAD))
    hardware = (torch.cuda.get_device_name(0) if device.startswith("cuda")
                else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU")
    card = {"model": f"cross-encoder: multilingual-e5-small's first {layers} layers, LoRA, a linear head over "
                     "the mean token vector (qa.cross loads it)",
            "layers": layers, "max_tokens": cross.MAX_TOKENS,
            "files": {}, "command": command,
            "data": "XQuAD (google-deepmind/xquad, commit 7d30520): xquad.zh.json and xquad.en.json; each "
                    "Chinese and English question against the Chinese clause holding its answer and up to "
                    f"{NEGATIVES} clauses our hybrid retriever ranked in its top {DEPTH} without the answer",
            "licence": "training data CC BY-SA 4.0 (XQuAD, Artetxe et al. 2020, from SQuAD v1.1, Rajpurkar et al. "
                       "2016); base model multilingual-e5-small MIT (Wang et al. 2024)",
            "groups": len(groups), "epochs": epochs, "batch_groups": batch, "groups_per_pass": per_pass,
            "lr": lr, "rank": rank,
            "targets": list(cross.LORA_TARGETS), "seed": seed, "hardware": hardware, "steps": steps,
            "train_seconds": round(seconds, 1), "loss_first_10": float(np.mean(losses[:10])),
            "loss_last_10": float(np.mean(losses[-10:])),
            "held_out": "bench/results/cross-encoder.json (dev parts: the choice; test parts: the figures)"}
    cross.seal(out, card)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # finished: the next run starts afresh
    return card


def load_groups(path: Path) -> list[dict]:
    """The groups ``mine`` wrote (gzipped when the name ends in .gz, to travel small)."""
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return json.loads(raw.decode("utf-8"))["groups"]


def pack(groups: list[dict], out: Path) -> dict:
    """The base model with only the word pieces the groups use, in float16: small enough to travel."""
    from device_model import FULL, compact, used_ids

    texts = sorted({g["question"] for g in groups} | {t for g in groups for t in [g["positive"], *g["negatives"]]})
    return compact(FULL, out, used_ids(FULL / "tokenizer.json", texts, ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("mine")
    p.add_argument("--xquad", type=Path, required=True, help="folder with xquad.zh.json and xquad.en.json")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=None, help="where the pool and its index go (default: a temp folder)")
    p.add_argument("--feedback", type=Path, default=None,
                   help="also the 👍/👎 votes an editor accepted (index/feedback.jsonl), over --index")
    p.add_argument("--index", type=Path, default=ROOT / "index/main", help="the index the votes were cast on")
    p = sub.add_parser("train")
    p.add_argument("--groups", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None, help="the bundled sentence-transformers folder (or a packed copy)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--batch", type=int, default=16, help="groups per step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="at most this many groups (0: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="save the run's state here every --every steps, and go on from it when it exists")
    p.add_argument("--every", type=int, default=20, help="steps between checkpoints")
    p.add_argument("--stop-after", type=int, default=0, help="leave after this many steps, checkpoint saved")
    p.add_argument("--per-pass", type=int, default=None,
                   help="groups per forward/backward pass, gradients summed into the step (default: the whole "
                        "step on a GPU, 2 on the CPU, where a whole step needs more than 24 GiB)")
    p = sub.add_parser("pack")
    p.add_argument("--groups", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.step == "mine":
        work = args.work or Path(tempfile.mkdtemp(prefix="xquad-pool-"))
        facts = mine(args.xquad, args.out, work)
        if args.feedback:
            from qa.pipeline import Pipeline

            pipe = Pipeline.open(args.index, rebuild="never")
            extra, counts = feedback_groups(args.feedback, pipe)
            pipe.close()
            if not extra:
                raise SystemExit(f"{args.feedback}: no accepted 👍 votes to learn from")
            data = json.loads(args.out.read_text(encoding="utf-8"))
            data["groups"] += extra
            data["facts"].update(counts)
            args.out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            facts.update(counts)
        print(json.dumps(facts))
    elif args.step == "pack":
        print(json.dumps(pack(load_groups(args.groups), args.out)))
    else:
        from qa.encoders.e5_convert import default_target

        if args.stop_after and args.checkpoint is None:
            parser.error("--stop-after needs --checkpoint: where else would the run go on from?")
        groups = load_groups(args.groups)
        if args.limit:
            groups = groups[:args.limit]
        args.out.mkdir(parents=True, exist_ok=True)
        card = train(groups, args.model or default_target(), args.out, args.layers, args.epochs, args.lr, args.rank,
                     args.batch, args.seed, args.device,
                     "python bench/train_reranker.py " + " ".join(argv or sys.argv[1:]),
                     args.checkpoint, args.every, args.stop_after,
                     args.per_pass if args.per_pass is not None else (0 if args.device.startswith("cuda") else 2))
        if card is not None:
            print(json.dumps(card, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
