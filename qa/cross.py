"""A cross-encoder second stage: reads the question and each top clause together.

The first stage compares a question vector with clause vectors made apart, plus word counts.
A cross-encoder attends across the pair, so it can tell a clause that answers from one that only
shares the words. Ours is the bundled multilingual-e5-small cut to its first few layers, with a
LoRA adapter and a linear head over the mean token vector, trained by
``bench/train_reranker.py`` (``qa/models/cross-policy/``: the adapter, the head and a card with
their sha256, data, licences, command, seed, hardware and figures).

At query time it runs through ONNX Runtime on the CPU: the adapter is merged into the cut model
and exported once to ``index/models/onnx/cross-<digest>/``; word vectors are read from the base
folder's table as the query encoder reads them. A missing, truncated or foreign file is an error
naming the file and the way out (``--rerank learned`` or ``off`` answer without this stage).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependency, QAError
from .store import replace_folder, verify_card

log = logging.getLogger(__name__)

ADAPTER = Path(__file__).resolve().parent / "models" / "cross-policy"
#: A site's own retrained adapter, kept outside the checkout (``make reranker`` writes over ADAPTER).
ADAPTER_ENV = "QA_CROSS_ADAPTER"
HEAD = "head.safetensors"
CARD = "card.json"
GRAPH = "cross.onnx"
INFO = "export.json"
MAX_TOKENS = 96  #: question and clause together, cut from the longer side
LORA_TARGETS = ("query", "key", "value", "dense")  # every linear layer of attention and feed-forward
OPSET = 17
RETRAIN = ("retrain it with `python bench/train_reranker.py` (see its card), restore it with "
           "`git checkout qa/models/cross-policy`, or answer without it: --rerank learned")


class CrossError(QAError):
    """The cross-encoder's files are missing or are not the ones its card describes."""


def pair_tokenizer(path: Path):
    """The model's tokenizer set to encode (question, clause) pairs of at most ``MAX_TOKENS``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS, strategy="longest_first")
    return tokenizer


def encode_pairs(tokenizer, questions: list[str], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, (pairs, longest), padded with the tokenizer's pad id."""
    encodings = tokenizer.encode_batch(list(zip(questions, texts)))
    pad = tokenizer.token_to_id("<pad>") or 0
    width = max((len(e.ids) for e in encodings), default=1)
    ids = np.full((len(encodings), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return ids, mask


def _torch_module():
    import torch

    class CrossModel(torch.nn.Module):
        """The cut transformer and the head: ``forward(ids, mask)`` or ``from_embeds(vectors, mask)``."""

        def __init__(self, encoder, seed: int) -> None:
            super().__init__()
            self.encoder = encoder
            generator = torch.Generator().manual_seed(seed)
            self.head = torch.nn.Linear(encoder.config.hidden_size, 1)
            with torch.no_grad():
                self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=generator) * 0.02)
                self.head.bias.zero_()

        @classmethod
        def from_folder(cls, folder: Path, layers: int, seed: int = 0) -> "CrossModel":
            from transformers import BertModel
            from transformers.utils import logging as hf_logging

            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # the checkpoint's layers past ``layers`` are not news
            try:
                encoder = BertModel.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager",
                                                    add_pooling_layer=False, local_files_only=True)
            finally:
                hf_logging.set_verbosity(verbosity)
            if not 1 <= layers <= encoder.config.num_hidden_layers:
                raise QAError(f"the cross-encoder wants {layers} layers; {folder} has "
                              f"{encoder.config.num_hidden_layers}")
            encoder.encoder.layer = encoder.encoder.layer[:layers]
            encoder.config.num_hidden_layers = layers
            return cls(encoder, seed)

        def pooled(self, hidden, mask):
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)).squeeze(-1)

        def forward(self, ids, mask):
            return self.pooled(self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

        def from_embeds(self, vectors, mask):
            return self.pooled(self.encoder(inputs_embeds=vectors, attention_mask=mask).last_hidden_state, mask)

    return CrossModel


def build_model(folder: Path, layers: int, seed: int = 0):
    """The torch model (untrained head): ``folder``'s transformer cut to ``layers`` layers."""
    return _torch_module().from_folder(folder, layers, seed)


def check(adapter: Path = ADAPTER) -> dict[str, Any]:
    """The card, after checking every file it names against its sha256."""
    return verify_card(adapter / CARD, "the cross-encoder", RETRAIN, CrossError)


def seal(folder: Path, card: dict[str, Any]) -> None:
    """Write ``card`` with the sha256 of the adapter's and the head's files."""
    from .store import file_sha256

    card["files"] = {name: file_sha256(folder / name)
                     for name in ("adapter_config.json", "adapter_model.safetensors", HEAD)}
    (folder / CARD).write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")


def merged(base: Path, adapter: Path = ADAPTER, card: dict[str, Any] | None = None):
    """The torch model: ``base`` cut to the card's layers, the adapter merged in, the head loaded.

    ``card``: the adapter's card as ``check`` returned it, when the caller has just checked it
    (the 5 MB adapter is then not hashed a second time)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    card = card if card is not None else check(adapter)
    model = build_model(base, int(card["layers"]))
    model.encoder = PeftModel.from_pretrained(model.encoder, str(adapter)).merge_and_unload()
    model.head.load_state_dict(load_file(str(adapter / HEAD)))
    return model.eval()


def export(adapter: Path = ADAPTER, force: bool = False) -> Path:
    """The ONNX graph's folder for the checked adapter (exported once, about 10 s)."""
    from .encoders.adapted import adapter_sha256
    from .encoders.e5_convert import build_st_folder, default_target

    card = check(adapter)
    digest = adapter_sha256(card)
    base = build_st_folder(default_target())
    target = base.parent / "onnx" / f"cross-{digest[:16]}"
    if not force and _is_current(target, digest):
        return target
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import torch
    except ImportError as exc:
        raise MissingDependency("onnx") from exc
    started = time.monotonic()
    model = merged(base, adapter, card)

    class FromEmbeds(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, vectors, mask):
            return self.inner.from_embeds(vectors, mask)

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.exporting-", dir=target.parent))
    os.chmod(work, 0o755)
    try:
        hidden = model.encoder.config.hidden_size
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(FromEmbeds(model), (torch.randn(2, 5, hidden), torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])),
                              str(work / GRAPH), input_names=["inputs_embeds", "attention_mask"],
                              output_names=["score"],
                              dynamic_axes={"inputs_embeds": {0: "pairs", 1: "tokens"},
                                            "attention_mask": {0: "pairs", 1: "tokens"}, "score": {0: "pairs"}},
                              opset_version=OPSET, dynamo=False)
        info = {"adapter_sha256": digest, "base": str(base), "layers": card["layers"],
                "graph_bytes": (work / GRAPH).stat().st_size, "torch": torch.__version__,
                "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (work / INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")
        replace_folder(work, target, lambda: _is_current(target, digest))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("exported the cross-encoder to %s in %.1fs", target, time.monotonic() - started)
    return target


