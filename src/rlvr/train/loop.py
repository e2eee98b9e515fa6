"""The training loop, top to bottom.

One step:

1. draw ``prompts_per_step`` prompts (a seeded, epoch-wise shuffled order whose position is checkpointed);
2. sample ``group_size`` completions of each with the policy, grade them with the verifier;
3. turn verdicts into rewards (failure policy, format reward, soft overlong punishment, KL penalty);
4. dynamic sampling: drop groups whose rewards are all equal and draw more prompts, a bounded number of rounds;
5. advantages from the group rewards; overlong and failed completions are masked out of the loss;
6. ``ppo_epochs`` passes over the rollouts in minibatches (gradient accumulation over micro-batches,
   gradient clipping, one LR-schedule step per training step);
7. give the sampler the new weights; log the step, checkpoint every ``save_every`` steps.

The sampler is the policy itself (``rollout.engine: local``), Ray rollout actors or a vLLM engine
(:func:`build_sampler`). With ``rollout.asynchronous`` a background thread samples step t+1 with the
pre-update weights while step t's update runs (one step off-policy, truncated IS). Under torchrun
every process runs this loop on its share of the prompts (:mod:`rlvr.train.distributed`).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlvr.algo.advantages import compute_advantages
from rlvr.algo.filters import (
    format_reward,
    keep_groups_with_variance,
    overlong_mask,
    soft_overlong_penalty,
    verdict_rewards,
)
from rlvr.algo.losses import aggregate, kl_estimate, policy_loss
from rlvr.io import atomic_write_json
from rlvr.records import STATUSES, Sample, Verdict
from rlvr.train.checkpoint import latest_checkpoint, rng_state, save_checkpoint, set_rng_state
from rlvr.train.config import RunConfig
from rlvr.train.distributed import Dist
from rlvr.train.logging import MetricsLogger, Progress
from rlvr.train.manifest import build_manifest
from rlvr.train.sft import rft_keep, rft_loss


class RunExistsError(RuntimeError):
    """The run folder already holds a run and ``resume`` was not asked for."""


@dataclass
class TrainResult:
    last: dict[str, Any]  # the last step's log record ({} when no step ran)
    backend: Any  # the trained policy, ready to evaluate
    run_dir: Path


# --------------------------------------------------------------------------------------------------
# Seeds and data order
# --------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A well-mixed 31-bit seed for one (run seed, step, round, ...) combination."""
    return int(np.random.SeedSequence([p % 2**32 for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


class PromptStream:
    """Training prompts in a seeded order: each epoch is a fresh permutation; the position is saved."""

    def __init__(self, n: int, seed: int):
        if n == 0:
            raise ValueError("the training task has no samples")
        self.n, self.seed = n, seed
        self.epoch, self.index = 0, 0

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            order = self._order(self.epoch)
            take = min(k - len(out), self.n - self.index)
            out.extend(int(i) for i in order[self.index : self.index + take])
            self.index += take
            if self.index == self.n:
                self.epoch, self.index = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index, "n": self.n, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["n"] != self.n or state["seed"] != self.seed:
            raise ValueError(
                f"checkpoint data position is for {state['n']} samples with seed {state['seed']}, "
                f"but this run has {self.n} samples with seed {self.seed}"
            )
        self.epoch, self.index = state["epoch"], state["index"]


# --------------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------------


@dataclass
class Rollouts:
    """A step's completions, flattened group by group (``group_size`` consecutive rows per prompt)."""

    samples: list[Sample]  # one per row (repeated within a group)
    texts: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    behaviour_logp: list[list[float]] | None  # the sampler's per-token log-probs
    truncated: Tensor  # Bool[B]
    verdicts: list[Verdict]
    rewards: Tensor  # [B] the reward the advantages are computed from
    format_rewards: Tensor  # [B]
    valid: Tensor  # Bool[B]: rows that take part in the loss

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, rows: list[int]) -> Rollouts:
        idx = torch.tensor(rows, dtype=torch.long)
        return Rollouts(
            samples=[self.samples[i] for i in rows],
            texts=[self.texts[i] for i in rows],
            prompt_ids=[self.prompt_ids[i] for i in rows],
            completion_ids=[self.completion_ids[i] for i in rows],
            behaviour_logp=None if self.behaviour_logp is None else [self.behaviour_logp[i] for i in rows],
            truncated=self.truncated[idx],
            verdicts=[self.verdicts[i] for i in rows],
            rewards=self.rewards[idx],
            format_rewards=self.format_rewards[idx],
            valid=self.valid[idx],
        )

    @staticmethod
    def concat(parts: list[Rollouts]) -> Rollouts:
        first = parts[0]
        return (
            Rollouts(
                samples=[s for p in parts for s in p.samples],
                texts=[t for p in parts for t in p.texts],
                prompt_ids=[x for p in parts for x in p.prompt_ids],
                completion_ids=[x for p in parts for x in p.completion_ids],
                behaviour_logp=None
                if any(p.behaviour_logp is None for p in parts)
                else [x for p in parts for x in p.behaviour_logp],  # type: ignore[union-attr]
                truncated=torch.cat([p.truncated for p in parts]),
                verdicts=[v for p in parts for v in p.verdicts],
                rewards=torch.cat([p.rewards for p in parts]),
                format_rewards=torch.cat([p.format_rewards for p in parts]),
                valid=torch.cat([p.valid for p in parts]),
            )
            if len(parts) > 1
            else first
        )


def prepare_backend(cfg: RunConfig, backend: Any) -> Any:
    """Apply the run's precision to a loaded policy.

    With ``model.autocast: bfloat16`` the policy samples from a bf16 copy of its weights (refreshed
    after every update) and the loss passes run under bf16 autocast; weights and AdamW stay fp32.
    """
    if hasattr(backend, "set_sampling_dtype"):
        backend.set_sampling_dtype(torch.bfloat16 if cfg.model.autocast == "bfloat16" else None)
    return backend


def build_sampler(cfg: RunConfig, backend: Any, d: Dist) -> Any:
    """The backend that samples: the policy itself, Ray rollout actors, or a vLLM engine.

    A separate engine starts from the policy's weights and gets them again after every update. The
    asynchronous mode with the local engine samples from a copy of the weights, so that sampling can
    run while the update changes the policy.
    """
    engine, r = cfg.rollout.engine, cfg.rollout
    if engine == "local":
        if r.asynchronous and hasattr(backend, "set_sampling_dtype") and not backend.has_sampling_copy:
            backend.set_sampling_dtype(None, copy_always=True)
        return backend
    if engine == "ray":
        from rlvr.models.ray_rollout import RayRolloutPool

        sampler = RayRolloutPool(
            cfg.model.name,
            workers=r.workers,
            dtype=cfg.model.dtype,
            sampling_dtype="bfloat16" if cfg.model.autocast == "bfloat16" else None,
            address=r.ray_address,
            timeout=r.timeout,
            threads_per_worker=r.threads_per_worker,
            cpus_per_worker=r.cpus_per_worker,
            seed=cfg.train.seed + d.rank,
        )
    else:
        from rlvr.models.vllm_backend import VLLMBackend

        sampler = VLLMBackend(cfg.model.name, dtype=cfg.model.dtype, seed=cfg.train.seed + d.rank, **r.vllm)
    push_weights(d, backend, sampler)
    return sampler


def push_weights(d: Dist, backend: Any, sampler: Any) -> None:
    """Give the sampler the policy's current weights (after an update)."""
    from rlvr.train.distributed import full_state_dict

    if sampler is backend:
        if hasattr(backend, "sync_sampler"):
            backend.sync_sampler()
        return
    sampler.load_weights(full_state_dict(d, backend, all_ranks=True) or backend.state_dict())


def autocast(cfg: RunConfig):
    if cfg.model.autocast == "bfloat16":
        return torch.autocast(device_type=torch.device(cfg.model.device).type, dtype=torch.bfloat16)
    return nullcontext()


def build_grader(cfg: RunConfig) -> tuple[Any, Any]:
    """``grade(samples, texts, step) -> verdicts`` and the Ray verifier pool behind it (None: local).

    ``train.verify_on: ray`` grades on ``verify_workers`` Ray actors (the same cluster as the
    rollout actors, ``rollout.cpus_per_worker`` each), each running the verifier with its own hard
    per-item time limit.
    """
    from rlvr.verify import verify_samples

    if cfg.train.verify_on == "ray":
        from rlvr.verify.ray_pool import RayVerifierPool

        pool = RayVerifierPool(
            num_workers=cfg.train.verify_workers,
            address=cfg.rollout.ray_address,
            call_timeout=cfg.rollout.timeout,
            verifier_options={"workers": 1, "timeout": cfg.train.verify_timeout},
            num_cpus_per_worker=cfg.rollout.cpus_per_worker,
        )
        return (lambda rows, texts, step: pool.verify_samples(rows, texts, step=step)), pool

    def grade(rows: list[Sample], texts: list[str], step: int | None) -> list[Verdict]:
        return verify_samples(rows, texts, workers=cfg.train.verify_workers, timeout=cfg.train.verify_timeout)

    return grade, None


def generate_and_grade(
    cfg: RunConfig,
    backend: Any,
    prompts: list[Sample],
    seed: int,
    step: int,
    grade: Any,
) -> tuple[Rollouts, float, float]:
    """Sample ``group_size`` completions per prompt, grade them (``grade`` from `build_grader`) and
    score them. Returns (rollouts, t_gen, t_verify)."""
    from rlvr.models.base import SamplingParams

    G = cfg.sampling.group_size
    params = SamplingParams(
        n=G,
        temperature=cfg.sampling.temperature,
        top_p=cfg.sampling.top_p,
        max_new_tokens=cfg.sampling.max_new_tokens,
        stop=list(cfg.sampling.stop),
        seed=seed,
    )
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(cfg):
        kwargs = {"step": step} if cfg.rollout.engine == "ray" else {}  # named in the pool's errors
        gens = backend.generate([s.messages(cfg.model.system_prompt) for s in prompts], params, **kwargs)
    gens = sorted(gens, key=lambda g: g.prompt_index)  # stable: keeps the order within a group
    if len(gens) != len(prompts) * G:
        raise RuntimeError(f"backend returned {len(gens)} completions for {len(prompts)} prompts x {G}")
    t_gen = time.perf_counter() - t0

    rows = [prompts[g.prompt_index] for g in gens]
    texts = [g.text for g in gens]
    t0 = time.perf_counter()
    verdicts = grade(rows, texts, step)
    t_verify = time.perf_counter() - t0

    algo = cfg.algo
    truncated = torch.tensor([g.truncated for g in gens], dtype=torch.bool)
    rewards, valid = verdict_rewards(verdicts, algo.failures)
    fmt = format_reward(texts)
    rewards = rewards + algo.format_reward_weight * fmt
    if algo.soft_overlong_buffer is not None:
        max_len = cfg.sampling.max_new_tokens
        lengths = torch.tensor([len(g.completion_ids) for g in gens])
        buffer = max(1, round(algo.soft_overlong_buffer * max_len))
        rewards = rewards + soft_overlong_penalty(lengths, max_len, buffer, algo.soft_overlong_penalty)
    if algo.overlong_filter:
        valid = valid & overlong_mask(truncated)
    if cfg.train.objective == "rft":
        valid = valid & rft_keep(verdicts)
    has_logp = all(g.logprobs is not None for g in gens)
    rollouts = Rollouts(
        samples=rows,
        texts=texts,
        prompt_ids=[list(g.prompt_ids) for g in gens],
        completion_ids=[list(g.completion_ids) for g in gens],
        behaviour_logp=[list(g.logprobs) for g in gens] if has_logp else None,
        truncated=truncated,
        verdicts=verdicts,
        rewards=rewards,
        format_rewards=fmt,
        valid=valid,
    )
    return rollouts, t_gen, t_verify


def collect_rollouts(
    cfg: RunConfig,
    backend: Any,
    samples: list[Sample],
    stream: PromptStream,
    step: int,
    grade: Any,
    d: Dist = Dist(),
) -> tuple[Rollouts, Rollouts, dict[str, float]]:
    """Draw prompts and sample until the batch is full. Returns (kept, everything generated, timings/counts).

    Without dynamic sampling everything is kept. With it, groups whose valid rewards are all equal
    are dropped and new prompts are drawn, at most ``algo.max_resample_rounds`` extra rounds; a batch
    still short after that is trained on as it is. Under torchrun each process fills its own share.
    """
    G, target = cfg.sampling.group_size, cfg.train.prompts_per_step // d.world
    rank = [d.rank] if d.active else []  # every process samples with its own seeds
    kept_parts: list[Rollouts] = []
    all_parts: list[Rollouts] = []
    n_kept = 0
    timing = {"generate": 0.0, "verify": 0.0, "rounds": 0}
    for rnd in range(1 + (cfg.algo.max_resample_rounds if cfg.algo.dynamic_sampling else 0)):
        prompts = [samples[i] for i in stream.take(target - n_kept)]
        part, t_gen, t_ver = generate_and_grade(
            cfg, backend, prompts, derived_seed(cfg.train.seed, step, rnd, *rank), step, grade
        )
        timing["generate"] += t_gen
        timing["verify"] += t_ver
        timing["rounds"] = rnd + 1
        all_parts.append(part)
        if not cfg.algo.dynamic_sampling:
            kept_parts.append(part)
            break
        keep = keep_groups_with_variance(part.rewards.view(-1, G), part.valid.view(-1, G))
        rows = [g * G + j for g in range(len(prompts)) if keep[g] for j in range(G)]
        if rows:
            kept_parts.append(part.select(rows))
            n_kept += len(rows) // G
        if n_kept >= target:
            break
    everything = Rollouts.concat(all_parts)
    kept = Rollouts.concat(kept_parts) if kept_parts else everything.select([])
    return kept, everything, timing


def share_batches(
    cfg: RunConfig, d: Dist, kept: Rollouts, everything: Rollouts
) -> tuple[Rollouts, Rollouts, Rollouts]:
    """Under torchrun: trim every process's batch to the same number of groups (the update's
    collectives need equal micro-batch counts) and gather everything for the step's metrics.

    Returns (this process's kept rows, every process's kept rows, every process's rollouts).
    """
    G = cfg.sampling.group_size
    groups = min(d.gather(len(kept) // G))
    kept = kept.select(list(range(groups * G)))
    return kept, Rollouts.concat(d.gather(kept)), Rollouts.concat(d.gather(everything))


# --------------------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------------------


def _pad(rows: list[list[float]], width: int) -> Tensor:
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, : min(len(r), width)] = torch.tensor(r[:width], dtype=torch.float32)
    return out


def _logprobs(cfg: RunConfig, backend: Any, batch: Rollouts, grad: bool, entropy: bool = False):
    temperature = 1.0 if cfg.train.objective == "rft" else cfg.sampling.temperature
    ctx = nullcontext() if grad else torch.no_grad()
    with ctx, autocast(cfg):
        logp, mask, ent = backend.sequence_logprobs(
            batch.prompt_ids, batch.completion_ids, grad=grad, temperature=temperature, return_entropy=entropy
        )
    return logp.float(), mask.float(), (ent.float() if ent is not None else None)


def reference_logprobs(cfg: RunConfig, ref: Any, batch: Rollouts) -> list[Tensor]:
    """Per-row reference log-probs (no grad), computed micro-batch by micro-batch."""
    out: list[Tensor] = []
    for start in range(0, len(batch), cfg.micro_batch_size):
        part = batch.select(list(range(start, min(start + cfg.micro_batch_size, len(batch)))))
        logp, mask, _ = _logprobs(cfg, ref, part, grad=False)
        out.extend(logp[i, : int(mask[i].sum())] for i in range(len(part)))
    return out


def old_logprobs(cfg: RunConfig, backend: Any, batch: Rollouts, single_pass: bool) -> list[Tensor] | None:
    """pi_old for the ratio: None means "the current pass, detached" (exact when there is one pass)."""
    mode = cfg.train.old_logp
    if mode == "auto":
        if single_pass:
            return None
        # The sampler's log-probs are pi_old only when it is the trained model at the same precision.
        exact = (
            cfg.algo.tis_cap is None
            and cfg.model.autocast == "none"
            and cfg.rollout.engine == "local"
            and not cfg.rollout.asynchronous
        )
        mode = "sampling" if batch.behaviour_logp is not None and exact else "recompute"
    if mode == "sampling":
        if batch.behaviour_logp is None:
            raise RuntimeError("train.old_logp=sampling but the backend returned no sampling log-probs")
        return [torch.tensor(r, dtype=torch.float32) for r in batch.behaviour_logp]
    return reference_logprobs(cfg, backend, batch)  # the policy itself, before any update


def update(
    cfg: RunConfig,
    backend: Any,
    batch: Rollouts,
    advantages: Tensor,
    ref_logp: list[Tensor] | None,
    optimizer: torch.optim.Optimizer,
    step: int,
    d: Dist = Dist(),
) -> dict[str, float]:
    """``ppo_epochs`` passes over the batch in minibatches; returns averaged loss statistics.

    Under torchrun ``batch`` is this process's share (every process holds as many rows); denominators
    are summed over the processes and the loss scaled by the world size, so the averaged gradient is
    that of the whole batch.
    """
    from rlvr.train.distributed import clip_grad_norm

    algo, B = cfg.algo, len(batch)
    n_minibatches = cfg.rollouts_per_step // cfg.minibatch_size
    mb_size = max(1, math.ceil(B / n_minibatches))
    single_pass = cfg.train.ppo_epochs == 1 and mb_size >= B
    old = old_logprobs(cfg, backend, batch, single_pass)
    norm = algo.constant_norm or cfg.sampling.max_new_tokens
    params = [p for p in backend.model.parameters() if p.requires_grad]
    lengths = torch.tensor([len(c) for c in batch.completion_ids], dtype=torch.float32)
    sums: Counter[str] = Counter()
    counts: Counter[str] = Counter()

    def add(key: str, value: float, weight: float = 1.0) -> None:
        sums[key] += value * weight
        counts[key] += weight

    optimizer_steps = 0
    gen = torch.Generator().manual_seed(derived_seed(cfg.train.seed, step, 7919))
    for _epoch in range(cfg.train.ppo_epochs):
        order = torch.randperm(B, generator=gen).tolist() if not single_pass else list(range(B))
        for mb_start in range(0, B, mb_size):
            mb_rows = order[mb_start : mb_start + mb_size]
            valid = batch.valid[mb_rows]
            n_tokens = d.sum(float((lengths[mb_rows] * valid).sum()))
            if n_tokens == 0:
                continue
            n_seqs = d.sum(float(valid.sum()))
            denominator = {
                "token_mean": n_tokens,
                "seq_mean_token_mean": n_seqs,
                "seq_mean_token_sum": n_seqs,
                "constant": len(mb_rows) * d.world * norm,
            }[algo.loss_agg if cfg.train.objective == "rl" else "token_mean"]
            optimizer.zero_grad(set_to_none=True)
            micro_starts = list(range(0, len(mb_rows), cfg.micro_batch_size))
            for mc_start in micro_starts:
                # Gradient accumulation: processes synchronise gradients on the last micro-batch only.
                with d.no_sync(backend, sync=mc_start == micro_starts[-1]):
                    rows = mb_rows[mc_start : mc_start + cfg.micro_batch_size]
                    part = batch.select(rows)
                    logp, mask, ent = _logprobs(cfg, backend, part, grad=True, entropy=cfg.log.entropy)
                    mask = mask * part.valid[:, None].float()
                    n_part = float(mask.sum())
                    if cfg.train.objective == "rft":
                        loss = rft_loss(logp, mask, denominator)
                        stats: dict[str, float] = {}
                    else:
                        old_part = (
                            logp.detach()
                            if old is None
                            else _pad([old[i].tolist() for i in rows], logp.shape[1])
                        )
                        behaviour = None
                        if algo.tis_cap is not None and part.behaviour_logp is not None:
                            behaviour = _pad(part.behaviour_logp, logp.shape[1])
                        loss, stats = policy_loss(
                            logp,
                            old_part,
                            advantages[rows],
                            mask,
                            clip_low=algo.clip_low,
                            clip_high=algo.clip_high,
                            level=algo.loss_level,
                            agg=algo.loss_agg,
                            constant_norm=norm,
                            denominator=denominator,
                            behaviour_logp=behaviour,
                            tis_cap=algo.tis_cap,
                        )
                        if ref_logp is not None:
                            kl = kl_estimate(
                                logp,
                                _pad([ref_logp[i].tolist() for i in rows], logp.shape[1]),
                                algo.kl_estimator,
                            )
                            add("kl", float((kl.detach() * mask).sum()) / max(n_part, 1), n_part)
                            if algo.kl_mode == "loss":
                                loss = loss + algo.kl_coef * aggregate(
                                    kl, mask, algo.loss_agg, norm, denominator
                                )
                    (loss * d.world).backward()  # DDP / FSDP2 average the processes' gradients
                    add("loss", float(loss.detach()))  # parts sum to the minibatch loss
                    for k, v in stats.items():
                        add(k, v, n_part)
                    if ent is not None:
                        add("entropy", float((ent.detach() * mask).sum()) / max(n_part, 1), n_part)
            max_norm = cfg.optim.max_grad_norm if cfg.optim.max_grad_norm is not None else float("inf")
            grad_norm = clip_grad_norm(params, max_norm)
            optimizer.step()
            add("grad_norm", grad_norm)
            optimizer_steps += 1
    out = {k: sums[k] / counts[k] for k in sums if counts[k] > 0}
    if "loss" in out:  # per-minibatch loss: the micro-batch parts were added separately
        out["loss"] = sums["loss"] / max(counts["grad_norm"], 1)
    out["optimizer_steps"] = optimizer_steps
    return out


def batch_advantages(cfg: RunConfig, batch: Rollouts, d: Dist = Dist()) -> Tensor:
    """Per-row advantages from the group rewards (unused by the RFT objective: zeros).

    Under torchrun they are computed on every process's rewards (batch-normalised estimators see the
    whole batch) and each process keeps its own rows.
    """
    if cfg.train.objective == "rft":
        return torch.zeros(len(batch))
    G = cfg.sampling.group_size
    parts = d.gather((batch.rewards, batch.valid))
    rewards, valid = torch.cat([r for r, _ in parts]), torch.cat([v for _, v in parts])
    kwargs = {"group_baseline": cfg.algo.group_baseline} if cfg.algo.advantage == "reinforce_pp" else {}
    adv = compute_advantages(cfg.algo.advantage, rewards.view(-1, G), valid.view(-1, G), **kwargs).reshape(-1)
    start = sum(len(r) for r, _ in parts[: d.rank])
    return adv[start : start + len(batch)]


def lr_lambda(cfg: RunConfig):
    """Multiplier of the base LR at a (0-based) training step: linear warmup, then constant/linear/cosine."""
    total, warmup, floor = cfg.train.steps, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.optim.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if cfg.optim.schedule == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return fn


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def rollout_metrics(everything: Rollouts, kept: Rollouts, cfg: RunConfig) -> dict[str, Any]:
    """Reward/accuracy/length statistics over every completion generated this step (kept or not)."""
    n = len(everything)
    correctness = torch.tensor([v.reward for v in everything.verdicts], dtype=torch.float32)
    lengths = torch.tensor([len(c) for c in everything.completion_ids], dtype=torch.float32)
    statuses = Counter(v.status for v in everything.verdicts)
    return {
        "reward/mean": float(everything.rewards.mean()),
        "reward/std": float(everything.rewards.std()) if n > 1 else 0.0,
        "reward/correctness": float(correctness.mean()),
        "accuracy": statuses.get("correct", 0) / n,
        "format_reward": float(everything.format_rewards.mean()),
        "status": {s: statuses.get(s, 0) for s in STATUSES},
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "truncated/rate": float(everything.truncated.float().mean()),
        "rollouts/generated": n,
        "rollouts/trained": int(kept.valid.sum()),
        "groups/kept": len(kept) // cfg.sampling.group_size,
        "groups/generated": n // cfg.sampling.group_size,
    }


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    command: list[str] | None = None,
    stop_after: int | None = None,
    console: Any = None,
    reward_fn: Any = None,
    backend: Any = None,
) -> TrainResult:
    """Run (or resume) training into ``run_dir``.

    ``stop_after`` ends the run after that many total steps (as if it were killed there; the schedule
    still spans ``train.steps``). ``reward_fn(rollouts, step) -> Tensor[B]`` replaces the rewards the
    advantages are computed from (used by the random-reward control of ``rlvr demo``). ``backend``
    passes an already loaded policy (a fresh run only: a resumed run loads its checkpoint).
    """
    from rlvr.data import load_task
    from rlvr.models import load_backend
    from rlvr.train import distributed

    d = distributed.setup(cfg.train.parallel, cfg.model.device, cfg.train.prompts_per_step)
    device = distributed.process_device(d, cfg.model.device)  # cuda -> cuda:LOCAL_RANK under torchrun
    run_dir = Path(run_dir)
    log_path = run_dir / "log.jsonl"
    ckpt = latest_checkpoint(run_dir) if resume else None
    if not resume and log_path.exists() and log_path.stat().st_size > 0:
        raise RunExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it or pick another folder"
        )
    run_dir.mkdir(parents=True, exist_ok=True)

    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    samples = load_task(cfg.data.task, n=cfg.data.n, seed=cfg.data_seed, split="train", **cfg.data.options)
    # Under torchrun every process draws from its own shuffled order of the prompts.
    stream = PromptStream(len(samples), derived_seed(cfg.data_seed, d.rank) if d.active else cfg.data_seed)

    if ckpt is not None:
        backend = load_backend(str(ckpt.model_dir), dtype=cfg.model.dtype, device=device)
    elif backend is None:
        backend = load_backend(cfg.model.name, dtype=cfg.model.dtype, device=device, seed=cfg.train.seed)
    ref = None
    if cfg.algo.needs_reference:
        ref = load_backend(cfg.model.name, dtype=cfg.model.dtype, device=device, seed=cfg.train.seed)
        ref.model.requires_grad_(False)
    prepare_backend(cfg, backend)
    backend.model.eval()  # no dropout: the sampled and the trained distributions are the same model
    distributed.wrap(d, backend)
    sampler = build_sampler(cfg, backend, d)
    grade, verifier_pool = build_grader(cfg)

    optimizer = torch.optim.AdamW(
        [p for p in backend.model.parameters() if p.requires_grad],
        lr=cfg.train.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
        weight_decay=cfg.optim.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    logger = MetricsLogger(
        run_dir,
        tensorboard=cfg.log.tensorboard,
        wandb=cfg.log.wandb,
        wandb_project=cfg.log.wandb_project,
        config=cfg.model_dump(),
        enabled=d.main,
    )

    start = 0
    if ckpt is not None:
        distributed.load_optimizer_state(d, backend, optimizer, ckpt.load_torch("optimizer.pt"))
        scheduler.load_state_dict(ckpt.load_torch("scheduler.pt"))
        rng = ckpt.load_torch("rng.pt")
        set_rng_state(rng[d.rank] if d.active else rng)
        stream.load_state_dict(ckpt.state["data_ranks"][d.rank] if d.active else ckpt.state["data"])
        start = ckpt.step
        logger.truncate_after(start)
    elif resume and log_path.exists():
        logger.truncate_after(-1)  # no complete checkpoint: start over

    manifest = build_manifest(
        cfg.model_dump(mode="json"),
        command=command,
        seeds={"train": cfg.train.seed, "data": cfg.data_seed},
        datasets={f"train:{cfg.data.task}": samples},
        extra={
            "run_dir": str(run_dir),
            "resumed_from_step": start if resume else None,
            "processes": {"world": d.world, "parallel": d.strategy},
        },
    )
    if d.main:
        atomic_write_json(
            run_dir / ("manifest.json" if start == 0 else f"manifest.resume-{start}.json"), manifest.to_dict()
        )

    def checkpoint(step: int, data_state: dict[str, int]) -> None:
        # Collectives first (every process), then the main process writes.
        model_state = distributed.full_state_dict(d, backend)
        optimizer_state = distributed.optimizer_state(d, backend, optimizer)
        extra = {"data": data_state, "config": cfg.model_dump(mode="json")}
        rng = None
        if d.active:
            extra["data_ranks"] = d.gather(data_state)
            rng = d.gather(rng_state())
        if d.main:
            save_checkpoint(
                run_dir,
                step,
                backend=backend,
                optimizer_state=optimizer_state,
                scheduler=scheduler,
                extra_state=extra,
                keep=cfg.train.keep_checkpoints,
                model_state=model_state,
                rng=rng,
            )
        d.barrier()

    end = cfg.train.steps if stop_after is None else min(cfg.train.steps, stop_after)
    progress = Progress(cfg.train.steps, start=start, enabled=cfg.log.progress and d.main)
    record: dict[str, Any] = {}

    def rollouts_for(step: int) -> tuple[Rollouts, Rollouts, dict[str, float]]:
        return collect_rollouts(cfg, sampler, samples, stream, step, grade, d)

    # Asynchronous mode: one background thread samples the next step while this one updates.
    executor = ThreadPoolExecutor(1, thread_name_prefix="rlvr-rollouts") if cfg.rollout.asynchronous else None
    pending: Future | None = None
    try:
        for step in range(start, end):
            t_step = time.perf_counter()
            kept, everything, timing = pending.result() if pending is not None else rollouts_for(step)
            data_state = stream.state_dict()  # after this step's prompts, before the next step's
            pending = None
            if executor is not None and step + 1 < end:
                pending = executor.submit(rollouts_for, step + 1)  # sampled by the pre-update weights
            kept_all = kept
            if d.active:
                kept, kept_all, everything = share_batches(cfg, d, kept, everything)
            if reward_fn is not None:
                kept.rewards = reward_fn(kept, step)

            t0 = time.perf_counter()
            ref_logp = reference_logprobs(cfg, ref, kept) if ref is not None and len(kept) else None
            kl_penalty = 0.0
            if ref_logp is not None and cfg.algo.kl_mode == "reward":
                behaviour = old_logprobs(cfg, backend, kept, single_pass=False)
                seq_kl = torch.stack(
                    [
                        kl_estimate(b, r, cfg.algo.kl_estimator).sum()
                        for b, r in zip(behaviour, ref_logp, strict=True)
                    ]
                )
                kept.rewards = kept.rewards - cfg.algo.kl_coef * seq_kl
                kl_penalty = float(seq_kl.mean())
            stats: dict[str, float] = {}
            if len(kept) and d.sum(float(kept.valid.sum())) > 0:
                stats = update(
                    cfg, backend, kept, batch_advantages(cfg, kept, d), ref_logp, optimizer, step, d
                )
            if pending is not None:
                futures_wait([pending])  # the sampler's weights change only once it is idle
            push_weights(d, backend, sampler)
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            t_update = time.perf_counter() - t0
            elapsed = time.perf_counter() - t_step

            completion_tokens = sum(len(c) for c in everything.completion_ids)
            record = {
                "step": step + 1,
                **rollout_metrics(everything, kept_all, cfg),
                "loss": stats.get("loss", 0.0),
                "entropy": stats.get("entropy"),
                "kl": stats.get("kl"),
                "kl_penalty": kl_penalty if cfg.algo.kl_mode == "reward" and ref is not None else None,
                "clip_frac": stats.get("clip_frac", 0.0),
                "clip_frac_low": stats.get("clip_frac_low", 0.0),
                "clip_frac_high": stats.get("clip_frac_high", 0.0),
                "tis_weight": stats.get("tis_weight_mean"),
                "grad_norm": stats.get("grad_norm", 0.0),
                "optimizer_steps": int(stats.get("optimizer_steps", 0)),
                "lr": lr,
                "sampling_rounds": timing["rounds"],
                "time/step": elapsed,
                "time/generate": timing["generate"],
                "time/verify": timing["verify"],
                "time/update": t_update,
                "throughput/tokens_per_s": completion_tokens / elapsed,
                "throughput/generate_tokens_per_s": completion_tokens / max(timing["generate"], 1e-9),
                "data/epoch": stream.epoch,
            }
            logger.log(record)
            progress.update(record)
            if console is not None and cfg.log.print_samples and d.main:
                for text, v in list(zip(everything.texts, everything.verdicts, strict=True))[
                    : cfg.log.print_samples
                ]:
                    console.print(f"[dim]step {step + 1} [{v.status}][/dim] {text!r}")
            done = step + 1
            if (cfg.train.save_every and done % cfg.train.save_every == 0) or done == cfg.train.steps:
                checkpoint(done, data_state)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if sampler is not backend and hasattr(sampler, "close"):
            sampler.close()
        if verifier_pool is not None:
            verifier_pool.shutdown()
        progress.close()
        logger.close()
    return TrainResult(last=record, backend=backend, run_dir=run_dir)
