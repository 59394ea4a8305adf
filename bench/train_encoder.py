"""Fine-tune the bundled multilingual-e5-small with LoRA on question -> clause pairs (CPU).

    .venv/bin/python bench/train_encoder.py --xquad /path/to/xquad --out /tmp/e5-lora [--merged /tmp/e5-ft]

Training data: XQuAD (google-deepmind/xquad, CC BY-SA 4.0): 240 Chinese Wikipedia-style
paragraphs with 1,190 questions, each asked in Chinese (xquad.zh.json) and in English
(xquad.en.json, the same ids). A question's positive is the sentence of the Chinese paragraph
that holds its answer (the unit the product retrieves is a clause, not a passage); its hard
negative is another sentence of the same paragraph (same topic, no answer). English questions
over Chinese clauses are the kind our own sets find hardest. The loss is the contrastive one E5
was trained with (temperature 0.01) over the batch's positives and hard negatives.

Only LoRA adapters on the attention's query and value projections are trained (peft); the
adapter folder is a few hundred KB. ``--merged`` also writes a full sentence-transformers folder
with the adapter merged in, which ``qa index --encoder sentence-transformers:FOLDER`` can use.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.encoders.e5_convert import default_target  # noqa: E402
from qa.store import file_sha256  # noqa: E402

SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")
TEMPERATURE = 0.01  # E5's own


def sentences(context: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a Chinese paragraph."""
    spans, start = [], 0
    for piece in SENTENCE_END.split(context):
        if piece.strip():
            spans.append((start, start + len(piece)))
        start += len(piece)
    return spans


def pairs(xquad: Path, seed: int) -> list[tuple[str, str, str]]:
    """(question, positive clause, hard-negative clause), Chinese and English questions."""
    rng = random.Random(seed)
    zh = json.loads((xquad / "xquad.zh.json").read_text(encoding="utf-8"))["data"]
    en = {qa["id"]: qa["question"] for article in json.loads((xquad / "xquad.en.json").read_text(encoding="utf-8"))["data"]
          for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    out = []
    for article in zh:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            spans = sentences(context)
            if len(spans) < 2:
                continue
            for qa in paragraph["qas"]:
                at = qa["answers"][0]["answer_start"]
                hit = next((i for i, (s, e) in enumerate(spans) if s <= at < e), None)
                if hit is None:
                    continue
                negative = rng.choice([i for i in range(len(spans)) if i != hit])
                positive, other = (context[slice(*spans[hit])].strip(), context[slice(*spans[negative])].strip())
                for question in (qa["question"], en.get(qa["id"])):
                    if question:
                        out.append((question.strip(), positive, other))
    return out


def step(optimizer, schedule, losses: list[float], bar, *parts) -> None:
    """One optimiser step over the gradients of ``parts``; the step's loss is kept and shown.

    Each part is a callable that returns its share of the step's loss. Its graph is freed
    by its backward pass before the next part is built, so a step holds one part's
    activations at a time (a whole step of the cross-encoder does not fit in 24 GiB).
    """
    optimizer.zero_grad()
    total = 0.0
    for part in parts:
        loss = part()
        loss.backward()
        total += loss.item()
    optimizer.step()
    schedule.step()
    losses.append(total)
    bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.update()


def save_adapter(model, out: Path) -> None:
    """The peft model's adapter files in ``out``, naming the base by name, not by this machine's path."""
    model.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)  # peft's empty template; our card is card.json
    config_path = out / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = "multilingual-e5-small"
    # peft writes its set of target modules in the process's hash order: sorted, a retrain writes the same bytes
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xquad", type=Path, required=True, help="folder with xquad.zh.json and xquad.en.json")
    parser.add_argument("--model", type=Path, default=None, help="the bundled sentence-transformers folder")
    parser.add_argument("--out", type=Path, required=True, help="adapter folder to write")
    parser.add_argument("--merged", type=Path, default=None, help="also write the merged sentence-transformers folder")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="at most this many pairs (0: all)")
    args = parser.parse_args(argv)

    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    data = pairs(args.xquad, args.seed)
    random.Random(args.seed).shuffle(data)
    if args.limit:
        data = data[:args.limit]
    model = SentenceTransformer(str(args.model or default_target()), device="cpu")
    model.max_seq_length = args.max_tokens
    lora = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, target_modules=["query", "value"])
    adapted = get_peft_model(model[0].auto_model, lora)  # adds the LoRA layers in place, freezes the rest
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr)
    steps = args.epochs * ((len(data) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                                 * max(0.0, (steps - s) / steps))

    def embed(texts: list[str]) -> torch.Tensor:
        features = model.tokenize(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    model.train()
    started = time.perf_counter()
    losses = []
    bar = tqdm(total=steps, desc="training", unit="step")
    for _ in range(args.epochs):
        for start in range(0, len(data), args.batch):
            batch = data[start:start + args.batch]
            queries = embed(["query: " + q for q, _, _ in batch])
            passages = embed(["passage: " + p for _, p, _ in batch] + ["passage: " + n for _, _, n in batch])
            logits = queries @ passages.T / TEMPERATURE
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            step(optimizer, schedule, losses, bar, lambda: loss)
    bar.close()
    seconds = time.perf_counter() - started
    save_adapter(adapted, args.out)
    card = {"model": "LoRA adapter for multilingual-e5-small (qa.encoders.adapted merges it)",
            "files": {name: file_sha256(args.out / name)
                      for name in ("adapter_config.json", "adapter_model.safetensors")},
            "command": "python bench/train_encoder.py " + " ".join(argv or sys.argv[1:]),
            "data": "XQuAD (google-deepmind/xquad, commit 7d30520): xquad.zh.json and xquad.en.json; "
                    "Chinese and English questions, each paired with the Chinese sentence holding its answer "
                    "and another sentence of the same paragraph",
            "licence": "training data CC BY-SA 4.0 (XQuAD, Artetxe et al. 2020, from SQuAD v1.1, Rajpurkar et al. "
                       "2016); base model multilingual-e5-small MIT (Wang et al. 2024)",
            "pairs": len(data), "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "rank": args.rank,
            "targets": ["query", "value"], "max_tokens": args.max_tokens, "seed": args.seed,
            "temperature": TEMPERATURE, "hardware": f"{platform.processor() or platform.machine()}, "
                                                   f"{torch.get_num_threads()} torch threads, CPU only",
            "train_seconds": round(seconds, 1), "loss_first_10": float(np.mean(losses[:10])),
            "loss_last_10": float(np.mean(losses[-10:])),
            "held_out": "bench/results/encoder-tuning.json (dev parts: the choice; test parts: the figures)"}
    (args.out / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(card, indent=1))
    if args.merged:
        adapted.merge_and_unload()  # folds B·A into the weights in place
        model.save(str(args.merged))
        print(f"merged -> {args.merged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