def blend(learned: np.ndarray, best: np.ndarray, judged: np.ndarray, weight: float) -> np.ndarray:
    """The ranker's scores with its ``best`` candidates (positions into ``learned``) moved up by the
    cross-encoder's ``judged`` logits for them: logit + ``weight`` x the ranker's score, above all
    the others, which keep their order below. The product and the bench scripts that choose
    depth and weight both score this way."""
    blended = judged + weight * learned[best]
    out = learned - learned.max() + blended.min() - 1.0
    out[best] = blended
    return out


def _is_current(target: Path, digest: str) -> bool:
    try:
        info = json.loads((target / INFO).read_text(encoding="utf-8"))
        return info.get("adapter_sha256") == digest and (target / GRAPH).stat().st_size == info.get("graph_bytes")
    except (OSError, ValueError, AttributeError):
        return False


class CrossEncoder:
    """``scores(question, texts)``: one logit per clause, higher answers better."""

    def __init__(self, adapter: Path = ADAPTER) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependency("onnxruntime") from exc
        from .encoders.e5_convert import default_target
        from .encoders.onnxrt import word_embeddings

        graph = export(adapter)  # checks the files against the card first
        base = Path(json.loads((graph / INFO).read_text(encoding="utf-8"))["base"])
        if not base.is_dir():
            base = default_target()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the query encoder
        self._session = ort.InferenceSession(str(graph / GRAPH), options, providers=["CPUExecutionProvider"])
        self._table = word_embeddings(base)
        self._tokenizer = pair_tokenizer(base / "tokenizer.json")

    def scores(self, question: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        ids, mask = encode_pairs(self._tokenizer, [question] * len(texts), texts)
        vectors = np.asarray(self._table[ids], dtype=np.float32)
        return self._session.run(None, {"inputs_embeds": vectors, "attention_mask": mask})[0].astype(np.float64)


def adapter_folder() -> Path:
    """The adapter the stage uses: the folder ``QA_CROSS_ADAPTER`` names, else the committed one."""
    chosen = os.environ.get(ADAPTER_ENV, "").strip()
    return Path(chosen).expanduser() if chosen else ADAPTER


@lru_cache(maxsize=1)
def shipped() -> CrossEncoder:
    """The cross-encoder of ``adapter_folder()`` (checked against its card), loaded once per process."""
    return CrossEncoder(adapter_folder())
