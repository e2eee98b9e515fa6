"""Generation throughput of an rlvr backend: new tokens per second for a batch of chat prompts.

    python bench/generate.py --model default --batch 16 --new-tokens 64 --dtype float32 bfloat16
    python bench/generate.py --logprob-gap      # fp32 vs bf16 log-probs of the same sampled tokens
    python bench/generate.py --score-memory rlvr  # peak memory of a scoring forward+backward (or: plain)

Every sequence is forced to run the full ``--new-tokens`` (EOS ignored) so runs are comparable.
``--compare-hf`` also times ``model.generate`` from transformers on the same batch.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from rlvr.models import SamplingParams, load_backend

PROMPTS = [
    "What is 2+3?",
    "Solve for x: 3x + 4 = 19.",
    "Name three prime numbers larger than 10.",
    "If a train travels 60 km in 45 minutes, what is its speed in km/h?",
    "Write a Python function that reverses a string.",
    "What is the derivative of x^3?",
    "How many minutes are there in a day?",
    "Is 91 a prime number? Explain briefly.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, default=16, help="sequences decoded together")
    ap.add_argument("--n", type=int, default=1, help="samples per prompt (prompts = batch / n)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument(
        "--repeats", type=int, default=2, help="timed runs after a short warm-up; the best is kept"
    )
    ap.add_argument("--compare-hf", action="store_true", help="also time transformers' model.generate")
    ap.add_argument(
        "--logprob-gap",
        action="store_true",
        help="instead: compare fp32 and bf16 log-probs of sampled tokens",
    )
    ap.add_argument(
        "--score-memory",
        choices=["rlvr", "plain"],
        help="instead: peak memory of one scoring forward+backward (batch x 40 prompt + 128 completion "
        "tokens) with sequence_logprobs, or with plain full logits; run each in its own process",
    )
    args = ap.parse_args()
    if args.batch % args.n:
        ap.error("--batch must be a multiple of --n")
    if args.logprob_gap:
        logprob_gap(args.model, args.new_tokens)
        return
    if args.score_memory:
        score_memory(args.model, args.score_memory, args.batch)
        return

    for dtype in args.dtype:
        backend = load_backend(args.model, dtype=dtype, seed=0)
        backend.eos_token_ids = set()  # decode the full length every time
        n_prompts = args.batch // args.n
        prompts = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(n_prompts)]

        def rlvr_run(new_tokens: int, prompts=prompts, backend=backend) -> int:
            params = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=new_tokens, seed=0)
            return sum(len(g.completion_ids) for g in backend.generate(prompts, params))

        def hf_run(new_tokens: int, prompts=prompts, backend=backend) -> int:
            return _hf_generate(backend, prompts, args.n, new_tokens)

        row = {"model": backend.name, "dtype": dtype, "batch": args.batch, "n": args.n}
        row["rlvr_tok_s"] = _best_rate(rlvr_run, args.new_tokens, args.repeats)
        if args.compare_hf:
            row["hf_generate_tok_s"] = _best_rate(hf_run, args.new_tokens, args.repeats)
        row["threads"] = torch.get_num_threads()
        print(json.dumps(row), flush=True)


def logprob_gap(model: str, new_tokens: int) -> None:
    """Sample 4 x 4 completions with fp32 weights, score them with fp32 and bf16 weights, compare."""
    fp32, bf16 = load_backend(model), load_backend(model, dtype="bfloat16")
    prompts = [[{"role": "user", "content": q}] for q in PROMPTS[:4]]
    gens = fp32.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=new_tokens, seed=0))
    prompt_ids, completion_ids = [g.prompt_ids for g in gens], [g.completion_ids for g in gens]
    lp32, mask, _ = fp32.sequence_logprobs(prompt_ids, completion_ids)
    lp16, _, _ = bf16.sequence_logprobs(prompt_ids, completion_ids)
    sampled = torch.zeros_like(lp32)
    for r, g in enumerate(gens):
        sampled[r, : len(g.logprobs)] = torch.tensor(g.logprobs)
    gap = (lp32 - lp16).abs() * mask
    row = {
        "tokens": int(mask.sum()),
        "mean_abs_fp32_bf16": round(float(gap.sum() / mask.sum()), 4),
        "max_abs_fp32_bf16": round(float(gap.max()), 4),
        "mean_abs_sampling_vs_scoring_fp32": float(((lp32 - sampled).abs() * mask).sum() / mask.sum()),
    }
    print(json.dumps(row), flush=True)


def score_memory(model: str, how: str, batch: int, prompt_len: int = 40, completion_len: int = 128) -> None:
    """Peak resident memory and time of log-probs + entropy, forward and backward, on random tokens."""
    backend = load_backend(model)
    gen = torch.Generator().manual_seed(0)
    vocab = backend.model.config.vocab_size
    prompts = torch.randint(100, vocab, (batch, prompt_len), generator=gen).tolist()
    completions = torch.randint(100, vocab, (batch, completion_len), generator=gen).tolist()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if how == "rlvr":
        logp, mask, entropy = backend.sequence_logprobs(prompts, completions, grad=True, return_entropy=True)
        loss = -(logp * mask).sum() / mask.sum() - 0.01 * (entropy * mask).sum() / mask.sum()
    else:  # the whole [B, T, V] logits tensor, as a plain training loop would hold it
        ids = torch.tensor([p + c for p, c in zip(prompts, completions, strict=True)])
        logits = backend.model(input_ids=ids).logits[:, prompt_len - 1 : -1].float()
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, torch.tensor(completions)[..., None]).squeeze(-1)
        loss = -logp.mean() + 0.01 * (logp_all.exp() * logp_all).sum(-1).mean()
    loss.backward()
    row = {
        "how": how,
        "batch": batch,
        "prompt_tokens": prompt_len,
        "completion_tokens": completion_len,
        "peak_rss_above_model_gb": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1e6, 2
        ),
        "seconds": round(time.perf_counter() - t, 1),
        "loss": round(loss.item(), 5),
    }
    print(json.dumps(row), flush=True)


def _best_rate(fn, new_tokens: int, repeats: int) -> float:
    fn(4)  # warm-up: first calls allocate and pick kernels
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        tokens = fn(new_tokens)
        best = max(best, tokens / (time.perf_counter() - t))
    return round(best, 1)


@torch.inference_mode()
def _hf_generate(backend, prompts, n: int, new_tokens: int) -> int:
    tok = backend.tokenizer
    tok.padding_side = "left"
    texts = [backend.apply_chat_template(p) for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = backend.model.generate(
        **enc,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        num_return_sequences=n,
        pad_token_id=backend.pad_token_id,
    )
    return (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]


if __name__ == "__main__":
    main()
