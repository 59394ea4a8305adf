"""A copy of the clause encoder small enough to travel to a GPU machine, for the texts it will embed.

The device tool carries at most 64 MiB; the sentence-transformers folder of multilingual-e5-small
is 470 MB, 92 % of it the embedding rows of a 250k-piece vocabulary. This keeps the pieces that
``texts`` use (plus the special tokens), renumbered in their original order, and stores the
weights in float16 (the machine upcasts them): the transformer layers are ~42 MB, the kept rows
a few MB.

Dropping pieces the texts never use leaves their tokenization unchanged: the Unigram model picks
the most likely split among the pieces it has, and every piece of the best split is kept.
``check`` verifies it on the texts (same pieces) and compares vectors with the full model.

    python bench/device_model.py --texts texts.json --out .travel/model
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "index/models/multilingual-e5-small"
COPIED = ("config_sentence_transformers.json", "modules.json", "sentence_bert_config.json",
          "special_tokens_map.json", "tokenizer_config.json", "1_Pooling", "2_Normalize")


def used_ids(tokenizer_file: Path, texts: list[str], prefix: str) -> np.ndarray:
    """Sorted ids of every piece the tokenizer makes of ``prefix + text``, and the special tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    ids = {t["id"] for t in json.loads(tokenizer_file.read_text())["added_tokens"]}
    for start in range(0, len(texts), 4096):
        for enc in tok.encode_batch([prefix + t for t in texts[start:start + 4096]]):
            ids.update(enc.ids)
    return np.array(sorted(ids), dtype=np.int64)


def compact(full: Path, out: Path, keep: np.ndarray) -> dict:
    """Write the model at ``full`` with only the vocabulary rows ``keep`` (sorted) to ``out``."""
    from safetensors.numpy import load_file, save_file

    new_id = {int(old): new for new, old in enumerate(keep)}
    spec = json.loads((full / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    spec["model"]["vocab"] = [vocab[i] for i in keep if i < len(vocab)]
    spec["model"]["unk_id"] = new_id[spec["model"]["unk_id"]]
    for token in spec["added_tokens"]:
        token["id"] = new_id[token["id"]]
    for token in spec["post_processor"].get("special_tokens", {}).values():
        token["ids"] = [new_id[i] for i in token["ids"]]
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    config = json.loads((full / "config.json").read_text())
    config["vocab_size"] = len(keep)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if key in config:
            config[key] = new_id[config[key]]
    (out / "config.json").write_text(json.dumps(config, indent=1))
    weights = load_file(str(full / "model.safetensors"))
    small = {}
    for name, values in weights.items():
        if name.endswith("word_embeddings.weight"):
            values = values[keep]
        small[name] = values.astype(np.float16) if values.dtype == np.float32 else values
    save_file(small, str(out / "model.safetensors"))
    for name in COPIED:
        source = full / name
        if source.is_dir():
            shutil.copytree(source, out / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, out / name)
    return {"pieces": int(len(keep)), "full_pieces": len(vocab),
            "megabytes": round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2 ** 20, 1)}


def check(full: Path, small: Path, texts: list[str], prefix: str) -> dict:
    """Same pieces for every text; cosine of the small model's vectors to the full model's on a sample."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    big_tok, small_tok = Tokenizer.from_file(str(full / "tokenizer.json")), Tokenizer.from_file(str(small / "tokenizer.json"))
    same = all(a.tokens == b.tokens for a, b in zip(big_tok.encode_batch([prefix + t for t in texts]),
                                                   small_tok.encode_batch([prefix + t for t in texts])))
    sample = [prefix + t for t in texts[:: max(1, len(texts) // 200)]]
    a = SentenceTransformer(str(full), device="cpu", local_files_only=True).encode(sample, normalize_embeddings=True)
    b = SentenceTransformer(str(small), device="cpu", local_files_only=True,
                            model_kwargs={"dtype": "float32"}).encode(sample, normalize_embeddings=True)
    cosines = (a * b).sum(axis=1)
    return {"same_pieces": bool(same), "sample": len(sample), "min_cosine_to_full": round(float(cosines.min()), 6)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of the passage texts to embed")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--prefix", default="passage: ")
    parser.add_argument("--full", type=Path, default=FULL)
    args = parser.parse_args()
    texts = json.loads(args.texts.read_text())
    facts = compact(args.full, args.out, used_ids(args.full / "tokenizer.json", texts, args.prefix))
    facts.update(check(args.full, args.out, texts, args.prefix))
    print(json.dumps(facts))
    return 0 if facts["same_pieces"] else 1


if __name__ == "__main__":
    sys.exit(main())
