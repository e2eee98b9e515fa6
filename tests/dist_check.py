"""Run under ``torchrun --nproc_per_node 2``: one update on a fixed batch split across the processes
must equal a single process's update on the whole batch. Writes a JSON verdict from rank 0.

    torchrun --nproc_per_node 2 tests/dist_check.py {ddp|fsdp2} MODEL_DIR OUT.json
"""

from __future__ import annotations

import json
import sys

import torch

from rlvr.models import load_backend
from rlvr.records import Sample, Verdict
from rlvr.train import distributed
from rlvr.train.config import build_config
from rlvr.train.loop import Rollouts, batch_advantages, update


def make_batch(backend) -> Rollouts:
    """2 prompts x 4 completions of mixed lengths, rewards with signal in both groups."""
    g = torch.Generator().manual_seed(0)
    prompts = [backend.encode_prompt(f"Question {i}: what is {i} plus {i}?") for i in range(2)]
    rows = [(i, j) for i in range(2) for j in range(4)]
    completions = [
        torch.randint(5, 200, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist()
        for _ in rows
    ]
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    return Rollouts(
        samples=[Sample(id=str(i), prompt="", verifier="math", gold="0") for i, _ in rows],
        texts=["" for _ in rows],
        prompt_ids=[prompts[i] for i, _ in rows],
        completion_ids=completions,
        behaviour_logp=None,
        truncated=torch.zeros(8, dtype=torch.bool),
        verdicts=[Verdict(float(r), "correct" if r else "incorrect") for r in rewards.tolist()],
        rewards=rewards,
        format_rewards=torch.zeros(8),
        valid=torch.ones(8, dtype=torch.bool),
    )


def main() -> None:
    strategy, model_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    results = {}
    for name, extra in {
        "one_pass_accumulated": {"micro_batch_size": 2},
        "plain": {},
        "two_epochs": {"ppo_epochs": 2},
        "clipped": {"max_grad_norm": 0.5},  # the global norm (about 1.7) is clipped
    }.items():
        max_grad_norm = extra.pop("max_grad_norm", None)
        cfg = build_config(
            {
                "model": {"name": model_dir},
                "sampling": {"group_size": 4, "max_new_tokens": 8},
                "algo": {"recipe": "grpo", "loss_agg": "token_mean"},
                "optim": {"eps": 1.0, "max_grad_norm": max_grad_norm},  # steps proportional to the gradient
                "train": {"lr": 10.0, "prompts_per_step": 2, "parallel": strategy, **extra},
                "log": {"tensorboard": False, "progress": False},
            }
        )
        d = distributed.setup(strategy, "cpu", cfg.train.prompts_per_step)
        # The reference: this process alone, the whole batch.
        single = load_backend(model_dir)
        full = make_batch(single)
        opt = torch.optim.AdamW(single.model.parameters(), lr=cfg.train.lr, eps=1.0)
        ref_stats = update(cfg, single, full, batch_advantages(cfg, full), None, opt, 0)
        # The processes, each with its half.
        backend = load_backend(model_dir)
        distributed.wrap(d, backend)
        opt = torch.optim.AdamW(backend.model.parameters(), lr=cfg.train.lr, eps=1.0)
        mine = full.select(list(range(4 * d.rank, 4 * d.rank + 4)))
        stats = update(cfg, backend, mine, batch_advantages(cfg, mine, d), None, opt, 0, d)
        loss = d.sum(stats["loss"])  # each process's loss is its share of the whole batch's
        trained = distributed.full_state_dict(d, backend) or backend.model.state_dict()
        if not d.main:  # FSDP2 gathers the whole weights on rank 0 only
            continue
        expected = single.model.state_dict()
        start = load_backend(model_dir).model.state_dict()
        diff = max(float((trained[k].float() - expected[k]).abs().max()) for k in expected)
        moved = max(float((expected[k] - start[k]).abs().max()) for k in expected)
        results[name] = {
            "max_weight_diff": diff,
            "max_weight_change": moved,
            "loss": loss,
            "loss_single": ref_stats["loss"],
            "grad_norm": stats["grad_norm"],
            "grad_norm_single": ref_stats["grad_norm"],
            "optimizer_steps": stats["optimizer_steps"],
            "world": d.world,
        }
    if d.main:
        with open(out, "w") as f:
            json.dump(results, f)
    distributed.shutdown(d)


if __name__ == "__main__":
    main()
