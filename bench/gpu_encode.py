"""Clauses/s of the clause encoder on a CUDA GPU, through qa's own encoder class (QA_DEVICE=cuda).

Runs on a GPU machine over a travelling copy of the model (``bench/device_model.py``) and the
texts it was cut for. Measures float32 and bfloat16 at batch 32 (the CPU default) and 256,
then embeds about a million clauses (the texts repeated) at the faster setting; checks the GPU
vectors against the same model on that machine's CPU; writes the float32 vectors of the texts
(float16 files) so a benchmark here can use real vectors without embedding them on 2 cores.

    QA_DEVICE=cuda python bench/gpu_encode.py --model .travel/model --texts .travel/texts.json.gz --out $OUT
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(encoder, texts: list[str]) -> tuple[np.ndarray, float]:
    import torch

    torch.cuda.synchronize()
    started = time.perf_counter()
    vectors = encoder.encode_passages(texts)
    torch.cuda.synchronize()
    return vectors, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--batches", default="32,256", help="batch sizes to compare")
    args = parser.parse_args()
    import torch

    from qa.encoders.st import SentenceTransformerEncoder

    texts = json.loads(gzip.decompress(args.texts.read_bytes()))
    os.environ["QA_DEVICE"] = "cuda"
    result = {"command": "QA_DEVICE=cuda python bench/gpu_encode.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "gpu": torch.cuda.get_device_name(0),
              "torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
              "texts": len(texts), "runs": []}
    best = None
    vectors32 = None
    for precision in ("fp32", "bf16"):
        encoder = SentenceTransformerEncoder(f"{args.model}@{precision}")
        assert encoder.device == "cuda", encoder.device
        encoder.encode_passages(texts[:1024])  # warm-up: kernels, allocator
        for batch in (int(b) for b in args.batches.split(",")):
            encoder.batch_size = batch
            vectors, seconds = timed(encoder, texts)
            run = {"precision": encoder.describe()["precision"], "batch": batch, "seconds": round(seconds, 2),
                   "clauses_per_s": round(len(texts) / seconds)}
            result["runs"].append(run)
            print(json.dumps(run), flush=True)
            if precision == "fp32":
                vectors32 = vectors
            if best is None or run["clauses_per_s"] > best[0]["clauses_per_s"]:
                best = (run, precision, batch)
        if precision == "bf16":
            result["bf16_min_cosine_to_fp32"] = round(float((vectors * vectors32).sum(axis=1).min()), 5)
        del encoder
        torch.cuda.empty_cache()
    # the same class on this machine's CPU, for a sample: do the GPU vectors agree?
    os.environ["QA_DEVICE"] = "cpu"
    cpu = SentenceTransformerEncoder(f"{args.model}@fp32")
    sample = list(range(0, len(texts), max(1, len(texts) // 500)))
    on_cpu = cpu.encode_passages([texts[i] for i in sample])
    result["cuda_vs_cpu"] = {"sample": len(sample),
                             "min_cosine": round(float((on_cpu * vectors32[sample]).sum(axis=1).min()), 6)}
    del cpu
    os.environ["QA_DEVICE"] = "cuda"
    run, precision, batch = best
    encoder = SentenceTransformerEncoder(f"{args.model}@{precision}")
    encoder.batch_size = batch
    many = (texts * (args.million // len(texts) + 1))[:args.million]
    encoder.encode_passages(texts[:1024])
    _, seconds = timed(encoder, many)
    result["million"] = {"clauses": len(many), "precision": precision, "batch": batch, "seconds": round(seconds, 1),
                         "clauses_per_s": round(len(many) / seconds),
                         "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2 ** 20)}
    print(json.dumps(result["million"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    half = len(texts) // 2
    np.save(args.out / "vectors-1.npy", vectors32[:half].astype(np.float16))
    np.save(args.out / "vectors-2.npy", vectors32[half:].astype(np.float16))
    (args.out / "gpu-encode.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
