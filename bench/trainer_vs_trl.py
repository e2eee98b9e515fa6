"""Seconds per GRPO step: rlvr's trainer against TRL's GRPOTrainer at equal settings.

Same model (the embedded SmolLM2-135M-Instruct, fp32 weights), same prompts (2-digit addition), same
reward (rlvr's math verifier), same batch (8 prompts x 4 samples, 64 new tokens, temperature 1), same
algorithm (GRPO advantages, seq-mean-token-mean loss, one PPO epoch, no KL so no reference model),
same LR; ``--warmup`` steps are run first and not timed. Also prints the step's model FLOPs against
the machine's measured matmul peak (fp32 and bf16).

    pip install -e '.[bench]'        # TRL
    OMP_NUM_THREADS=2 python bench/trainer_vs_trl.py --steps 3 --warmup 1
    python bench/trainer_vs_trl.py --skip-trl          # rlvr only
    python bench/trainer_vs_trl.py --rlvr-bf16         # also rlvr with bf16 sampling + autocast

Step time is wall-clock of the whole step (generation + grading + update). On a shared machine the
numbers move with the load: run both back to back, and compare the ratio rather than the seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def matmul_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def run_rlvr(args, samples_spec: dict, out: Path, bf16: bool) -> dict:
    from rlvr.train.config import build_config
    from rlvr.train.logging import read_log
    from rlvr.train.loop import train

    cfg = build_config(
        {
            "model": {"name": "default", "autocast": "bfloat16" if bf16 else "none"},
            "data": samples_spec,
            "sampling": {"group_size": args.group, "max_new_tokens": args.max_new_tokens, "temperature": 1.0},
            "algo": {"recipe": "grpo"},
            "train": {
                "steps": args.warmup + args.steps,
                "lr": args.lr,
                "prompts_per_step": args.prompts,
                "seed": args.seed,
            },
            "log": {"tensorboard": False, "progress": False},
        }
    )
    train(cfg, out)
    log = read_log(out)[args.warmup :]
    return {
        "seconds_per_step": statistics.mean(r["time/step"] for r in log),
        "step_seconds": [r["time/step"] for r in log],
        "reward": statistics.mean(r["reward/mean"] for r in log),
        "tokens_per_step": statistics.mean(r["response_length/mean"] * r["rollouts/generated"] for r in log),
    }


def run_trl(args, samples, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.models.embedded import smollm2_path
    from rlvr.records import Sample
    from rlvr.verify import verify_samples

    path = str(smollm2_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": s.messages(), "answer": s.gold} for s in samples])

    def reward(completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        probes = [Sample(id=str(i), prompt="", verifier="math", gold=a) for i, a in enumerate(answer)]
        return [v.reward for v in verify_samples(probes, texts, workers=2)]

    class Timer(TrainerCallback):
        def __init__(self):
            self.starts, self.times, self.rewards, self.tokens = [], [], [], []

        def on_step_begin(self, *_a, **_k):
            self.starts.append(time.perf_counter())

        def on_step_end(self, *_a, **_k):
            self.times.append(time.perf_counter() - self.starts[-1])

        def on_log(self, _args, _state, _control, logs=None, **_k):
            if logs and "reward" in logs:
                self.rewards.append(logs["reward"])
                self.tokens.append(logs.get("completions/mean_length", 0.0) * args.prompts * args.group)

    timer = Timer()
    config = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.prompts * args.group,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        num_iterations=1,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        beta=0.0,
        loss_type="grpo",
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_grad_norm=1.0,
        max_steps=args.warmup + args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=args.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    times = timer.times[args.warmup :]
    return {
        "seconds_per_step": statistics.mean(times),
        "step_seconds": times,
        "reward": statistics.mean(timer.rewards[args.warmup :]),
        "tokens_per_step": statistics.mean(timer.tokens[args.warmup :]) if timer.tokens else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--rlvr-bf16", action="store_true", help="also run rlvr with model.autocast=bfloat16 (TRL stays fp32)"
    )
    p.add_argument("--skip-trl", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rlvr.data import load_task
    from rlvr.models import load_backend

    n_params = sum(p.numel() for p in load_backend("default").model.parameters())
    spec = {"task": "addition", "n": args.prompts * (args.warmup + args.steps), "seed": args.seed}
    samples = load_task("addition", n=spec["n"], seed=args.seed, split="train")

    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    print(
        f"threads {torch.get_num_threads()}; matmul peak fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f}"
    )

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["rlvr"] = run_rlvr(args, spec, Path(tmp) / "rlvr", bf16=False)
        if args.rlvr_bf16:
            results["rlvr-bf16"] = run_rlvr(args, spec, Path(tmp) / "rlvr-bf16", bf16=True)
        if not args.skip_trl:
            results["trl"] = run_trl(args, samples, Path(tmp) / "trl")

    for name, r in results.items():
        # sampling (2N FLOPs/token) + training forward and backward (6N FLOPs/token) over prompt-free
        # completion tokens: a lower bound of the model FLOPs, attention and prompt tokens left out.
        tokens = r["tokens_per_step"] or 0.0
        flops = 8 * n_params * tokens
        r["gflop_per_step"] = flops / 1e9
        r["achieved_gflops"] = flops / r["seconds_per_step"] / 1e9
        r["fraction_of_fp32_peak"] = r["achieved_gflops"] / peak["fp32"]
        print(
            f"{name:9s} {r['seconds_per_step']:7.1f} s/step  reward {r['reward']:.3f}  "
            f"{r['gflop_per_step']:.0f} GFLOP/step  {r['achieved_gflops']:.1f} GFLOP/s "
            f"({100 * r['fraction_of_fp32_peak']:.1f}% of fp32 peak)"
        )
    if "trl" in results:
        for name in [n for n in results if n.startswith("rlvr")]:
            ratio = results["trl"]["seconds_per_step"] / results[name]["seconds_per_step"]
            print(f"{name} is {ratio:.2f}x faster per step than TRL GRPOTrainer (fp32)")
            results[name]["speedup_vs_trl"] = ratio
    results["peak_gflops"] = peak
    results["settings"] = vars(args) | {"json": str(args.json) if args.json else None}
    if args.json:
        from rlvr.io import atomic_write_json

        atomic_write_json(args.json, results)
    else:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
