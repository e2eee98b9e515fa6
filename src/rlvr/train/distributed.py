"""Multi-process training under ``torchrun``: data-parallel (DDP) or sharded (FSDP2), same recipe.

    torchrun --nproc_per_node 2 -m rlvr.cli train recipes/grpo_addition.yaml train.parallel=ddp

Each process samples, grades and scores its own share of the prompts (``prompts_per_step / world``,
from its own shuffled stream), so generation and verification scale with the processes. The update
is one optimisation over the union of the shares:

* advantages are computed on the gathered rewards (group estimators are local anyway; REINFORCE++'s
  batch statistics need the whole batch);
* loss denominators (tokens, sequences) are summed over the processes, and each process's loss is
  scaled by the world size, so the gradient that DDP's all-reduce (or FSDP2's reduce-scatter)
  averages equals the single-process gradient of the whole batch;
* gradient accumulation skips the synchronisation on all but the last micro-batch.

DDP keeps a full copy of the weights in every process. FSDP2 (``torch.distributed.fsdp.fully_shard``)
shards each decoder layer and the rest of the model across the processes; sampling then uses a full
copy of the weights (``HFBackend.set_sampling_dtype(..., copy_always=True)``), refreshed after each
update. On CPU the gloo backend is used, on GPUs nccl. A single process (no ``WORLD_SIZE``) runs the
ordinary loop: everything here is then a no-op.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    strategy: str = "none"  # "none" (one process), "ddp" or "fsdp2"

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the processes."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (pickled; for small things)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def no_sync(self, backend: Any, sync: bool):
        """Skip the gradient synchronisation of this backward unless ``sync`` (gradient accumulation)."""
        if not self.active or sync:
            return nullcontext()
        if self.strategy == "ddp":
            return backend.scorer.no_sync()
        return _fsdp_no_sync(backend.scorer)


@contextmanager
def _fsdp_no_sync(module: Any):
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


def setup(parallel: str, device: str, prompts_per_step: int) -> Dist:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ...) or stay single."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if prompts_per_step % world:
        raise ValueError(
            f"train.prompts_per_step={prompts_per_step} must be divisible by the {world} processes"
        )
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.device(device).type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), strategy=parallel)


def process_device(d: Dist, device: str) -> str:
    """This process's device: under torchrun each process takes the GPU of its ``LOCAL_RANK``."""
    if d.active and torch.device(device).type == "cuda" and torch.device(device).index is None:
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    return device


def wrap(d: Dist, backend: Any) -> None:
    """Put the backend's scoring passes under DDP or FSDP2 (call before building the optimizer)."""
    if not d.active:
        return
    if d.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [backend.device.index] if backend.device.type == "cuda" else None
        backend.scorer = DistributedDataParallel(backend.scorer, device_ids=device_ids)
    elif d.strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        # Sampling needs whole weights: keep a full copy (at the sampling precision already chosen).
        if not backend.has_sampling_copy:
            backend.set_sampling_dtype(None, copy_always=True)
        _broadcast_parameters(backend.model)
        for layer in backend.model.get_decoder().layers:
            fully_shard(layer)
        fully_shard(backend.scorer)
        # The root group stays unsharded after a forward; after a no-grad pass (old or reference
        # log-probs) that would skip the gradient hooks of the next pass with gradients: reshard.
        backend.scorer.register_forward_hook(
            lambda module, *_: None if torch.is_grad_enabled() else module.reshard()
        )
        backend.sync_sampler()
    else:
        raise ValueError(f"unknown train.parallel strategy {d.strategy!r}")


@torch.no_grad()
def _broadcast_parameters(model: torch.nn.Module) -> None:
    """Start every process from rank 0's weights (DDP does this itself; FSDP2 does not)."""
    for p in model.parameters():
        dist.broadcast(p.data, src=0)


def full_state_dict(d: Dist, backend: Any, all_ranks: bool = False) -> dict[str, torch.Tensor] | None:
    """The whole model's weights, gathered from the shards under FSDP2 (on rank 0 only, unless
    ``all_ranks``); None when the model is not sharded (its own state dict is whole)."""
    if d.strategy != "fsdp2":
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=not all_ranks)
    return get_model_state_dict(backend.model, options=options)


def optimizer_state(d: Dist, backend: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state to checkpoint: the full (unsharded) one under FSDP2."""
    if d.strategy != "fsdp2":
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(
        backend.model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_optimizer_state(
    d: Dist, backend: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    if d.strategy != "fsdp2":
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(
        backend.model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
    )


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """Clip the gradients' global L2 norm to ``max_norm``; returns the norm before clipping.

    ``clip_grad_norm_`` handles FSDP2's sharded gradients itself (the norm comes back as a DTensor).
    """
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def shutdown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
