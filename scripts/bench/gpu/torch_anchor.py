#!/usr/bin/env python3
"""PyTorch anchor for the embedctl GPU benchmark (issue 10).

A `transformers` BertModel built from a config of the same sizes as the ONNX models that
scripts/bench/gpu/bench.ts generates (random weights: speed only, the outputs mean nothing),
timed on the same batch x sequence grid in fp32 and fp16. Each timed step is what the runtime
does per batch: the encoder forward, masked mean pooling and L2 normalisation, with the pooled
[batch, hidden] result left on the device (the ONNX side also copies last_hidden_state to the
host and pools in JS; bench.ts reports that part separately as poolMs).

    python3 scripts/bench/gpu/torch_anchor.py --out torch-anchor.json          (GPU machine)
    python3 scripts/bench/gpu/torch_anchor.py --quick --device cpu --out x.json (CPU smoke run)

CUDA timing uses CUDA events around each step after warm-up runs; CPU timing uses
time.perf_counter. Writes one JSON document, schema embedctl.bench.torch/v1.
Exit codes: 0 done, 1 torch or transformers missing, or no CUDA device with --device cuda, 2 bad flags.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone

SCHEMA = "embedctl.bench.torch/v1"

SHAPES = {
    "minilm": dict(layers=6, hidden=384, heads=12, intermediate=1536, vocab=30522, max_positions=512),
    "bert-base": dict(layers=12, hidden=768, heads=12, intermediate=3072, vocab=30522, max_positions=512),
    "tiny": dict(layers=2, hidden=32, heads=2, intermediate=64, vocab=1000, max_positions=64),
}


def int_list(raw, flag, minimum=1):
    try:
        out = [int(s) for s in raw.split(",") if s.strip()]
    except ValueError:
        out = []
    if not out or any(n < minimum for n in out):
        raise SystemExit2(f"{flag}: expected a comma-separated list of whole numbers >= {minimum}, got {raw!r}")
    return out


class SystemExit2(Exception):
    pass


def parse(argv):
    p = argparse.ArgumentParser(description="PyTorch BertModel anchor for scripts/bench/gpu/bench.ts")
    p.add_argument("--quick", action="store_true", help="tiny shape, tiny grid (CPU smoke run)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--shapes", help="comma-separated: minilm,bert-base,tiny")
    p.add_argument("--batches")
    p.add_argument("--seqs")
    p.add_argument("--dtypes", help="fp32,fp16 (fp16 only on cuda)")
    p.add_argument("--min-ms", type=float)
    p.add_argument("--min-iters", type=int)
    p.add_argument("--warmup", type=int)
    p.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="attention implementation")
    p.add_argument("--out", default="torch-anchor.json")
    a = p.parse_args(argv)
    q = a.quick
    a.shapes = [s.strip() for s in (a.shapes or ("tiny" if q else "minilm,bert-base")).split(",") if s.strip()]
    for s in a.shapes:
        if s not in SHAPES:
            raise SystemExit2(f"--shapes: unknown shape {s!r}; use {', '.join(SHAPES)}")
    a.batches = int_list(a.batches or ("1,4" if q else "1,8,32,128"), "--batches")
    a.seqs = int_list(a.seqs or ("8,32" if q else "16,128,512"), "--seqs", 3)
    for s in a.shapes:
        over = [n for n in a.seqs if n > SHAPES[s]["max_positions"]]
        if over:
            raise SystemExit2(f"--seqs: {over[0]} is longer than shape {s} takes ({SHAPES[s]['max_positions']} positions)")
    a.dtypes = [d.strip() for d in (a.dtypes or "fp32,fp16").split(",") if d.strip()]
    for d in a.dtypes:
        if d not in ("fp32", "fp16"):
            raise SystemExit2(f"--dtypes: unknown dtype {d!r}; use fp32, fp16")
    a.min_ms = a.min_ms if a.min_ms is not None else (50.0 if q else 1000.0)
    a.min_iters = a.min_iters if a.min_iters is not None else (2 if q else 10)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 3)
    return a


def main(argv):
    try:
        a = parse(argv)
    except SystemExit2 as e:
        print(f"torch_anchor: {e}", file=sys.stderr)
        return 2
    try:
        import torch
        import transformers
        from transformers import BertConfig, BertModel
    except ImportError as e:
        print(
            f"torch_anchor: needs PyTorch and transformers ({e}); on the GPU machine the plain python3 has both,"
            " elsewhere: pip install torch transformers",
            file=sys.stderr,
        )
        return 1

    device = a.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print("torch_anchor: --device cuda, but torch.cuda.is_available() is False (no GPU or no CUDA build of torch)", file=sys.stderr)
        return 1
    dtypes = [d for d in a.dtypes if d == "fp32" or device == "cuda"]
    skipped = [d for d in a.dtypes if d not in dtypes]
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as onnxruntime's CUDA default
    torch.backends.cudnn.allow_tf32 = False

    doc = {
        "schema": SCHEMA,
        "startedAt": datetime.now(timezone.utc).isoformat(),
        "finishedAt": None,
        "complete": False,
        "quick": a.quick,
        "device": {
            "kind": device,
            "name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
            "cudaRuntime": torch.version.cuda,
            "cpuCount": os.cpu_count(),
            "torchThreads": torch.get_num_threads(),
        },
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attnImplementation": a.attn,
        "requested": {"batches": a.batches, "seqs": a.seqs, "dtypes": a.dtypes, "minMs": a.min_ms, "minIters": a.min_iters, "warmup": a.warmup},
        "skippedDtypes": skipped,
        "notes": [
            "step = BertModel forward + masked mean pooling + L2 normalise, output left on the device",
            "random weights, input ids uniform over the vocabulary, attention mask all ones",
            "tf32 disabled for fp32",
        ],
        "results": [],
        "errors": [],
    }

    def write():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, a.out)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def time_step(step):
        for _ in range(a.warmup):
            step()
        sync()
        times = []
        t_start = time.perf_counter()
        while len(times) < a.min_iters or (time.perf_counter() - t_start) * 1000 < a.min_ms:
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                s = time.perf_counter()
                step()
                times.append((time.perf_counter() - s) * 1000)
        times.sort()
        return {
            "iters": len(times),
            "medianMs": round(statistics.median(times), 4),
            "p10Ms": round(times[int(len(times) * 0.1)], 4),
            "p90Ms": round(times[min(len(times) - 1, int(len(times) * 0.9))], 4),
        }

    write()
    for shape_name in a.shapes:
        s = SHAPES[shape_name]
        config = BertConfig(
            vocab_size=s["vocab"],
            hidden_size=s["hidden"],
            num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"],
            intermediate_size=s["intermediate"],
            max_position_embeddings=s["max_positions"],
            hidden_act="gelu",
            attn_implementation=a.attn,
        )
        for dtype_name in dtypes:
            dtype = torch.float16 if dtype_name == "fp16" else torch.float32
            try:
                model = BertModel(config, add_pooling_layer=False).to(device=device, dtype=dtype).eval()
            except Exception as e:  # noqa: BLE001 - report and go on with the next shape
                doc["errors"].append(f"{shape_name} {dtype_name}: {type(e).__name__}: {str(e).splitlines()[0]}")
                continue
            for seq in a.seqs:
                for b in a.batches:
                    ids = torch.randint(0, s["vocab"], (b, seq), device=device)
                    mask = torch.ones((b, seq), dtype=torch.long, device=device)
                    types = torch.zeros((b, seq), dtype=torch.long, device=device)

                    def step():
                        with torch.inference_mode():
                            h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
                            m = mask.unsqueeze(-1).to(h.dtype)
                            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
                            return torch.nn.functional.normalize(pooled.float(), dim=-1)

                    try:
                        t = time_step(step)
                    except Exception as e:  # noqa: BLE001 - out of memory at one cell should not lose the rest
                        doc["errors"].append(f"{shape_name} {dtype_name} b={b} seq={seq}: {type(e).__name__}: {str(e).splitlines()[0]}")
                        if device == "cuda":
                            torch.cuda.empty_cache()
                        continue
                    eps = b * 1000.0 / t["medianMs"]
                    doc["results"].append({"shape": shape_name, "dtype": dtype_name, "batch": b, "seq": seq, **t, "embeddingsPerSec": round(eps, 1), "tokensPerSec": round(eps * seq)})
                    print(f"torch_anchor {shape_name} {dtype_name} b={b} seq={seq}: {t['medianMs']:.3f} ms, {eps:.0f} emb/s", file=sys.stderr, flush=True)
                    write()
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
    doc["finishedAt"] = datetime.now(timezone.utc).isoformat()
    doc["complete"] = not doc["errors"]
    write()
    print(f"torch_anchor: wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
